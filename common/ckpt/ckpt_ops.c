/* ckpt_ops: TensorFlow's saver ops over the bundle reader and writer (see ckpt_ops.h). */
#include "ckpt_ops.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "op.h"
#include "ops.h"

/* The NUL-ended text of string element i of t (empty strings are ""). */
static const char *str_at(const pst_tensor *t, int64_t i) {
    const char *p = pst_tensor_str(t)[i].p;
    return p ? p : "";
}

int pst_ckpt_parse_slice_spec(const char *spec, int *rank, int64_t *full, int64_t *start,
                              int64_t *len) {
    *rank = -1;
    while (*spec == ' ') spec++;
    if (*spec == '\0') return 0;
    int r = 0;
    const char *p = spec;
    char *end;
    /* Dims up to the last space; the slice part follows it. */
    const char *last_space = strrchr(p, ' ');
    if (last_space == NULL) return -1;
    while (p < last_space) {
        if (r >= PST_MAX_RANK) return -1;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0) return -1;
        full[r++] = d;
        p = end;
        while (*p == ' ' && p < last_space) p++;
    }
    p = last_space + 1;
    for (int i = 0; i < r; i++) {
        if (*p == '-') {
            start[i] = 0;
            len[i] = full[i];
            p++;
        } else {
            long long s = strtoll(p, &end, 10);
            if (end == p || *end != ',') return -1;
            p = end + 1;
            long long l = strtoll(p, &end, 10);
            if (end == p || s < 0 || l < 0 || s + l > full[i]) return -1;
            start[i] = s;
            len[i] = l;
            p = end;
        }
        if (i + 1 < r) {
            if (*p != ':') return -1;
            p++;
        }
    }
    if (*p != '\0') return -1;
    *rank = r;
    return 0;
}

/* Copies the block [start, start+len) of src (shape full) into a new tensor. */
static pst_tensor *extract_block(const pst_tensor *src, int rank, const int64_t *start,
                                 const int64_t *len, pst_status *st) {
    pst_tensor *t = pst_tensor_new_zeros(src->dtype, pst_shape_make(rank, len), st);
    if (t == NULL || t->n == 0) return t;
    int64_t idx[PST_MAX_RANK] = {0}, inner = rank ? len[rank - 1] : 1;
    for (int64_t o = 0; o < t->n; o += inner) {
        int64_t off = 0;
        for (int d = 0; d < rank; d++) off = off * src->shape.dims[d] + start[d] + idx[d];
        if (pst_tensor_copy_elems(t, o, src, off, inner, st) < 0) {
            pst_tensor_unref(t);
            return NULL;
        }
        for (int d = rank - 2; d >= 0; d--) {
            if (++idx[d] < len[d]) break;
            idx[d] = 0;
        }
    }
    return t;
}

static int check_names(pst_kernel_ctx *c, int64_t n) {
    for (int i = 0; i < 3; i++)
        if (c->inputs[i]->dtype != PST_STRING)
            return pst_kctx_error(c, PST_E_INVALID, "input %d must be a string tensor", i);
    if (c->inputs[0]->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "prefix must hold one string, it has %lld",
                              (long long)c->inputs[0]->n);
    if (c->inputs[1]->n != n || c->inputs[2]->n != n)
        return pst_kctx_error(c, PST_E_INVALID,
                              "%lld tensors but %lld tensor_names and %lld shape_and_slices",
                              (long long)n, (long long)c->inputs[1]->n, (long long)c->inputs[2]->n);
    return 0;
}

/* ---- SaveV2 ---------------------------------------------------------------------------- */
static int save_v2_kernel(pst_kernel_ctx *c) {
    int64_t n = c->n_inputs - 3;
    if (check_names(c, n) < 0) return c->status->code;
    const char *prefix = str_at(c->inputs[0], 0);
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, c->status);
    if (w == NULL) return c->status->code;
    for (int64_t i = 0; i < n; i++) {
        const char *name = str_at(c->inputs[1], i), *spec = str_at(c->inputs[2], i);
        const pst_tensor *t = c->inputs[3 + i];
        int rank, rc;
        int64_t full[PST_MAX_RANK], start[PST_MAX_RANK], len[PST_MAX_RANK];
        if (pst_ckpt_parse_slice_spec(spec, &rank, full, start, len) < 0) {
            pst_bundle_writer_abort(w);
            return pst_kctx_error(c, PST_E_INVALID, "tensor '%s': bad shape_and_slices '%s'",
                                  name, spec);
        }
        if (rank < 0)
            rc = pst_bundle_writer_add(w, name, t, c->status);
        else
            rc = pst_bundle_writer_add_slice(w, name, pst_shape_make(rank, full), start, len, t,
                                             c->status);
        if (rc < 0) {
            pst_bundle_writer_abort(w);
            return pst_kctx_error(c, rc, "tensor '%s': %s", name, c->status->msg);
        }
    }
    return pst_bundle_writer_finish(w, c->status);
}

static int save_v2_shape(pst_node *n, pst_status *st) {
    const pst_attr *a = pst_node_attr(n, "dtypes");
    if (a && a->n != n->n_inputs - 3)
        return pst_status_set(st, PST_E_INVALID, "attr dtypes lists %d types for %d tensors",
                              a->n, n->n_inputs - 3);
    return 0;
}

/* ---- RestoreV2 ------------------------------------------------------------------------- */
static int restore_v2_kernel(pst_kernel_ctx *c) {
    int64_t n = c->n_outputs;
    if (check_names(c, n) < 0) return c->status->code;
    const char *prefix = str_at(c->inputs[0], 0);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, c->status);
    if (r == NULL) return c->status->code;
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const char *name = str_at(c->inputs[1], i), *spec = str_at(c->inputs[2], i);
        int rank;
        int64_t full[PST_MAX_RANK], start[PST_MAX_RANK], len[PST_MAX_RANK];
        if (pst_ckpt_parse_slice_spec(spec, &rank, full, start, len) < 0) {
            rc = pst_kctx_error(c, PST_E_INVALID, "tensor '%s': bad shape_and_slices '%s'", name,
                                spec);
            break;
        }
        if (pst_bundle_reader_find(r, name) == NULL) {
            rc = pst_kctx_error(c, PST_E_NOT_FOUND, "Key %s not found in checkpoint %s", name,
                                prefix);
            break;
        }
        pst_tensor *t = pst_bundle_reader_read(r, name, c->status);
        if (t == NULL) {
            rc = c->status->code;
            break;
        }
        if (t->dtype != c->out_dtypes[i]) {
            rc = pst_kctx_error(c, PST_E_INVALID, "tensor '%s' is %s in %s, the graph wants %s",
                                name, pst_dtype_name(t->dtype), prefix,
                                pst_dtype_name(c->out_dtypes[i]));
            pst_tensor_unref(t);
            break;
        }
        if (rank >= 0) {
            pst_shape fs = pst_shape_make(rank, full);
            if (!pst_shape_equal(&fs, &t->shape)) {
                char a[128], b[128];
                rc = pst_kctx_error(c, PST_E_INVALID, "tensor '%s' has shape %s in %s, the slice "
                                    "spec says %s", name, pst_shape_str(&t->shape, a, sizeof a),
                                    prefix, pst_shape_str(&fs, b, sizeof b));
                pst_tensor_unref(t);
                break;
            }
            pst_tensor *b = extract_block(t, rank, start, len, c->status);
            pst_tensor_unref(t);
            if ((t = b) == NULL) {
                rc = c->status->code;
                break;
            }
        }
        pst_kctx_set_output(c, (int)i, t);
    }
    pst_bundle_reader_free(r);
    return rc;
}

static int restore_v2_shape(pst_node *n, pst_status *st) {
    const pst_attr *a = pst_node_attr(n, "dtypes");
    if (a == NULL || a->kind != PST_ATTR_LIST_TYPE || a->n < 1)
        return pst_status_set(st, PST_E_INVALID, "attr dtypes must list at least one type");
    pst_node_set_num_outputs(n, a->n);
    for (int i = 0; i < a->n; i++) {
        if (!pst_dtype_valid(a->list.type[i]))
            return pst_status_set(st, PST_E_UNIMPLEMENTED, "dtypes[%d] %d is not supported", i,
                                  (int)a->list.type[i]);
        pst_node_set_output(n, i, a->list.type[i], pst_shape_unknown());
    }
    return 0;
}

/* ---- MergeV2Checkpoints ---------------------------------------------------------------- */
static int merge_v2_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0], *dst = c->inputs[1];
    if (in->dtype != PST_STRING || dst->dtype != PST_STRING || dst->n != 1 || in->n < 1)
        return pst_kctx_error(c, PST_E_INVALID, "wants string prefixes and one destination");
    const char **shards = calloc((size_t)in->n, sizeof *shards);
    PST_ASSERT(shards != NULL);
    for (int64_t i = 0; i < in->n; i++) shards[i] = str_at(in, i);
    int rc = pst_bundle_merge((int)in->n, shards, str_at(dst, 0), c->status);
    if (rc == 0 && pst_kctx_attr_b(c, "delete_old_dirs", 1)) {
        /* The shards' directory (TF's "PREFIX_temp_XXX/part-...") goes when it is empty. */
        for (int64_t i = 0; i < in->n; i++) {
            char d[4096];
            snprintf(d, sizeof d, "%s", shards[i]);
            char *dir = dirname(d);
            if (strcmp(dir, ".") != 0 && strcmp(dir, "/") != 0) rmdir(dir);
        }
    }
    free(shards);
    return rc;
}

/* ---- V1 checkpoints -------------------------------------------------------------------- */
static int v1_kernel(pst_kernel_ctx *c) {
    return pst_kctx_error(c, PST_E_UNIMPLEMENTED,
                          "%s reads or writes TensorFlow's V1 checkpoint format, which pstrain "
                          "does not support (restore V2 checkpoints, or save with "
                          "tf.train.Saver(write_version=V2))", c->op->name);
}

static int restore_v1_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dt", PST_DT_INVALID);
    if (!pst_dtype_valid(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "attr dt %d is not supported", (int)dt);
    pst_node_set_output(n, 0, dt, pst_shape_unknown());
    return 0;
}

static const pst_attr_spec save_attrs[] = {{"dtypes", PST_ATTR_LIST_TYPE, 0}, {0}};
static const pst_attr_spec v1_save_attrs[] = {{"T", PST_ATTR_LIST_TYPE, 0}, {0}};
static const pst_attr_spec merge_attrs[] = {{"delete_old_dirs", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec v1_restore_attrs[] = {
    {"dt", PST_ATTR_TYPE, 1}, {"preferred_shard", PST_ATTR_INT, 0}, {0}};

#define SAVER_FLAGS (PST_OP_STATEFUL | PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE)
static const pst_op_def saver_ops[] = {
    {.name = "SaveV2", .min_inputs = 4, .max_inputs = -1, .n_outputs = 0, .attrs = save_attrs,
     .shape = save_v2_shape, .kernel = save_v2_kernel, .flags = SAVER_FLAGS},
    {.name = "RestoreV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = -1,
     .attrs = save_attrs, .shape = restore_v2_shape, .kernel = restore_v2_kernel,
     .flags = SAVER_FLAGS},
    {.name = "MergeV2Checkpoints", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .attrs = merge_attrs, .kernel = merge_v2_kernel, .flags = SAVER_FLAGS},
    {.name = "Save", .min_inputs = 3, .max_inputs = -1, .n_outputs = 0, .attrs = v1_save_attrs,
     .kernel = v1_kernel, .flags = SAVER_FLAGS},
    {.name = "SaveSlices", .min_inputs = 4, .max_inputs = -1, .n_outputs = 0,
     .attrs = v1_save_attrs, .kernel = v1_kernel, .flags = SAVER_FLAGS},
    {.name = "Restore", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = v1_restore_attrs, .shape = restore_v1_shape, .kernel = v1_kernel,
     .flags = SAVER_FLAGS},
    {.name = "RestoreSlice", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = v1_restore_attrs, .shape = restore_v1_shape, .kernel = v1_kernel,
     .flags = SAVER_FLAGS},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_ckpt_ops(void) {
    pst_ops_init();
    for (size_t i = 0; i < sizeof saver_ops / sizeof saver_ops[0]; i++)
        pst_op_register(&saver_ops[i]);
}

void pst_ckpt_ops_init(void) { pthread_once(&once, register_ckpt_ops); }
