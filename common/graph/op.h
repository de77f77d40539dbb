/*
 * op — the op registry: what each op takes and gives, its shape function, its CPU kernel and
 * its gradient function.
 *
 * An op family registers itself in one file (ops_math.c, ops_nn.c, ...) through a
 * pst__register_*_ops function listed in op_list.c. Kernels see only tensors and attrs (through
 * pst_kernel_ctx), never the graph; shape and gradient functions see the node being built.
 *
 *     static const pst_attr_spec relu_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
 *     static const pst_op_def relu = {.name = "Relu", .min_inputs = 1, .max_inputs = 1,
 *         .n_outputs = 1, .attrs = relu_attrs, .shape = pst_shape_same_as_input0,
 *         .kernel = relu_kernel, .grad = relu_grad};
 *     pst_op_register(&relu);
 */
#ifndef PST_OP_H
#define PST_OP_H

#include "graph.h"
#include "status.h"
#include "tensor.h"

typedef struct pst_var pst_var;
typedef struct pst_var_store pst_var_store;
typedef struct pst_kernel_ctx pst_kernel_ctx;

/* Fills node->out_dtypes / node->out_shapes from the inputs and attrs; checks dtypes and
 * shapes. For ops with n_outputs == -1 it first calls pst_node_set_num_outputs. Returns 0 or a
 * PST_E_* code with st set (the message need not repeat the node name; the caller adds it). */
typedef int (*pst_shape_fn)(pst_node *n, pst_status *st);

/* Computes outputs from inputs. Returns 0 or a PST_E_* code after pst_kctx_error. */
typedef int (*pst_kernel_fn)(pst_kernel_ctx *ctx);

/* Adds backward nodes to n->graph: dy[i] is the gradient flowing into output i (a null output
 * means zero), dx[i] receives the gradient for input i (leave null for none). Returns 0 or an
 * error recorded in the graph. */
typedef int (*pst_grad_fn)(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);

/* Releases per-node kernel state (see pst_kernel_ctx.state). */
typedef void (*pst_state_free_fn)(void *state);

typedef struct pst_attr_spec {
    const char *name; /* NULL terminates the list */
    pst_attr_kind kind;
    int required;     /* 0: optional, the kernel/shape function applies the default */
} pst_attr_spec;

enum {
    PST_OP_STATEFUL = 1 << 0,          /* has state or side effects: never pruned or merged */
    PST_OP_REF_INPUT0 = 1 << 1,        /* input 0 must be a variable (same as ref_mask bit 0) */
    PST_OP_VARIABLE = 1 << 2,          /* produces a variable reference (VariableV2) */
    PST_OP_NOT_DIFFERENTIABLE = 1 << 3, /* gradients stop here silently (Shape, ArgMax, ...) */
    PST_OP_STRINGS = 1 << 4,           /* its kernel handles PST_STRING tensors (inputs or
                                          outputs); other ops refuse them when built */
    PST_OP_REF_OUTPUT = 1 << 6,        /* output 0 is also its variable input's ref (Assign):
                                          a ref input may take it */
    PST_OP_CONTROL_FLOW = 1 << 5,      /* Switch, Merge, Enter, Exit, NextIteration, ...: the
                                          session runs graphs holding one with its frame
                                          executor */
};

struct pst_op_def {
    const char *name;
    int min_inputs;
    int max_inputs;    /* -1: any number */
    int n_outputs;     /* -1: set by the shape function */
    const pst_attr_spec *attrs; /* NULL or a {NULL}-terminated list */
    pst_shape_fn shape;
    pst_kernel_fn kernel;
    pst_grad_fn grad;  /* NULL: no gradient (an error on a gradient path unless
                          PST_OP_NOT_DIFFERENTIABLE) */
    unsigned flags;
    pst_state_free_fn state_free;
    unsigned ref_mask; /* bit i: input i must be a variable and reaches the kernel as
                          ctx->input_vars[i] (optimizer apply ops update several) */
};

/* The ref-input mask of an op (ref_mask plus PST_OP_REF_INPUT0). */
static inline unsigned pst_op_ref_mask(const pst_op_def *op) {
    return op->ref_mask | ((op->flags & PST_OP_REF_INPUT0) ? 1u : 0u);
}

/* Registers a def (borrowed: must outlive the process, normally a static). Returns
 * PST_E_EXISTS for a duplicate name. Registration of the built-in ops happens once, on
 * first use of the registry, and is thread-safe. */
int pst_op_register(const pst_op_def *def);
const pst_op_def *pst_op_lookup(const char *name);
/* How many ops are registered (0 until a program calls pst_ops_init() or registers its own). */
int pst_op_registry_size(void);
/* How many registrations were refused as duplicates so far (two families defining the same
 * op name: the second silently loses), and the first such name into first (may be NULL). */
int pst_op_registry_duplicates(char *first, size_t len);

/* Shape-function helpers. */
void pst_node_set_num_outputs(pst_node *n, int k);
static inline pst_dtype pst_node_in_dtype(const pst_node *n, int i) {
    return pst_output_dtype(n->inputs[i]);
}
static inline pst_shape pst_node_in_shape(const pst_node *n, int i) {
    return pst_output_shape(n->inputs[i]);
}
/* The constant value of input i when it comes straight from a Const node, else NULL
 * (borrowed). Lets shape functions of Reshape, Fill, Tile... know their outputs. */
const pst_tensor *pst_node_in_const(const pst_node *n, int i);
/* Sets output i. */
void pst_node_set_output(pst_node *n, int i, pst_dtype dt, pst_shape s);
/* Common shape functions. */
int pst_shape_same_as_input0(pst_node *n, pst_status *st);
/* Binary elementwise with NumPy broadcasting; both inputs must have the same dtype. */
int pst_shape_broadcast_binary(pst_node *n, pst_status *st);
/* Broadcast two shapes (unknown dims allowed); error names both shapes. */
int pst_shape_broadcast(const pst_shape *a, const pst_shape *b, pst_shape *out, pst_status *st);
/* Checks that inputs [first, last] share one dtype; error names the inputs. */
int pst_shape_check_same_dtype(const pst_node *n, int first, int last, pst_status *st);

/* ---- Kernel context -------------------------------------------------------------------- */
struct pst_kernel_ctx {
    const char *node_name;
    const pst_op_def *op;
    const pst_attr *attrs;
    int n_attrs;
    int n_inputs;
    pst_tensor *const *inputs;       /* borrowed; NULL for a ref input (see input_vars) */
    pst_var *const *input_vars;      /* non-NULL at i when input i is a ref input (ref_mask) */
    int n_outputs;
    pst_tensor **outputs;            /* set by the kernel; the executor takes the reference */
    pst_var **output_vars;      /* for PST_OP_VARIABLE ops */
    const pst_dtype *out_dtypes;     /* as inferred at build time */
    void **state;                    /* per-node state kept by the session across runs */
    pst_var_store *vars;             /* the session's variables */
    void *exec;                      /* executor hooks (rendezvous), opaque to kernels */
    const pst_graph *graph;          /* the node's graph: only for finding functions of its
                                        library (pst_graph_function), never its nodes */
    int64_t step_id;
    pst_status *status;
    int files_confined;              /* file ops run for a remote peer (pst_session_opts) */
    const char *file_root;           /* then: the only directory they may touch, or NULL */
};

int64_t pst_kctx_attr_i(const pst_kernel_ctx *c, const char *name, int64_t dflt);
float pst_kctx_attr_f(const pst_kernel_ctx *c, const char *name, float dflt);
int pst_kctx_attr_b(const pst_kernel_ctx *c, const char *name, int dflt);
const char *pst_kctx_attr_s(const pst_kernel_ctx *c, const char *name, const char *dflt);
pst_dtype pst_kctx_attr_type(const pst_kernel_ctx *c, const char *name, pst_dtype dflt);
const pst_attr *pst_kctx_attr(const pst_kernel_ctx *c, const char *name);
/* Allocates output i (uninitialized) and stores it in ctx->outputs; NULL on error (status
 * set). */
pst_tensor *pst_kctx_alloc_output(pst_kernel_ctx *c, int i, pst_dtype dt, pst_shape s);
/* Stores t as output i, taking the caller's reference. */
void pst_kctx_set_output(pst_kernel_ctx *c, int i, pst_tensor *t);
/* Records an error; returns code. */
int pst_kctx_error(pst_kernel_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
