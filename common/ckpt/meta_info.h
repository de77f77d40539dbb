/*
 * meta_info — what an importer wants to know about a TensorFlow meta graph before (or besides)
 * importing it: the MetaGraphDef bytes of a `.meta` file or of a SavedModel's
 * `saved_model.pb`, the op types its graph uses, and its SaverDef (the names of the saver
 * subgraph's filename tensor, save tensor and restore op).
 *
 *     uint8_t *buf; size_t len;
 *     pst_meta_info_read("model.ckpt.meta", &buf, &len, &st);     // caller frees buf
 *     pst_tf_saver_names sv;
 *     if (pst_meta_info_saver(buf, len, &sv, &st) == 0 && sv.present) ... sv.restore_op ...
 */
#ifndef PST_META_INFO_H
#define PST_META_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Reads a `.meta` file, or a file named saved_model.pb (its meta graph tagged "serve", else its
 * first), into *buf (malloc'd MetaGraphDef bytes, caller frees). Errors name the file. */
int pst_meta_info_read(const char *path, uint8_t **buf, size_t *len, pst_status *st);

typedef struct pst_tf_saver_names {
    int present;               /* the MetaGraphDef has a SaverDef */
    int version;               /* 1 (V1) or 2 (V2); TF writes 0 (LEGACY) for V1 too */
    char filename_tensor[512]; /* "save/Const:0" */
    char save_tensor[512];     /* "save/control_dependency:0" */
    char restore_op[512];      /* "save/restore_all" */
} pst_tf_saver_names;

/* The meta graph's SaverDef (out->present 0 when it has none). */
int pst_meta_info_saver(const uint8_t *buf, size_t len, pst_tf_saver_names *out, pst_status *st);

/* The distinct op types of the meta graph's GraphDef and of its function library's bodies,
 * sorted: *ops (malloc'd array of malloc'd strings, free with pst_meta_info_free_list), *n. */
int pst_meta_info_op_types(const uint8_t *buf, size_t len, char ***ops, int *n, pst_status *st);
void pst_meta_info_free_list(char **list, int n);

/* One tf.train.QueueRunner of the meta graph (its `queue_runners` collection): the queue, the
 * enqueue ops its threads run (one thread each), the ops closing the queue when they are done
 * (close) or when stopping (cancel, which also cancels pending enqueues), and the error codes
 * (PST_E_* values, negative) that mean "the queue was closed: this thread is done". */
typedef struct pst_tf_queue_runner {
    char *queue;
    char **enqueue_ops;
    int n_enqueue_ops;
    char *close_op, *cancel_op;
    int closed_codes[8];
    int n_closed_codes;
} pst_tf_queue_runner;
/* The queue runners in *out (malloc'd array; free with pst_meta_info_free_queue_runners) and
 * their count in *n (0 when the graph has none). */
int pst_meta_info_queue_runners(const uint8_t *buf, size_t len, pst_tf_queue_runner **out,
                                int *n, pst_status *st);
void pst_meta_info_free_queue_runners(pst_tf_queue_runner *qr, int n);

#endif
