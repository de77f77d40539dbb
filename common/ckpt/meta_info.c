/* meta_info: facts about a TF meta graph without importing it (see meta_info.h). */
#include "meta_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "metagraph.h"
#include "tf_graph.pb-c.h"

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The SavedModel's meta graph tagged "serve", else its first. */
static const Tensorflow__MetaGraphDef *pick_meta_graph(const Tensorflow__SavedModel *sm) {
    for (size_t i = 0; i < sm->n_meta_graphs; i++) {
        const Tensorflow__MetaGraphDef__MetaInfoDef *mi = sm->meta_graphs[i]->meta_info_def;
        for (size_t k = 0; mi && k < mi->n_tags; k++)
            if (strcmp(mi->tags[k], "serve") == 0) return sm->meta_graphs[i];
    }
    return sm->n_meta_graphs ? sm->meta_graphs[0] : NULL;
}

int pst_meta_info_read(const char *path, uint8_t **buf, size_t *len, pst_status *st) {
    int rc = pst_file_read(path, PST_META_GRAPH_MAX_BYTES, buf, len, st);
    if (rc < 0 || !ends_with(path, "saved_model.pb")) return rc;
    Tensorflow__SavedModel *sm = tensorflow__saved_model__unpack(NULL, *len, *buf);
    free(*buf);
    *buf = NULL;
    if (sm == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "%s: cannot parse SavedModel", path);
    const Tensorflow__MetaGraphDef *mg = pick_meta_graph(sm);
    if (mg == NULL) {
        tensorflow__saved_model__free_unpacked(sm, NULL);
        return pst_status_set(st, PST_E_INVALID, "%s: the SavedModel holds no meta graph", path);
    }
    *len = tensorflow__meta_graph_def__get_packed_size(mg);
    *buf = malloc(*len ? *len : 1);
    PST_ASSERT(*buf != NULL);
    tensorflow__meta_graph_def__pack(mg, *buf);
    tensorflow__saved_model__free_unpacked(sm, NULL);
    return 0;
}

int pst_meta_info_saver(const uint8_t *buf, size_t len, pst_tf_saver_names *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    Tensorflow__MetaGraphDef *mg = tensorflow__meta_graph_def__unpack(NULL, len, buf);
    if (mg == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse MetaGraphDef");
    const Tensorflow__SaverDef *sd = mg->saver_def;
    if (sd) {
        out->present = 1;
        out->version = sd->version == TENSORFLOW__SAVER_DEF__CHECKPOINT_FORMAT_VERSION__V2 ? 2 : 1;
        snprintf(out->filename_tensor, sizeof out->filename_tensor, "%s",
                 sd->filename_tensor_name ? sd->filename_tensor_name : "");
        snprintf(out->save_tensor, sizeof out->save_tensor, "%s",
                 sd->save_tensor_name ? sd->save_tensor_name : "");
        snprintf(out->restore_op, sizeof out->restore_op, "%s",
                 sd->restore_op_name ? sd->restore_op_name : "");
    }
    tensorflow__meta_graph_def__free_unpacked(mg, NULL);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pst_meta_info_op_types(const uint8_t *buf, size_t len, char ***ops, int *n, pst_status *st) {
    *ops = NULL;
    *n = 0;
    Tensorflow__MetaGraphDef *mg = tensorflow__meta_graph_def__unpack(NULL, len, buf);
    if (mg == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse MetaGraphDef");
    /* The graph's nodes and those of its function library's bodies (dataset functions). */
    const Tensorflow__FunctionDefLibrary *lib = mg->graph_def ? mg->graph_def->library : NULL;
    size_t nn = mg->graph_def ? mg->graph_def->n_node : 0, nf = 0;
    for (size_t f = 0; lib && f < lib->n_function; f++) nf += lib->function[f]->n_node_def;
    char **all = calloc(nn + nf + 1, sizeof *all);
    PST_ASSERT(all != NULL);
    for (size_t i = 0; i < nn; i++) all[i] = mg->graph_def->node[i]->op;
    for (size_t f = 0; lib && f < lib->n_function; f++)
        for (size_t i = 0; i < lib->function[f]->n_node_def; i++)
            all[nn++] = lib->function[f]->node_def[i]->op;
    qsort(all, nn, sizeof *all, cmp_str);
    char **u = calloc(nn + 1, sizeof *u);
    PST_ASSERT(u != NULL);
    int k = 0;
    for (size_t i = 0; i < nn; i++) {
        int is_function = 0; /* a Defun called by name is no op type */
        for (size_t f = 0; lib && f < lib->n_function && !is_function; f++)
            is_function = lib->function[f]->signature && lib->function[f]->signature->name &&
                          strcmp(lib->function[f]->signature->name, all[i]) == 0;
        if (!is_function && (i == 0 || strcmp(all[i], all[i - 1]) != 0)) u[k++] = strdup(all[i]);
    }
    free(all);
    tensorflow__meta_graph_def__free_unpacked(mg, NULL);
    *ops = u;
    *n = k;
    return 0;
}

void pst_meta_info_free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

void pst_meta_info_free_queue_runners(pst_tf_queue_runner *qr, int n) {
    for (int i = 0; qr && i < n; i++) {
        free(qr[i].queue), free(qr[i].close_op), free(qr[i].cancel_op);
        pst_meta_info_free_list(qr[i].enqueue_ops, qr[i].n_enqueue_ops);
    }
    free(qr);
}

static char *dup_or_empty(const char *s) {
    char *d = strdup(s ? s : "");
    PST_ASSERT(d != NULL);
    return d;
}

int pst_meta_info_queue_runners(const uint8_t *buf, size_t len, pst_tf_queue_runner **out,
                                int *n, pst_status *st) {
    *out = NULL;
    *n = 0;
    Tensorflow__MetaGraphDef *mg = tensorflow__meta_graph_def__unpack(NULL, len, buf);
    if (mg == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse MetaGraphDef");
    const Tensorflow__CollectionDef__BytesList *bl = NULL;
    for (size_t i = 0; i < mg->n_collection_def; i++) {
        const Tensorflow__MetaGraphDef__CollectionDefEntry *e = mg->collection_def[i];
        if (e->key && strcmp(e->key, "queue_runners") == 0 && e->value &&
            e->value->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST)
            bl = e->value->bytes_list;
    }
    int rc = 0, k = 0;
    pst_tf_queue_runner *qr = calloc((bl ? bl->n_value : 0) + 1, sizeof *qr);
    PST_ASSERT(qr != NULL);
    for (size_t i = 0; bl && i < bl->n_value && rc == 0; i++) {
        Tensorflow__QueueRunnerDef *d =
            tensorflow__queue_runner_def__unpack(NULL, bl->value[i].len, bl->value[i].data);
        if (d == NULL) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "queue_runners entry %zu is not a "
                                "QueueRunnerDef", i);
            break;
        }
        pst_tf_queue_runner *r = &qr[k++];
        r->queue = dup_or_empty(d->queue_name);
        r->close_op = dup_or_empty(d->close_op_name);
        r->cancel_op = dup_or_empty(d->cancel_op_name);
        r->enqueue_ops = calloc(d->n_enqueue_op_name + 1, sizeof *r->enqueue_ops);
        PST_ASSERT(r->enqueue_ops != NULL);
        for (size_t j = 0; j < d->n_enqueue_op_name; j++)
            r->enqueue_ops[r->n_enqueue_ops++] = dup_or_empty(d->enqueue_op_name[j]);
        /* TF's default when the list is empty: OutOfRange. */
        if (d->n_queue_closed_exception_types == 0) r->closed_codes[r->n_closed_codes++] = 11;
        for (size_t j = 0; j < d->n_queue_closed_exception_types && r->n_closed_codes < 8; j++)
            r->closed_codes[r->n_closed_codes++] = d->queue_closed_exception_types[j];
        for (int j = 0; j < r->n_closed_codes; j++) r->closed_codes[j] = -r->closed_codes[j];
        tensorflow__queue_runner_def__free_unpacked(d, NULL);
    }
    tensorflow__meta_graph_def__free_unpacked(mg, NULL);
    if (rc < 0) {
        pst_meta_info_free_queue_runners(qr, k);
        return rc;
    }
    *out = qr;
    *n = k;
    return 0;
}
