/* imported_input: an imported graph's own input pipeline (TF 1 readers and queues) pointed at
 * other files, or at synthetic records shaped like what its ParseExample wants (see
 * imported.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "image_ops.h"
#include "imported.h"
#include "op.h"
#include "tf_data.h"
#include "tfrecord.h"

static int op_is(const pst_node *n, const char *const *ops) {
    for (int i = 0; ops[i]; i++)
        if (strcmp(n->op->name, ops[i]) == 0) return 1;
    return 0;
}

static const char *const dequeue_ops[] = {"QueueDequeueV2", "QueueDequeueManyV2",
                                          "QueueDequeueUpToV2", "QueueDequeue",
                                          "QueueDequeueMany", "QueueDequeueUpTo", NULL};
static const char *const enqueue_ops[] = {"QueueEnqueueV2", "QueueEnqueueManyV2", "QueueEnqueue",
                                          "QueueEnqueueMany", NULL};
static const char *const get_next_ops[] = {"IteratorGetNext", "IteratorGetNextSync", NULL};
static const char *const reader_read_ops[] = {"ReaderReadV2", "ReaderRead", "ReaderReadUpToV2",
                                              NULL};

int pst_imported_records_needed(pst_imported *m, pst_node *train, int steps) {
    pst_graph *g = pst_imported_graph(m);
    int64_t most = 1, held = 0;
    for (int id = 0; id < pst_graph_num_nodes(g); id++) {
        pst_node *x = pst_graph_node(g, id);
        if (op_is(x, dequeue_ops) && x->n_inputs > 1) {
            const pst_tensor *k = pst_node_in_const(x, 1);
            if (k && k->n == 1 && pst_tensor_get_i64(k, 0) > most) most = pst_tensor_get_i64(k, 0);
        }
        if (strncmp(x->op->name, "RandomShuffleQueue", 18) == 0)
            held += pst_node_attr_i(x, "min_after_dequeue", 0);
        if (strncmp(x->op->name, "BatchDataset", 12) == 0 && x->n_inputs > 1) {
            const pst_tensor *k = pst_node_in_const(x, 1);
            if (k && k->n == 1 && pst_tensor_get_i64(k, 0) > most) most = pst_tensor_get_i64(k, 0);
        }
    }
    (void)train;
    int64_t n = (int64_t)(steps > 0 ? steps : 1) * most + held + most;
    return (int)(n < 16 ? 16 : n > 4096 ? 4096 : n);
}

int pst_imported_uses_queues(pst_imported *m, pst_node *const *targets, int n_targets) {
    pst_graph *g = pst_imported_graph(m);
    int nn = pst_graph_num_nodes(g), found = 0;
    char *need = calloc((size_t)nn + 1, 1);
    PST_ASSERT(need != NULL);
    for (int i = 0; i < n_targets; i++) need[targets[i]->id] = 1;
    for (int id = nn - 1; id >= 0; id--) {
        if (!need[id]) continue;
        pst_node *x = pst_graph_node(g, id);
        found |= op_is(x, dequeue_ops);
        for (int i = 0; i < x->n_inputs; i++) need[x->inputs[i].node->id] = 1;
        for (int i = 0; i < x->n_control; i++) need[x->control_inputs[i]->id] = 1;
    }
    free(need);
    return found;
}

/* What fills a filename queue: for each enqueue into it, the string Const its names come from
 * through Identity and RandomShuffle (string_input_producer's list), else its names input
 * itself (match_filenames_once's variable, a placeholder...). Feeding it replaces the file
 * names whatever their source. */
static int filename_inputs(pst_graph *g, const pst_node *queue, pst_output *out, int max) {
    int k = 0;
    for (int id = 0; id < pst_graph_num_nodes(g) && k < max; id++) {
        pst_node *e = pst_graph_node(g, id);
        if (!op_is(e, enqueue_ops) || e->n_inputs != 2 || e->inputs[0].node != queue ||
            pst_output_dtype(e->inputs[1]) != PST_STRING)
            continue;
        /* The Const behind Identity / RandomShuffle when there is one, so what those run
         * (limit_epochs' CountUpTo, the shuffle) still runs; else the names input itself. */
        pst_output o = e->inputs[1];
        for (pst_output x = o; x.node; x = x.node->inputs[0]) {
            if (strcmp(x.node->op->name, "Const") == 0) {
                o = x;
                break;
            }
            if ((strcmp(x.node->op->name, "Identity") != 0 &&
                 strcmp(x.node->op->name, "RandomShuffle") != 0) || x.node->n_inputs < 1)
                break;
        }
        out[k++] = o;
    }
    return k;
}

int pst_imported_reader_files(pst_imported *m, const char *path, pst_feed **feeds, int *n,
                              pst_status *st) {
    pst_graph *g = pst_imported_graph(m);
    int nn = pst_graph_num_nodes(g), k = 0;
    *feeds = calloc((size_t)nn + 1, sizeof **feeds);
    PST_ASSERT(*feeds != NULL);
    for (int id = 0; id < nn; id++) {
        pst_node *r = pst_graph_node(g, id);
        if (!op_is(r, reader_read_ops) || r->n_inputs < 2) continue;
        pst_output src[8];
        int ns = filename_inputs(g, r->inputs[1].node, src, 8);
        for (int j = 0; j < ns; j++) {
            int dup = 0;
            for (int i = 0; i < k; i++)
                dup |= (*feeds)[i].output.node == src[j].node &&
                       (*feeds)[i].output.index == src[j].index;
            if (dup) continue;
            pst_shape s = pst_output_shape(src[j]);
            if (s.rank != 1) s = pst_shape_1d(1); /* enqueue_many: a vector of names */
            if (s.dims[0] < 0) s.dims[0] = 1;
            const char **names = calloc((size_t)s.dims[0] + 1, sizeof *names);
            PST_ASSERT(names != NULL);
            for (int64_t i = 0; i < s.dims[0]; i++) names[i] = path;
            pst_tensor *v = pst_tensor_from_strs((int)s.dims[0], names);
            free(names);
            if (v == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            (*feeds)[k++] = (pst_feed){src[j], v};
        }
    }
    *n = k;
    return 0;
}

/* ---- Synthetic records ----------------------------------------------------------------- */

typedef struct feat {
    char key[256];
    pst_dtype dt;
    pst_shape shape;   /* per example; a first dim of -1: variable length */
    int sparse;
    int list;          /* a SequenceExample feature list (shape: one step's) */
    int64_t raw_bytes; /* string features decoded by DecodeRaw: the bytes one needs */
} feat;

typedef struct walk {
    pst_graph *g;
    feat *f;
    int nf, cap;
} walk;

static feat *add_feat(walk *w, const char *key, pst_dtype dt, pst_shape s, int sparse,
                      int64_t raw) {
    for (int i = 0; i < w->nf; i++)
        if (strcmp(w->f[i].key, key) == 0) return &w->f[i];
    if (w->nf == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->f = realloc(w->f, (size_t)w->cap * sizeof *w->f);
        PST_ASSERT(w->f != NULL);
    }
    feat *f = &w->f[w->nf++];
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->dt = dt;
    f->shape = s;
    f->sparse = sparse;
    f->raw_bytes = raw;
    return f;
}

/* Calls visit on every consumer (node, input index) of output o, looking through pass ops
 * and through queues (an enqueue's component i reaches the dequeues' output i). */
typedef int (*visit_fn)(walk *w, pst_node *n, int input, void *ctx);

static void downstream(walk *w, pst_output o, int depth, visit_fn visit, void *ctx) {
    static const char *const pass[] = {"Identity", "ExpandDims", "Squeeze", "Reshape", NULL};
    if (depth > 12) return;
    for (int id = 0; id < pst_graph_num_nodes(w->g); id++) {
        pst_node *x = pst_graph_node(w->g, id);
        for (int i = 0; i < x->n_inputs; i++) {
            if (x->inputs[i].node != o.node || x->inputs[i].index != o.index) continue;
            if (visit(w, x, i, ctx)) continue;
            if (op_is(x, pass) && i == 0) {
                downstream(w, pst_out(x, 0), depth + 1, visit, ctx);
            } else if (op_is(x, enqueue_ops) && i >= 1) {
                for (int d = 0; d < pst_graph_num_nodes(w->g); d++) {
                    pst_node *y = pst_graph_node(w->g, d);
                    if (op_is(y, dequeue_ops) && y->inputs[0].node == x->inputs[0].node &&
                        i - 1 < y->n_outputs)
                        downstream(w, pst_out(y, i - 1), depth + 1, visit, ctx);
                }
            }
        }
    }
}

/* DecodeRaw downstream of a string feature: the bytes one example needs (from the Reshape
 * with a constant shape that follows it, else 16 elements). */
static int find_raw(walk *w, pst_node *n, int input, void *ctx) {
    int64_t *bytes = ctx;
    (void)input;
    if (strcmp(n->op->name, "DecodeRaw") != 0) return 0;
    size_t sz = pst_dtype_size(pst_node_attr_type(n, "out_type", PST_UINT8));
    int64_t elems = 16;
    for (int id = 0; id < pst_graph_num_nodes(w->g); id++) {
        pst_node *r = pst_graph_node(w->g, id);
        if (strcmp(r->op->name, "Reshape") != 0 || r->inputs[0].node != n) continue;
        const pst_tensor *s = pst_node_in_const(r, 1);
        if (s == NULL) continue;
        int64_t p = 1;
        for (int64_t i = 0; i < s->n; i++) p *= pst_tensor_get_i64(s, i) > 0 ? pst_tensor_get_i64(s, i) : 1;
        elems = p;
    }
    *bytes = elems * (int64_t)(sz ? sz : 1);
    return 1;
}

static const char *const_str(const pst_node *n, int i) {
    const pst_tensor *t = pst_node_in_const(n, i);
    return t && t->dtype == PST_STRING && t->n == 1 && pst_tensor_str(t)->p ? pst_tensor_str(t)->p
                                                                            : NULL;
}

/* ParseSingleSequenceExample: context features as an Example's, feature lists marked. */
static int find_parse_seq(walk *w, pst_node *n) {
    int ncs = (int)pst_node_attr_i(n, "Ncontext_sparse", 0);
    int ncd = (int)pst_node_attr_i(n, "Ncontext_dense", 0);
    int nfs = (int)pst_node_attr_i(n, "Nfeature_list_sparse", 0);
    int nfd = (int)pst_node_attr_i(n, "Nfeature_list_dense", 0);
    const pst_attr *t[4] = {pst_node_attr(n, "context_sparse_types"),
                            pst_node_attr(n, "Tcontext_dense"),
                            pst_node_attr(n, "feature_list_sparse_types"),
                            pst_node_attr(n, "feature_list_dense_types")};
    const pst_attr *cds = pst_node_attr(n, "context_dense_shapes");
    const pst_attr *fds = pst_node_attr(n, "feature_list_dense_shapes");
    int counts[4] = {ncs, ncd, nfs, nfd}, at = 2;
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < counts[k]; i++) {
            const char *key = const_str(n, at + i);
            if (key == NULL || t[k] == NULL || i >= t[k]->n) continue;
            const pst_attr *sh = k == 1 ? cds : k == 3 ? fds : NULL;
            pst_shape s = sh && i < sh->n ? sh->list.shape[i] : pst_shape_1d(2);
            feat *f = add_feat(w, key, t[k]->list.type[i], s, k == 0 || k == 2, 0);
            f->list = k >= 2;
        }
        at += counts[k];
    }
    return 1;
}

static int find_parse(walk *w, pst_node *n, int input, void *ctx) {
    (void)ctx;
    if (input == 0 && strcmp(n->op->name, "ParseSingleSequenceExample") == 0)
        return find_parse_seq(w, n);
    int single = strcmp(n->op->name, "ParseSingleExample") == 0;
    if (input != 0 || (!single && strcmp(n->op->name, "ParseExample") != 0)) return 0;
    int ns = (int)pst_node_attr_i(n, single ? "num_sparse" : "Nsparse", 0);
    const pst_attr *shapes = pst_node_attr(n, "dense_shapes"), *td = pst_node_attr(n, "Tdense");
    const pst_attr *sty = pst_node_attr(n, "sparse_types");
    int nd = shapes ? shapes->n : 0;
    if (td == NULL || td->n != nd) return 1;
    const pst_attr *sk = pst_node_attr(n, "sparse_keys"), *dk = pst_node_attr(n, "dense_keys");
    for (int i = 0; i < ns && sty && i < sty->n; i++) {
        const char *key = single ? (sk && i < sk->n ? sk->list.s[i] : NULL) : const_str(n, 2 + i);
        if (key) add_feat(w, key, sty->list.type[i], pst_shape_1d(2), 1, 0);
    }
    for (int i = 0; i < nd; i++) {
        const char *key =
            single ? (dk && i < dk->n ? dk->list.s[i] : NULL) : const_str(n, 2 + ns + i);
        if (key == NULL) continue;
        int64_t raw = 0;
        if (td->list.type[i] == PST_STRING) downstream(w, pst_out(n, 3 * ns + i), 0, find_raw, &raw);
        add_feat(w, key, td->list.type[i], shapes->list.shape[i], 0, raw);
    }
    return 1;
}

/* DecodeCSV downstream of a text reader: its column count (fields per line) and types. */
typedef struct csv_spec {
    int ncol;
    pst_dtype types[64];
} csv_spec;

static int find_csv(walk *w, pst_node *n, int input, void *ctx) {
    csv_spec *cs = ctx;
    (void)w;
    if (input != 0 || strcmp(n->op->name, "DecodeCSV") != 0 || cs->ncol) return 0;
    const pst_attr *sel = pst_node_attr(n, "select_cols");
    int ncol = n->n_inputs - 1;
    if (sel && sel->kind == PST_ATTR_LIST_INT && sel->n > 0) ncol = (int)sel->list.i[sel->n - 1] + 1;
    cs->ncol = ncol < 64 ? ncol : 64;
    for (int j = 0; j < cs->ncol; j++)
        cs->types[j] = j < n->n_inputs - 1 && !(sel && sel->n) ? pst_node_in_dtype(n, 1 + j)
                                                             : PST_INT32;
    return 1;
}

/* DecodeJpeg / DecodePng downstream of a whole-file reader: which, and its channels. */
static int find_image(walk *w, pst_node *n, int input, void *ctx) {
    int *kind = ctx; /* [0]: 1 jpeg, 2 png; [1]: channels */
    (void)w;
    if (input != 0 || kind[0]) return 0;
    if (strcmp(n->op->name, "DecodeJpeg") == 0) kind[0] = 1;
    else if (strcmp(n->op->name, "DecodePng") == 0) kind[0] = 2;
    else return 0;
    kind[1] = (int)pst_node_attr_i(n, "channels", 0);
    return 1;
}

/* skip header lines, then n lines of as many comma-separated fields as cs has columns (0/1,
 * 0.5, or a letter by column type). */
static void write_csv_lines(FILE *f, const csv_spec *cs, int64_t skip, int n) {
    for (int64_t i = 0; i < skip; i++) fprintf(f, "header\n");
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < (cs->ncol ? cs->ncol : 1); j++) {
            if (j) fputc(',', f);
            if (cs->types[j] == PST_STRING) fputc('a' + (r + j) % 26, f);
            else if (cs->types[j] == PST_FLOAT || cs->types[j] == PST_DOUBLE) fprintf(f, "0.5");
            else fprintf(f, "%d", (r + j) % 2);
        }
        fputc('\n', f);
    }
}

/* Raw files for FixedLengthRecordReader (bytes 0 and 1: valid labels and pixels) and lines of
 * 0/1 fields for TextLineReader + DecodeCSV. */
static int write_plain(walk *w, pst_node *reader_op, pst_output value, const char *path,
                       int n_records, int *n_features, pst_status *st) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    if (strncmp(reader_op->op->name, "WholeFile", 9) == 0) { /* one image, else text */
        int kind[2] = {0, 0};
        downstream(w, value, 0, find_image, kind);
        fclose(f);
        if (n_features) *n_features = kind[0] ? 1 : 0;
        if (kind[0] == 0) {
            FILE *t = fopen(path, "wb");
            if (t == NULL || fputs("0 1\n", t) < 0 || fclose(t) != 0)
                return pst_status_set(st, PST_E_IO, "cannot write %s", path);
            return 0;
        }
        int ch = kind[1] == 1 ? 1 : kind[1] == 4 && kind[0] == 2 ? 4 : 3;
        uint8_t px[32 * 32 * 4];
        for (int i = 0; i < 32 * 32 * ch; i++) px[i] = (uint8_t)((i * 37) % 256);
        (void)n_records;
        return pst_image_write(path, kind[0] == 1, px, 32, 32, ch, st);
    }
    if (strncmp(reader_op->op->name, "FixedLength", 11) == 0) {
        int64_t header = pst_node_attr_i(reader_op, "header_bytes", 0);
        int64_t record = pst_node_attr_i(reader_op, "record_bytes", 1);
        int64_t footer = pst_node_attr_i(reader_op, "footer_bytes", 0);
        for (int64_t i = 0; i < header; i++) fputc(0, f);
        for (int r = 0; r < n_records; r++)
            for (int64_t j = 0; j < record; j++) fputc((int)((r + j) % 2), f);
        for (int64_t i = 0; i < footer; i++) fputc(0, f);
        if (n_features) *n_features = 1;
    } else {
        csv_spec cs = {0};
        downstream(w, value, 0, find_csv, &cs);
        write_csv_lines(f, &cs, pst_node_attr_i(reader_op, "skip_header_lines", 0), n_records);
        if (n_features) *n_features = cs.ncol;
    }
    if (fclose(f) != 0) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    return 0;
}

/* A SequenceExample's feature_lists (field 2) for the list features: 2 steps each, a step
 * being one Feature of the step shape's values (0.5, class ids 0/1, or short bytes). */
static void put_feature_lists(pst_pbwire_buf *b, const feat *fs, int nf, int r) {
    int any = 0;
    for (int i = 0; i < nf; i++) any |= fs[i].list;
    if (!any) return;
    size_t lists = pst_pbwire_begin(b, 2);
    for (int i = 0; i < nf; i++) {
        const feat *f = &fs[i];
        if (!f->list) continue;
        int64_t n = 1;
        for (int d = 0; d < f->shape.rank; d++) n *= f->shape.dims[d] < 0 ? 2 : f->shape.dims[d];
        if (n > 4096) n = 4096;
        size_t entry = pst_pbwire_begin(b, 1);
        pst_pbwire_put_string(b, 1, f->key);
        size_t list = pst_pbwire_begin(b, 2);
        for (int step = 0; step < 2; step++) {
            size_t feature = pst_pbwire_begin(b, 1);
            if (f->dt == PST_STRING) {
                size_t bl = pst_pbwire_begin(b, 1);
                for (int64_t j = 0; j < n; j++) pst_pbwire_put_bytes(b, 1, "ab", 2);
                pst_pbwire_end(b, bl);
            } else {
                size_t vl = pst_pbwire_begin(b, f->dt == PST_FLOAT ? 2 : 3);
                size_t packed = pst_pbwire_begin(b, 1);
                for (int64_t j = 0; j < n; j++) {
                    if (f->dt == PST_FLOAT)
                        pst_pbwire_put_raw(b, (const uint8_t[]){0, 0, 0, 0x3f}, 4); /* 0.5 */
                    else
                        pst_pbwire_put_rawvarint(b, (uint64_t)((r + step + j) % 2));
                }
                pst_pbwire_end(b, packed);
                pst_pbwire_end(b, vl);
            }
            pst_pbwire_end(b, feature);
        }
        pst_pbwire_end(b, list);
        pst_pbwire_end(b, entry);
    }
    pst_pbwire_end(b, lists);
}

int pst_imported_synthetic_records(pst_imported *m, const char *path, int n_records,
                                   int *n_features, pst_status *st) {
    walk w = {.g = pst_imported_graph(m)};
    for (int id = 0; id < pst_graph_num_nodes(w.g); id++) {
        pst_node *r = pst_graph_node(w.g, id);
        if (!op_is(r, reader_read_ops) || r->n_outputs < 2) continue;
        const char *kind = r->inputs[0].node->op->name;
        if (strncmp(kind, "FixedLength", 11) == 0 || strncmp(kind, "TextLine", 8) == 0 ||
            strncmp(kind, "WholeFile", 9) == 0)
            return write_plain(&w, r->inputs[0].node, pst_out(r, 1), path, n_records,
                               n_features, st);
        downstream(&w, pst_out(r, 1), 0, find_parse, NULL);
    }
    /* tf.data: the parse ops of the records an iterator gives, and of the functions a dataset
     * maps over its records (a string argument's consumers, in the function's body). */
    pst_graph *top = w.g;
    for (int id = 0; id < pst_graph_num_nodes(top); id++) {
        pst_node *x = pst_graph_node(top, id);
        for (int i = 0; op_is(x, get_next_ops) && i < x->n_outputs; i++)
            if (x->out_dtypes[i] == PST_STRING) downstream(&w, pst_out(x, i), 0, find_parse, NULL);
    }
    for (int i = 0; i < pst_graph_num_functions(top); i++) {
        const pst_function *f = pst_graph_function_at(top, i);
        w.g = f->body;
        for (int a = 0; a < f->n_args; a++)
            if (f->args[a]->out_dtypes[0] == PST_STRING)
                downstream(&w, pst_out(f->args[a], 0), 0, find_parse, NULL);
    }
    w.g = top;
    if (n_features) *n_features = w.nf;
    pst_tfrecord_writer *wr = pst_tfrecord_writer_open(path, NULL, st);
    pst_example *ex = pst_example_new();
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    int rc = wr && ex ? 0 : (st->code ? st->code : PST_E_EXHAUSTED);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int r = 0; r < n_records && rc == 0; r++) {
        pst_example_clear(ex);
        for (int i = 0; i < w.nf && rc == 0; i++) {
            feat *f = &w.f[i];
            if (f->list) continue;
            int64_t n = 1;
            for (int d = 0; d < f->shape.rank; d++) n *= f->shape.dims[d] < 0 ? 2 : f->shape.dims[d];
            if (n > (1 << 24)) n = 1 << 24;
            if (f->dt == PST_FLOAT) {
                float *v = malloc((size_t)n * sizeof *v + 1);
                PST_ASSERT(v != NULL);
                for (int64_t j = 0; j < n; j++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    v[j] = (float)(0.25 + 0.5 * (double)(x >> 11) / 9007199254740992.0);
                }
                rc = pst_example_add_floats(ex, f->key, v, (size_t)n, st);
                free(v);
            } else if (f->dt == PST_INT64) { /* class ids 0 and 1, valid whatever the depth */
                int64_t *v = malloc((size_t)n * sizeof *v + 1);
                PST_ASSERT(v != NULL);
                for (int64_t j = 0; j < n; j++) v[j] = (r + j) % 2;
                rc = pst_example_add_int64s(ex, f->key, v, (size_t)n, st);
                free(v);
            } else { /* bytes: what a DecodeRaw wants, else short text */
                int64_t len = f->raw_bytes > 0 ? f->raw_bytes : 4;
                uint8_t *p = malloc((size_t)len + 1);
                PST_ASSERT(p != NULL);
                for (int64_t j = 0; j < len; j++) p[j] = (uint8_t)('a' + (r + j) % 26);
                pst_example_bytes *bv = calloc((size_t)n + 1, sizeof *bv);
                PST_ASSERT(bv != NULL);
                for (int64_t j = 0; j < n; j++) bv[j] = (pst_example_bytes){p, (size_t)len};
                rc = pst_example_add_bytes(ex, f->key, bv, (size_t)n, st);
                free(bv), free(p);
            }
        }
        pst_pbwire_buf_reset(&b);
        if (rc == 0) rc = pst_example_encode(ex, &b, st); /* an Example, or the context */
        if (rc == 0) put_feature_lists(&b, w.f, w.nf, r);
        if (rc == 0) rc = pst_tfrecord_writer_write(wr, b.data, b.len, st);
    }
    if (wr && rc == 0) rc = pst_tfrecord_writer_close(wr, st);
    else pst_tfrecord_writer_abort(wr);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
    free(w.f);
    return rc;
}

/* ---- tf.data input ---------------------------------------------------------------------- */

static const char *const iterator_ops[] = {"Iterator", "IteratorV2", NULL};
static const char *const from_handle_ops[] = {"IteratorFromStringHandle",
                                              "IteratorFromStringHandleV2", NULL};

int pst_imported_uses_datasets(pst_imported *m, pst_node *const *targets, int n_targets) {
    pst_graph *g = pst_imported_graph(m);
    char *need = pst_imported_ancestors(g, targets, n_targets);
    int found = 0;
    for (int id = 0; id < pst_graph_num_nodes(g) && !found; id++)
        found = need[id] && op_is(pst_graph_node(g, id), get_next_ops);
    free(need);
    return found;
}

/* The initializer of an iterator: its MakeIterator whose name holds "train" when it has
 * several (a reinitializable iterator's train and test datasets), else its first. */
static pst_node *iterator_init(pst_graph *g, const pst_node *iterator) {
    pst_node *first = NULL;
    for (int id = 0; id < pst_graph_num_nodes(g); id++) {
        pst_node *x = pst_graph_node(g, id);
        if (strcmp(x->op->name, "MakeIterator") != 0 || x->n_inputs < 2 ||
            x->inputs[1].node != iterator)
            continue;
        if (strstr(x->name, "train")) return x;
        if (first == NULL) first = x;
    }
    return first;
}

/* For a feedable iterator (IteratorFromStringHandle of a placeholder): the iterator whose
 * handle it gets, the one whose name holds "train" among those with an initializer, else the
 * first such. */
static pst_node *handle_iterator(pst_graph *g) {
    pst_node *first = NULL;
    for (int id = 0; id < pst_graph_num_nodes(g); id++) {
        pst_node *x = pst_graph_node(g, id);
        if (!op_is(x, iterator_ops) || iterator_init(g, x) == NULL) continue;
        if (strstr(x->name, "train")) return x;
        if (first == NULL) first = x;
    }
    return first;
}

/* Adds a feed of value (taken) to output o, unless o is fed already (value dropped). */
static void add_feed(pst_imported_dataset_input *in, pst_output o, pst_tensor *v) {
    for (int k = 0; k < in->n_feeds; k++)
        if (in->feeds[k].output.node == o.node && in->feeds[k].output.index == o.index) {
            pst_tensor_unref(v);
            return;
        }
    in->feeds[in->n_feeds++] = (pst_feed){o, v};
}

/* With rows > 0: synthetic values (a first unknown dim of `rows`) for the placeholders the
 * initializers need that are not fed yet (Dataset.from_tensor_slices(placeholder), fed by the
 * user's feed_dict at initialization). */
static int synthetic_placeholders(pst_imported *m, int rows, pst_imported_dataset_input *in,
                                  pst_status *st) {
    if (rows <= 0 || in->n_inits == 0) return 0;
    pst_output *ph;
    int nph;
    pst_imported_placeholders(m, in->inits, in->n_inits, &ph, &nph);
    int rc = 0;
    for (int i = 0; i < nph && rc == 0; i++) {
        int fed = 0;
        for (int k = 0; k < in->n_feeds; k++) fed |= in->feeds[k].output.node == ph[i].node;
        if (fed) continue;
        pst_tensor *v = pst_imported_synthetic_feed(ph[i], rows, (uint64_t)i + 201, st);
        if (v == NULL) rc = st->code;
        else add_feed(in, ph[i], v);
    }
    free(ph);
    return rc;
}

int pst_imported_dataset_inputs(pst_imported *m, pst_node *const *targets, int n_targets,
                                const char *path, int synthetic_rows,
                                pst_imported_dataset_input *in, pst_status *st) {
    pst_graph *g = pst_imported_graph(m);
    int nn = pst_graph_num_nodes(g);
    memset(in, 0, sizeof *in);
    in->inits = calloc((size_t)nn + 1, sizeof *in->inits);
    in->feeds = calloc((size_t)nn * 3 + 2, sizeof *in->feeds);
    in->handles = calloc((size_t)nn + 1, sizeof *in->handles);
    PST_ASSERT(in->inits && in->feeds && in->handles);
    char *need = pst_imported_ancestors(g, targets, n_targets);
    for (int id = 0; id < nn; id++) {
        pst_node *x = pst_graph_node(g, id);
        if (!need[id] || !op_is(x, get_next_ops)) continue;
        pst_node *it = x->inputs[0].node;
        if (op_is(it, from_handle_ops)) {
            pst_node *h = handle_iterator(g);
            if (h == NULL) {
                free(need);
                return pst_status_set(st, PST_E_PRECONDITION, "'%s' reads the iterator a string "
                                      "handle names, and no iterator of the graph has an "
                                      "initializer (MakeIterator)", x->name);
            }
            char key[600];
            snprintf(key, sizeof key, "%s%s", PST_TF_DATA_ITERATOR_KEY, h->name);
            pst_output src = it->inputs[0];
            int dup = 0;
            for (int i = 0; i < in->n_handles; i++)
                dup |= in->handles[i].output.node == src.node;
            if (!dup) {
                pst_tensor *v = pst_tensor_scalar_str(key);
                if (v == NULL) {
                    free(need);
                    return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
                }
                in->handles[in->n_handles++] = (pst_feed){src, v};
            }
            it = h;
        }
        if (!op_is(it, iterator_ops)) continue; /* OneShotIterator: needs no initializer */
        pst_node *init = iterator_init(g, it);
        if (init == NULL) {
            free(need);
            return pst_status_set(st, PST_E_PRECONDITION, "iterator '%s' (read by '%s') has no "
                                  "initializer (MakeIterator) in the graph", it->name, x->name);
        }
        int dup = 0;
        for (int i = 0; i < in->n_inits; i++) dup |= in->inits[i] == init;
        if (!dup) in->inits[in->n_inits++] = init;
    }
    free(need);
    if (path == NULL) return synthetic_placeholders(m, synthetic_rows, in, st);
    /* Every TFRecordDataset reads path: those the initializers run through their file-name
     * inputs (fed below), and those inside functions (a one-shot iterator's dataset function,
     * an interleave's) through the session's override. */
    if (pst_tf_data_set_file(pst_imported_vars(m), "TFRecordDataset", path, st) < 0)
        return st->code;
    char *under = pst_imported_ancestors(g, in->inits, in->n_inits);
    for (int id = 0; id < nn; id++) {
        pst_node *x = pst_graph_node(g, id);
        if (under[id] && strcmp(x->op->name, "MatchingFiles") == 0) {
            /* Dataset.list_files: the pattern's matches are the file. */
            pst_tensor *v = pst_tensor_from_strs(1, &path);
            if (v == NULL) {
                free(under);
                return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            }
            add_feed(in, pst_out(x, 0), v);
            continue;
        }
        if (!under[id] || strcmp(x->op->name, "TFRecordDataset") != 0) continue;
        pst_shape s = pst_output_shape(x->inputs[0]);
        int64_t k = s.rank == 1 && s.dims[0] > 0 ? s.dims[0] : 1;
        const char **names = calloc((size_t)k + 1, sizeof *names);
        PST_ASSERT(names != NULL);
        for (int64_t i = 0; i < k; i++) names[i] = path;
        pst_tensor *v = s.rank == 0 ? pst_tensor_scalar_str(path)
                                    : pst_tensor_from_strs((int)k, names);
        free(names);
        if (v == NULL) {
            free(under);
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        }
        add_feed(in, x->inputs[0], v);
        if (x->n_inputs > 1) { /* the file is uncompressed, whatever the graph's was */
            pst_tensor *c = pst_tensor_scalar_str("");
            if (c == NULL) {
                free(under);
                return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            }
            add_feed(in, x->inputs[1], c);
        }
    }
    free(under);
    return synthetic_placeholders(m, synthetic_rows, in, st);
}

int pst_imported_run_dataset_inits(pst_imported *m, const pst_imported_dataset_input *in,
                                   pst_status *st) {
    if (in->n_inits == 0) return 0;
    return pst_imported_run_targets(m, in->feeds, in->n_feeds, in->inits, in->n_inits, st);
}

void pst_imported_dataset_input_free(pst_imported_dataset_input *in) {
    for (int i = 0; i < in->n_feeds; i++) pst_tensor_unref(in->feeds[i].value);
    for (int i = 0; i < in->n_handles; i++) pst_tensor_unref(in->handles[i].value);
    free(in->feeds), free(in->handles), free(in->inits);
    memset(in, 0, sizeof *in);
}

/* The first node of g or of its functions' bodies whose op starts with prefix. */
static pst_node *find_op(pst_graph *g, const char *prefix) {
    for (int id = 0; id < pst_graph_num_nodes(g); id++)
        if (strncmp(pst_graph_node(g, id)->op->name, prefix, strlen(prefix)) == 0)
            return pst_graph_node(g, id);
    for (int i = 0; i < pst_graph_num_functions(g); i++) {
        const pst_function *f = pst_graph_function_at(g, i);
        pst_node *x = f->body ? find_op(f->body, prefix) : NULL;
        if (x) return x;
    }
    return NULL;
}

int pst_imported_synthetic_dataset_file(pst_imported *m, const char *op, const char *path,
                                        int n_records, pst_status *st) {
    pst_graph *g = pst_imported_graph(m);
    pst_node *ds = find_op(g, op);
    if (ds == NULL) return 0;
    FILE *f = fopen(path, "wb");
    if (f == NULL) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    if (strncmp(op, "TextLine", 8) == 0) {
        /* The DecodeCSV of the functions the dataset maps over its lines. */
        csv_spec cs = {0};
        walk w = {0};
        for (int i = 0; i < pst_graph_num_functions(g) && cs.ncol == 0; i++) {
            const pst_function *fn = pst_graph_function_at(g, i);
            w.g = fn->body;
            for (int a = 0; fn->body && a < fn->n_args; a++)
                if (fn->args[a]->out_dtypes[0] == PST_STRING)
                    downstream(&w, pst_out(fn->args[a], 0), 0, find_csv, &cs);
        }
        /* Else a DecodeCSV of the lines the graph's iterators give. */
        w.g = g;
        for (int id = 0; id < pst_graph_num_nodes(g) && cs.ncol == 0; id++) {
            pst_node *x = pst_graph_node(g, id);
            for (int i = 0; op_is(x, get_next_ops) && i < x->n_outputs; i++)
                if (x->out_dtypes[i] == PST_STRING)
                    downstream(&w, pst_out(x, i), 0, find_csv, &cs);
        }
        write_csv_lines(f, &cs, 0, n_records);
    } else {
        const pst_tensor *h = pst_node_in_const(ds, 1), *r = pst_node_in_const(ds, 2);
        const pst_tensor *t = pst_node_in_const(ds, 3);
        int64_t header = h ? pst_tensor_get_i64(h, 0) : 0, record = r ? pst_tensor_get_i64(r, 0) : 1;
        int64_t footer = t ? pst_tensor_get_i64(t, 0) : 0;
        for (int64_t i = 0; i < header; i++) fputc(0, f);
        for (int k = 0; k < n_records; k++)
            for (int64_t j = 0; j < record; j++) fputc((int)((k + j) % 2), f);
        for (int64_t i = 0; i < footer; i++) fputc(0, f);
    }
    if (fclose(f) != 0) return pst_status_set(st, PST_E_IO, "cannot write %s", path);
    return 1;
}
