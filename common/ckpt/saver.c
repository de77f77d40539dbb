#include "saver.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "kernels_ew.h"
#include "metagraph.h"
#include "op.h"
#include "device.h"
#include "varstore.h"
#include "file.h"
#include "device.h"

struct pst_saver {
    pst_graph *g;
    int n;
    pst_output *vars;
    char **names;
    int max_to_keep;
    double keep_hours;
    int write_meta;
    int sharded;
    char **kept; /* our checkpoints, oldest first */
    int n_kept;
    char *dir;   /* the directory of the last save, for recovery */
    double last_kept_time;
    int (*write_fn)(void *ctx, const char *prefix, pst_status *st);
    void *write_ctx;
};

pst_saver *pst_saver_new(pst_graph *g, const pst_saver_opts *o, pst_status *st) {
    pst_saver *s = calloc(1, sizeof *s);
    PST_ASSERT(s != NULL);
    s->g = g;
    const pst_output *vars = o ? o->vars : NULL;
    int n = o ? o->n_vars : 0;
    if (vars == NULL) vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    s->n = n;
    s->vars = calloc((size_t)n + 1, sizeof *s->vars);
    s->names = calloc((size_t)n + 1, sizeof *s->names);
    PST_ASSERT(s->vars && s->names);
    for (int i = 0; i < n; i++) {
        if (vars[i].node == NULL || !(vars[i].node->op->flags & PST_OP_VARIABLE)) {
            pst_status_set(st, PST_E_INVALID, "saver: item %d is not a variable", i);
            pst_saver_free(s);
            return NULL;
        }
        s->vars[i] = vars[i];
        /* A part of a partitioned variable is stored as a slice of its full name. */
        const char *full = pst_node_attr_s(vars[i].node, "_save_slice_full_name", NULL);
        s->names[i] = strdup(o && o->names ? o->names[i] : full ? full : vars[i].node->name);
    }
    s->max_to_keep = o && o->max_to_keep ? o->max_to_keep : 5;
    s->keep_hours = o ? o->keep_checkpoint_every_n_hours : 0;
    s->write_meta = o ? o->write_meta : 1;
    s->sharded = o ? o->sharded : 0;
    s->write_fn = o ? o->write_fn : NULL;
    s->write_ctx = o ? o->write_ctx : NULL;
    s->last_kept_time = (double)time(NULL);
    return s;
}

void pst_saver_free(pst_saver *s) {
    if (s == NULL) return;
    for (int i = 0; i < s->n; i++) free(s->names[i]);
    for (int i = 0; i < s->n_kept; i++) free(s->kept[i]);
    free(s->kept);
    free(s->names);
    free(s->vars);
    free(s->dir);
    free(s);
}

static void split_dir(const char *path, char *dir, size_t len) {
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, len, ".");
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Absolute or dir-relative path of a state-file entry. */
static void resolve(const char *dir, const char *entry, char *out, size_t len) {
    if (entry[0] == '/')
        snprintf(out, len, "%s", entry);
    else
        snprintf(out, len, "%s/%s", dir, entry);
}

int pst_checkpoint_state_write(const char *dir, int n, char *const *paths, pst_status *st) {
    size_t cap = 256 + (size_t)n * 4200;
    char *buf = malloc(cap);
    PST_ASSERT(buf != NULL);
    size_t off = 0;
    if (n > 0)
        off += (size_t)snprintf(buf + off, cap - off, "model_checkpoint_path: \"%s\"\n",
                                base_name(paths[n - 1]));
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "all_model_checkpoint_paths: \"%s\"\n",
                                base_name(paths[i]));
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    int rc = pst_file_write_atomic(path, buf, off, st);
    free(buf);
    return rc;
}

int pst_checkpoint_list(const char *dir, char ***paths, pst_status *st) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    *paths = NULL;
    if (access(path, F_OK) != 0) return 0;
    uint8_t *buf;
    size_t len;
    int rc = pst_file_read(path, (size_t)1 << 30, &buf, &len, st);
    if (rc < 0) return rc;
    char *text = malloc(len + 1);
    if (len) memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    char **list = NULL, *model = NULL;
    int n = 0, lineno = 0;
    rc = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        while (*line == ' ' || *line == '\t') line++;
        if (*line == '\0') continue;
        char *colon = strchr(line, ':'), *q1 = colon ? strchr(colon, '"') : NULL;
        char *q2 = q1 ? strrchr(q1 + 1, '"') : NULL;
        if (!colon || !q1 || !q2 || q2 == q1) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: line %d is not 'key: \"value\"'", path, lineno);
            break;
        }
        *q2 = '\0';
        size_t klen = (size_t)(colon - line);
        char full[4200];
        resolve(dir, q1 + 1, full, sizeof full);
        if (klen == 21 && strncmp(line, "model_checkpoint_path", 21) == 0) {
            free(model);
            model = strdup(full);
        } else if (klen == 26 && strncmp(line, "all_model_checkpoint_paths", 26) == 0) {
            list = realloc(list, (size_t)(n + 1) * sizeof *list);
            list[n++] = strdup(full);
        } else {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: line %d has an unknown field", path, lineno);
            break;
        }
    }
    free(text);
    if (rc == 0 && model == NULL && n > 0)
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: no model_checkpoint_path", path);
    if (rc == 0 && model) {
        /* Make sure the newest is last, as TensorFlow keeps it. */
        int found = 0;
        for (int i = 0; i < n; i++) found |= strcmp(list[i], model) == 0;
        if (!found) {
            list = realloc(list, (size_t)(n + 1) * sizeof *list);
            list[n++] = strdup(model);
        }
    }
    free(model);
    if (rc < 0) {
        for (int i = 0; i < n; i++) free(list[i]);
        free(list);
        return rc;
    }
    *paths = list;
    return n;
}

static int intact(const char *prefix, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL) return -1;
    int rc = pst_bundle_verify(r, st);
    pst_bundle_reader_free(r);
    return rc;
}

int pst_latest_checkpoint(const char *dir, int start_fresh, char *out, size_t out_len,
                          char *warning, size_t warn_len, pst_status *st) {
    char **list;
    if (warning && warn_len) warning[0] = '\0';
    pst_status lst = {0};
    int n = pst_checkpoint_list(dir, &list, &lst);
    if (n < 0) {
        if (start_fresh) {
            if (warning) snprintf(warning, warn_len, "ignoring an unreadable state file: %s", lst.msg);
            return 1;
        }
        return pst_status_set(st, lst.code, "%s (pass the start-fresh option to ignore it)", lst.msg);
    }
    int rc = 1;
    for (int i = n - 1; i >= 0; i--) {
        pst_status vst = {0};
        if (intact(list[i], &vst) == 0) {
            snprintf(out, out_len, "%s", list[i]);
            rc = 0;
            break;
        }
        if (warning && warn_len) {
            size_t used = strlen(warning);
            snprintf(warning + used, warn_len - used, "%scheckpoint %s is unusable (%s); falling back",
                     used ? "; " : "", list[i], vst.msg);
        }
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

static void delete_checkpoint(const char *prefix) {
    char pat[4200];
    snprintf(pat, sizeof pat, "%s.data-*", prefix);
    glob_t gl;
    if (glob(pat, 0, NULL, &gl) == 0) {
        for (size_t i = 0; i < gl.gl_pathc; i++) unlink(gl.gl_pathv[i]);
        globfree(&gl);
    }
    snprintf(pat, sizeof pat, "%s.index", prefix);
    unlink(pat);
    snprintf(pat, sizeof pat, "%s.meta", prefix);
    unlink(pat);
}

typedef struct slice_info {
    pst_shape full;
    int64_t start[PST_MAX_RANK], len[PST_MAX_RANK];
} slice_info;

/* The save-slice attrs of a partitioned variable's part (see placement.h); 0 when it is whole. */
static int slice_of(const pst_node *n, slice_info *si) {
    const pst_attr *fs = pst_node_attr(n, "_save_slice_full_shape");
    const pst_attr *off = pst_node_attr(n, "_save_slice_var_offset");
    const pst_attr *vs = pst_node_attr(n, "_save_slice_var_shape");
    if (!fs || !off || !vs || fs->n != off->n || fs->n != vs->n || fs->n > PST_MAX_RANK) return 0;
    si->full.rank = fs->n;
    for (int d = 0; d < fs->n; d++) {
        si->full.dims[d] = fs->list.i[d];
        si->start[d] = off->list.i[d];
        si->len[d] = vs->list.i[d];
    }
    return 1;
}

/* Rows of the full tensor that belong to a part (start/len per dim). */
static pst_tensor *cut(const pst_tensor *full, const slice_info *si, pst_status *st) {
    pst_shape ps = pst_shape_make(full->shape.rank, si->len);
    pst_tensor *t = pst_tensor_new(full->dtype, ps, st);
    if (t == NULL) return NULL;
    int64_t fs[PST_MAX_RANK], ts[PST_MAX_RANK], off = 0;
    pst_shape_strides(&full->shape, fs);
    pst_shape_strides(&ps, ts);
    for (int d = 0; d < ps.rank; d++) off += si->start[d] * fs[d];
    size_t es = pst_dtype_size(full->dtype);
    pst_strided_copy(t->data, ts, (const char *)full->data + off * (int64_t)es, fs, ps.dims,
                     ps.rank, es);
    return t;
}

/* Writes the variables whose index is in `which` (n of them) to one bundle at prefix. */
static int write_vars(pst_saver *s, pst_var_store *vs, const char *prefix, int n, const int *which,
                      pst_status *st) {
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, st);
    if (w == NULL) return st ? st->code : PST_E_IO;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        int i = which[k];
        pst_var *v = pst_var_store_find(vs, s->vars[i].node->name);
        pst_tensor *t = v ? pst_var_read(v) : NULL;
        if (t == NULL) {
            rc = pst_status_set(st, PST_E_PRECONDITION, "cannot save variable '%s': it is not "
                                "initialized", s->vars[i].node->name);
            break;
        }
        slice_info si;
        if (slice_of(s->vars[i].node, &si))
            rc = pst_bundle_writer_add_slice(w, s->names[i], si.full, si.start, si.len, t, st);
        else
            rc = pst_bundle_writer_add(w, s->names[i], t, st);
        pst_tensor_unref(t);
    }
    if (rc < 0) {
        pst_bundle_writer_abort(w);
        return rc;
    }
    return pst_bundle_writer_finish(w, st);
}

/* One bundle, or (sharded) one per device task merged into one index. */
static int write_bundle(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st) {
    if (s->write_fn) return s->write_fn(s->write_ctx, prefix, st);
    int *which = malloc((size_t)(s->n + 1) * sizeof *which);
    PST_ASSERT(which != NULL);
    int rc = 0;
    if (!s->sharded) {
        for (int i = 0; i < s->n; i++) which[i] = i;
        rc = write_vars(s, pst_session_vars(sess), prefix, s->n, which, st);
        free(which);
        return rc;
    }
    char (*tasks)[PST_DEVICE_MAX] = calloc((size_t)s->n + 1, sizeof *tasks);
    int *task_of = calloc((size_t)s->n + 1, sizeof *task_of), n_tasks = 0;
    PST_ASSERT(tasks && task_of);
    for (int i = 0; i < s->n && rc == 0; i++) {
        char t[PST_DEVICE_MAX];
        if ((rc = pst_device_task(s->vars[i].node->device, "/job:localhost", t, sizeof t, st)) < 0) break;
        int k = 0;
        while (k < n_tasks && strcmp(tasks[k], t) != 0) k++;
        if (k == n_tasks) snprintf(tasks[n_tasks++], PST_DEVICE_MAX, "%s", t);
        task_of[i] = k;
    }
    char **parts = calloc((size_t)n_tasks + 1, sizeof *parts);
    for (int k = 0; k < n_tasks && rc == 0; k++) {
        int m = 0;
        for (int i = 0; i < s->n; i++)
            if (task_of[i] == k) which[m++] = i;
        parts[k] = malloc(4200);
        snprintf(parts[k], 4200, "%s_temp_shard%d", prefix, k);
        rc = write_vars(s, pst_session_vars(sess), parts[k], m, which, st);
    }
    if (rc == 0) rc = pst_bundle_merge(n_tasks, (const char *const *)parts, prefix, st);
    for (int k = 0; k < n_tasks; k++) free(parts[k]);
    free(parts);
    free(tasks);
    free(task_of);
    free(which);
    return rc;
}

int pst_saver_save(pst_saver *s, pst_session *sess, const char *path, int64_t step, char *out,
                   size_t out_len, pst_status *st) {
    char prefix[4096], dir[4096];
    if (step >= 0)
        snprintf(prefix, sizeof prefix, "%s-%lld", path, (long long)step);
    else
        snprintf(prefix, sizeof prefix, "%s", path);
    split_dir(prefix, dir, sizeof dir);
    /* After a restart, pick up the list of checkpoints this directory already has. */
    if (s->dir == NULL || strcmp(s->dir, dir) != 0) {
        for (int i = 0; i < s->n_kept; i++) free(s->kept[i]);
        free(s->kept);
        s->kept = NULL;
        s->n_kept = 0;
        pst_status lst = {0};
        int n = pst_checkpoint_list(dir, &s->kept, &lst);
        s->n_kept = n > 0 ? n : 0;
        free(s->dir);
        s->dir = strdup(dir);
    }
    int rc = write_bundle(s, sess, prefix, st);
    if (rc < 0) return rc;
    if (s->write_meta) {
        char meta[4200];
        snprintf(meta, sizeof meta, "%s.meta", prefix);
        pst_saver_def sd = {s->max_to_keep, 0, (float)s->keep_hours};
        pst_meta_export_opts mo = {.saver_def = &sd};
        if ((rc = pst_meta_graph_write(s->g, &mo, meta, st)) < 0) return rc;
    }
    /* The new checkpoint goes last; older ones beyond max_to_keep are deleted unless the
     * every-n-hours rule keeps them (they then leave the list but stay on disk). */
    for (int i = 0; i < s->n_kept; i++)
        if (strcmp(s->kept[i], prefix) == 0) {
            free(s->kept[i]);
            memmove(&s->kept[i], &s->kept[i + 1], (size_t)(s->n_kept - i - 1) * sizeof *s->kept);
            s->n_kept--;
            break;
        }
    s->kept = realloc(s->kept, (size_t)(s->n_kept + 1) * sizeof *s->kept);
    s->kept[s->n_kept++] = strdup(prefix);
    while (s->max_to_keep > 0 && s->n_kept > s->max_to_keep) {
        double now = (double)time(NULL);
        if (s->keep_hours > 0 && now - s->last_kept_time >= s->keep_hours * 3600) {
            s->last_kept_time = now;
        } else {
            delete_checkpoint(s->kept[0]);
        }
        free(s->kept[0]);
        memmove(&s->kept[0], &s->kept[1], (size_t)(s->n_kept - 1) * sizeof *s->kept);
        s->n_kept--;
    }
    if ((rc = pst_checkpoint_state_write(dir, s->n_kept, s->kept, st)) < 0) return rc;
    if (out) snprintf(out, out_len, "%s", prefix);
    return 0;
}

int pst_saver_write_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st) {
    int *which = malloc((size_t)(s->n + 1) * sizeof *which);
    PST_ASSERT(which != NULL);
    for (int i = 0; i < s->n; i++) which[i] = i;
    int rc = write_vars(s, vs, prefix, s->n, which, st);
    free(which);
    return rc;
}

int pst_saver_restore(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st) {
    return pst_saver_restore_store(s, pst_session_vars(sess), prefix, st);
}

int pst_saver_restore_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL) return st ? st->code : PST_E_DATA_LOSS;
    char problems[PST_STATUS_MSG_MAX] = "";
    size_t off = 0;
    int bad = 0, rc = 0;
    for (int i = 0; i < s->n; i++) {
        const pst_bundle_entry *e = pst_bundle_reader_find(r, s->names[i]);
        pst_node *vn = s->vars[i].node;
        pst_shape vshape = vn->out_shapes[0];
        slice_info si;
        if (slice_of(vn, &si)) vshape = si.full; /* compared with the full tensor */
        char a[128], b[128];
        const char *why = NULL;
        char detail[320];
        if (e == NULL) {
            why = "missing";
            snprintf(detail, sizeof detail, "%s (missing)", s->names[i]);
        } else if (e->dtype != vn->out_dtypes[0] || !pst_shape_compatible(&vshape, &e->shape)) {
            why = "mismatch";
            snprintf(detail, sizeof detail, "%s (checkpoint %s %s, variable %s %s)", s->names[i],
                     pst_dtype_name(e->dtype), pst_shape_str(&e->shape, a, sizeof a),
                     pst_dtype_name(vn->out_dtypes[0]), pst_shape_str(&vshape, b, sizeof b));
        }
        if (why) {
            if (off < sizeof problems)
                off += (size_t)snprintf(problems + off, sizeof problems - off, "%s%s",
                                        bad ? ", " : "", detail);
            bad++;
        }
    }
    if (bad) {
        rc = pst_status_set(st, PST_E_NOT_FOUND, "cannot restore %d variable(s) from %s: %s", bad,
                            prefix, problems);
    } else {
        for (int i = 0; i < s->n && rc == 0; i++) {
            pst_tensor *t = pst_bundle_reader_read(r, s->names[i], st);
            if (t == NULL) {
                rc = st ? st->code : PST_E_DATA_LOSS;
                break;
            }
            slice_info si;
            if (slice_of(s->vars[i].node, &si)) {
                /* Re-slice: any partitioning of the same full shape restores. */
                pst_tensor *part = cut(t, &si, st);
                pst_tensor_unref(t);
                if (part == NULL) {
                    rc = st ? st->code : PST_E_EXHAUSTED;
                    break;
                }
                t = part;
            }
            pst_node *vn = s->vars[i].node;
            pst_var *v = pst_var_store_get_or_create(vs, vn->name, vn->out_dtypes[0],
                                                     vn->out_shapes[0], st);
            rc = v ? pst_var_assign(v, t, 1, st) : PST_E_INVALID;
            pst_tensor_unref(t);
        }
    }
    pst_bundle_reader_free(r);
    return rc;
}
