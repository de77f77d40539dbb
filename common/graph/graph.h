/*
 * graph — the dataflow graph: nodes with a name, an op, inputs, a device string and attrs;
 * name, device and control-dependency scopes; collections; the node builder.
 *
 * Building never computes. Every builder call validates the op, its inputs, attrs and shapes
 * (through the op registry's shape function). The first error is recorded in the graph and
 * later builder calls become no-ops returning a null output, so a model can be built with
 * plain calls and checked once:
 *
 *     pst_graph *g = pst_graph_new();
 *     pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 784));
 *     pst_output w = pst_variable(g, "w", ...);
 *     pst_output y = pst_matmul(g, x, w, 0, 0, NULL);
 *     if (pst_graph_error(g)) fprintf(stderr, "%s\n", pst_graph_status(g)->msg);
 *
 * Nodes are owned by the graph and live as long as it. Node fields are read-only outside
 * graph.c and op.c.
 */
#ifndef PST_GRAPH_H
#define PST_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_graph pst_graph;
typedef struct pst_node pst_node;
typedef struct pst_op_def pst_op_def;

/* One output of a node: the edge `name:index`. A null output (node == NULL) means "none". */
typedef struct pst_output {
    pst_node *node;
    int index;
} pst_output;

static inline pst_output pst_out(pst_node *n, int i) {
    pst_output o = {n, i};
    return o;
}
static inline int pst_output_ok(pst_output o) { return o.node != NULL; }

typedef enum pst_attr_kind {
    PST_ATTR_NONE = 0,
    PST_ATTR_STRING,
    PST_ATTR_INT,
    PST_ATTR_FLOAT,
    PST_ATTR_BOOL,
    PST_ATTR_TYPE,
    PST_ATTR_SHAPE,
    PST_ATTR_TENSOR,
    PST_ATTR_LIST_STRING,
    PST_ATTR_LIST_INT,
    PST_ATTR_LIST_FLOAT,
    PST_ATTR_LIST_BOOL,
    PST_ATTR_LIST_TYPE,
    PST_ATTR_LIST_SHAPE,
    PST_ATTR_LIST_TENSOR,
    PST_ATTR_KIND_COUNT
} pst_attr_kind;

/* An attr value. Strings, lists and tensors are owned by the attr (the graph). */
typedef struct pst_attr {
    char *name;
    pst_attr_kind kind;
    union {
        char *s;
        int64_t i;
        float f;
        int b;
        pst_dtype type;
        pst_shape shape;
        pst_tensor *tensor;
    } v;
    int n; /* list length */
    union {
        char **s;
        int64_t *i;
        float *f;
        int *b;
        pst_dtype *type;
        pst_shape *shape;
        pst_tensor **tensor;
    } list;
} pst_attr;

const char *pst_attr_kind_name(pst_attr_kind k);
/* Finds an attr by name in an array; NULL when absent. */
const pst_attr *pst_attr_find(const pst_attr *attrs, int n, const char *name);
void pst_attr_destroy(pst_attr *a);
/* Deep copy of src into dst (dst->name is a copy too). */
int pst_attr_copy(pst_attr *dst, const pst_attr *src, pst_status *st);

struct pst_node {
    int id;                     /* index in the graph, creation order (a topological order) */
    char *name;                 /* unique, with its name scope: "cnn/conv1/Conv2D" */
    const pst_op_def *op;
    pst_graph *graph;
    int n_inputs;
    pst_output *inputs;
    int n_control;
    pst_node **control_inputs;  /* "^name" inputs */
    char *device;               /* canonical device string, "" when unplaced */
    char *requested_device;     /* what the user asked for (merged scopes), "" when none */
    int n_attrs;
    pst_attr *attrs;
    int n_outputs;
    pst_dtype *out_dtypes;
    pst_shape *out_shapes;      /* inferred at build time; dims may be -1 */
};

pst_graph *pst_graph_new(void);
void pst_graph_free(pst_graph *g);

/* Sticky build status: 0 while every build call succeeded. */
int pst_graph_error(const pst_graph *g);
const pst_status *pst_graph_status(const pst_graph *g);
/* Records an error (the first one wins); returns code. */
int pst_graph_set_error(pst_graph *g, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pst_graph_clear_error(pst_graph *g);

int pst_graph_num_nodes(const pst_graph *g);
pst_node *pst_graph_node(const pst_graph *g, int id);
pst_node *pst_graph_find(const pst_graph *g, const char *name);
/* Parses "name", "name:1" into an output; a null output when absent. */
pst_output pst_graph_output_by_name(const pst_graph *g, const char *spec);

/* 1 once the graph holds a control-flow op (PST_OP_CONTROL_FLOW: TF 1.x Switch/Merge and
 * while-loop frames); such graphs may have back edges (pst_graph_set_back_edge). */
int pst_graph_has_control_flow(const pst_graph *g);
/* Makes input i of n (a Merge) the output src of a node created after it: the NextIteration
 * edge that closes a while loop, which an importer can only add once both nodes exist. The
 * dtypes must match. 0 or an error recorded in the graph. */
int pst_graph_set_back_edge(pst_graph *g, pst_node *n, int i, pst_output src);
/* 1 when input i of n is such a back edge (its producer was created after n). */
static inline int pst_node_input_is_back_edge(const pst_node *n, int i) {
    return n->inputs[i].node->id >= n->id;
}

/* Graph-level random seed (tf.set_random_seed); -1 (default) means unset. */
void pst_graph_set_seed(pst_graph *g, int64_t seed);
int64_t pst_graph_seed(const pst_graph *g);

/* Name scopes. push returns 0 or an error; the scope name is made unique like TF does
 * ("block" twice gives "block" and "block_1") unless `exact` is set (re-entering a scope). */
int pst_graph_push_name_scope(pst_graph *g, const char *name, int exact);
void pst_graph_pop_name_scope(pst_graph *g);
/* Pushes an absolute scope as is ("" is the root), e.g. to create optimizer slots named after
 * their variable whatever the caller's scope. Pop with pst_graph_pop_name_scope. */
void pst_graph_push_name_scope_abs(pst_graph *g, const char *full);
/* Current scope prefix without a trailing slash ("" at the top). */
const char *pst_graph_name_scope(const pst_graph *g);
/* The unique full name a node called `name` would get now (caller frees). */
char *pst_graph_unique_name(pst_graph *g, const char *name);
/* A unique scope name under the current scope for `base` (caller frees), without pushing. */
char *pst_graph_unique_scope(pst_graph *g, const char *base);

/* Device scopes: the spec is parsed and merged over the enclosing scope (inner wins). */
int pst_graph_push_device(pst_graph *g, const char *spec);
void pst_graph_pop_device(pst_graph *g);
const char *pst_graph_current_device(const pst_graph *g);

/* A device function (replica device setter): called for every new node with the device the
 * scopes requested; writes the final device into out (size PST_DEVICE_MAX). */
#define PST_DEVICE_MAX 128
typedef void (*pst_device_fn)(void *ctx, const pst_node *node, const char *requested, char *out);
void pst_graph_set_device_fn(pst_graph *g, pst_device_fn fn, void *ctx);

/* Control-dependency scopes: nodes created inside get these as control inputs. */
int pst_graph_push_control_deps(pst_graph *g, int n, pst_node *const *deps);
void pst_graph_pop_control_deps(pst_graph *g);

/* Collections: named lists of outputs (ops are their output 0, or index -1 for no-output ops).
 * Standard keys are below; any string works. Adding the same output twice is a no-op. */
#define PST_GLOBAL_VARIABLES "variables"
#define PST_LOCAL_VARIABLES "local_variables"
#define PST_TRAINABLE_VARIABLES "trainable_variables"
#define PST_MODEL_VARIABLES "model_variables"
#define PST_LOSSES "losses"
#define PST_REGULARIZATION_LOSSES "regularization_losses"
#define PST_UPDATE_OPS "update_ops"
#define PST_SUMMARIES "summaries"
#define PST_TRAIN_OP "train_op"
int pst_graph_add_to_collection(pst_graph *g, const char *key, pst_output o);
/* Borrowed array valid until the collection changes; *n set to its length (0 if absent). */
const pst_output *pst_graph_collection(const pst_graph *g, const char *key, int *n);
int pst_graph_num_collections(const pst_graph *g);
const char *pst_graph_collection_key(const pst_graph *g, int i);
void pst_graph_clear_collection(pst_graph *g, const char *key);
/* Value collections (TF's int64_list / float_list CollectionDefs), e.g. hyperparameters. */
void pst_graph_add_int64_to_collection(pst_graph *g, const char *key, int64_t v);
void pst_graph_add_float_to_collection(pst_graph *g, const char *key, float v);
/* Borrowed arrays (NULL and *n = 0 when absent). */
const int64_t *pst_graph_int64_collection(const pst_graph *g, const char *key, int *n);
const float *pst_graph_float_collection(const pst_graph *g, const char *key, int *n);
int pst_graph_num_value_collections(const pst_graph *g);
/* Key of value collection i and whether it holds int64s (1) or floats (0). */
const char *pst_graph_value_collection_key(const pst_graph *g, int i, int *is_int64);

/* ---- Function library (TF's FunctionDefLibrary) ----------------------------------------- *
 * A function is a body graph of its own: one Placeholder per argument, its results outputs of
 * body nodes. Ops that call functions (MapDataset's `f`) name them by a string attr and find
 * them here at build time and, through pst_kernel_ctx.graph, when they run. A body's own
 * lookups fall back to the library it belongs to (a function calling another). */
typedef struct pst_function {
    char *name;
    pst_graph *body;
    int n_args;
    pst_node **args;     /* Placeholders in body, in signature order */
    char **arg_names;
    int n_rets;
    pst_output *rets;    /* in the signature's output order */
    char *error;         /* non-NULL (and body NULL) for a function that could not be built:
                            why (an op pstrain lacks in its body, ...); calling it fails with it */
    void *def;           /* the serialized FunctionDef it was imported from (NULL: none); an
                            export writes it back unchanged */
    size_t def_len;
} pst_function;

/* Adds a function, taking body (freed with g, or at once on error). 0 or an error recorded in
 * g (a second function of the same name). */
int pst_graph_add_function(pst_graph *g, const char *name, pst_graph *body, int n_args,
                           pst_node *const *args, const char *const *arg_names, int n_rets,
                           const pst_output *rets);
/* Records a function of the library that could not be built, with the reason: ops naming it
 * still build, running them fails with that error. */
int pst_graph_add_broken_function(pst_graph *g, const char *name, const char *error);
/* Keeps a copy of the serialized definition of g's function `name` (see pst_function.def). */
void pst_graph_set_function_def(pst_graph *g, const char *name, const void *def, size_t len);
/* The function called name in g's library or a library g's body belongs to; NULL if none. */
const pst_function *pst_graph_function(const pst_graph *g, const char *name);
/* Makes a body being built find functions of lib (pst_graph_add_function does it too). */
void pst_graph_set_library_parent(pst_graph *body, const pst_graph *lib);
int pst_graph_num_functions(const pst_graph *g);
const pst_function *pst_graph_function_at(const pst_graph *g, int i);

/* ---- Node builder ---------------------------------------------------------------------- */
typedef struct pst_node_builder pst_node_builder;

/* Starts a node of op `op` named `name` (NULL: the op's name) under the current scope.
 * Never NULL; on a graph already in error the builder does nothing. */
pst_node_builder *pst_nb_new(pst_graph *g, const char *op, const char *name);
void pst_nb_input(pst_node_builder *b, pst_output in);
void pst_nb_inputs(pst_node_builder *b, int n, const pst_output *in);
void pst_nb_control(pst_node_builder *b, pst_node *dep);
/* Overrides the device for this node (merged over the scope's). */
void pst_nb_device(pst_node_builder *b, const char *spec);
/* Uses `full_name` as the node's whole name, ignoring scopes and uniquification; a node that
 * already has it is an error. For variables, whose op takes its scope's name. */
void pst_nb_exact_name(pst_node_builder *b, const char *full_name);
void pst_nb_attr_s(pst_node_builder *b, const char *name, const char *v);
void pst_nb_attr_i(pst_node_builder *b, const char *name, int64_t v);
void pst_nb_attr_f(pst_node_builder *b, const char *name, float v);
void pst_nb_attr_b(pst_node_builder *b, const char *name, int v);
void pst_nb_attr_type(pst_node_builder *b, const char *name, pst_dtype v);
void pst_nb_attr_shape(pst_node_builder *b, const char *name, pst_shape v);
/* Takes a reference to t. */
void pst_nb_attr_tensor(pst_node_builder *b, const char *name, pst_tensor *t);
void pst_nb_attr_list_i(pst_node_builder *b, const char *name, int n, const int64_t *v);
void pst_nb_attr_list_f(pst_node_builder *b, const char *name, int n, const float *v);
void pst_nb_attr_list_s(pst_node_builder *b, const char *name, int n, const char *const *v);
void pst_nb_attr_list_type(pst_node_builder *b, const char *name, int n, const pst_dtype *v);
void pst_nb_attr_list_shape(pst_node_builder *b, const char *name, int n, const pst_shape *v);
/* Adds a fully formed attr (copied). */
void pst_nb_attr(pst_node_builder *b, const pst_attr *a);
/* Validates and adds the node; frees the builder. Returns the node or NULL (graph in error).
 * The error message names the node. */
pst_node *pst_nb_finish(pst_node_builder *b);
/* Drops a builder without adding its node. */
void pst_nb_abandon(pst_node_builder *b);
/* Convenience: finish and return output 0 (a null output on error or for 0-output ops). */
pst_output pst_nb_finish_out(pst_node_builder *b);

/* Node queries. */
const pst_attr *pst_node_attr(const pst_node *n, const char *name);
int64_t pst_node_attr_i(const pst_node *n, const char *name, int64_t dflt);
float pst_node_attr_f(const pst_node *n, const char *name, float dflt);
int pst_node_attr_b(const pst_node *n, const char *name, int dflt);
const char *pst_node_attr_s(const pst_node *n, const char *name, const char *dflt);
pst_dtype pst_node_attr_type(const pst_node *n, const char *name, pst_dtype dflt);
const char *pst_node_op_name(const pst_node *n);
static inline pst_dtype pst_output_dtype(pst_output o) { return o.node->out_dtypes[o.index]; }
static inline pst_shape pst_output_shape(pst_output o) { return o.node->out_shapes[o.index]; }
/* Writes "name" or "name:i" into buf. */
const char *pst_output_name(pst_output o, char *buf, size_t len);
/* Sets a node's device after construction (placement); spec is parsed and canonicalized. */
int pst_node_set_device(pst_node *n, const char *spec, pst_status *st);

#endif
