/*
 * metagraph — TensorFlow's GraphDef and MetaGraphDef, out of and into a pst_graph.
 *
 * Export writes every node (name, op, inputs as "name", "name:1", "^ctrl", device, attrs),
 * the collections (variables as VariableDef bytes lists, everything else as node lists) and,
 * when asked, a SaverDef. Import rebuilds nodes in dependency order (a cycle is an error naming
 * a node on it), re-validates every op, attr and shape, and brings the collections back, so a
 * model can be trained further, extended or evaluated without the code that built it.
 *
 *     uint8_t *buf; size_t len;
 *     pst_meta_graph_export(g, NULL, &buf, &len, &st);     // caller frees buf
 *     pst_graph *g2 = pst_graph_new();
 *     pst_meta_graph_import(g2, buf, len, NULL, &st);
 */
#ifndef PST_METAGRAPH_H
#define PST_METAGRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "graph.h"

/* The largest meta graph (or GraphDef, SavedModel) file read, and the largest constant one may
 * build from a few values broadcast over a shape; files are checked before they are read. */
#define PST_META_GRAPH_MAX_BYTES ((size_t)1 << 30)

/* A SaverDef and the saver subgraph TensorFlow's import_meta_graph + Saver.restore() run:
 * <scope>/Const (the filename, a string PlaceholderWithDefault fed by restore()),
 * <scope>/SaveV2 and <scope>/control_dependency (save), <scope>/RestoreV2, one Assign per
 * variable and <scope>/restore_all (restore), the scope being "save" or, when the graph already
 * has nodes there (an imported TF graph's own saver), "save_1", "save_2"... Partitioned parts
 * are saved and restored as slices of their full name ("10 4 0,5:-"). */
typedef struct pst_saver_def {
    int max_to_keep;
    int sharded;
    float keep_checkpoint_every_n_hours;
    int n_vars;                 /* 0 with vars NULL: every global variable */
    const pst_output *vars;
    const char *const *names;   /* checkpoint names for vars (NULL: the variables' names, a
                                   part's full name) */
} pst_saver_def;

/* A SignatureDef (what TensorFlow Serving calls): named input and output tensors and a method,
 * e.g. "tensorflow/serving/predict". */
typedef struct pst_signature_tensor {
    const char *key;   /* "images" */
    pst_output tensor; /* written as "name:index" with its dtype and (static) shape */
} pst_signature_tensor;
typedef struct pst_signature_def {
    const char *name;        /* "serving_default" */
    const char *method_name;
    int n_inputs, n_outputs;
    const pst_signature_tensor *inputs, *outputs;
} pst_signature_def;

typedef struct pst_meta_export_opts {
    const char *const *collection_list; /* NULL-terminated keys to export; NULL: all */
    int clear_devices;
    const char *const *tags;            /* NULL-terminated, e.g. {"serve", NULL} */
    const pst_saver_def *saver_def;     /* NULL: none */
    int n_signatures;
    const pst_signature_def *signatures;
} pst_meta_export_opts;

typedef struct pst_meta_import_opts {
    int clear_devices;
    const char *import_scope; /* prefix for every imported name ("" or NULL: none) */
} pst_meta_import_opts;

/* Serialized GraphDef / MetaGraphDef into *buf (malloc'd, caller frees). */
int pst_graph_def_export(const pst_graph *g, int clear_devices, uint8_t **buf, size_t *len,
                         pst_status *st);
int pst_meta_graph_export(const pst_graph *g, const pst_meta_export_opts *o, uint8_t **buf,
                          size_t *len, pst_status *st);
/* Export to a file, written to a temporary name, fsync'd and renamed. */
int pst_meta_graph_write(const pst_graph *g, const pst_meta_export_opts *o, const char *path,
                         pst_status *st);

/* A SavedModel (saved_model.pb: schema version 1, this one MetaGraphDef) into *buf. */
int pst_saved_model_export(const pst_graph *g, const pst_meta_export_opts *o, uint8_t **buf,
                           size_t *len, pst_status *st);

/* Adds the nodes of a GraphDef / MetaGraphDef to g (normally empty). Errors name the node. */
int pst_graph_def_import(pst_graph *g, const uint8_t *buf, size_t len,
                         const pst_meta_import_opts *o, pst_status *st);
int pst_meta_graph_import(pst_graph *g, const uint8_t *buf, size_t len,
                          const pst_meta_import_opts *o, pst_status *st);
int pst_meta_graph_read(pst_graph *g, const char *path, const pst_meta_import_opts *o,
                        pst_status *st);

/* The bytes the tensor-valued attrs of a GraphDef's nodes (Const values) claim once imported,
 * from their shapes and dtypes, without building them: what importing it would allocate for
 * constants (a few bytes of splat value can claim gigabytes). -1 when it does not parse. */
int64_t pst_graph_def_constant_bytes(const uint8_t *buf, size_t len);

/* Prints the variables (name, dtype, shape, trainable) and collections (key, kind, size) of a
 * MetaGraphDef, or of every meta graph in a SavedModel (saved_model.pb). */
int pst_meta_graph_describe(const uint8_t *buf, size_t len, int is_saved_model, FILE *out,
                            pst_status *st);


#endif
