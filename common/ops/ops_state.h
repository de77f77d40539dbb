/*
 * ops_state — constants, placeholders, variables and their assignment, identity, no-op and
 * group, AddN, ZerosLike/OnesLike, StopGradient.
 *
 * Variables follow TensorFlow 1.x: a VariableV2 node `w` holds the value in the session's var
 * store, `w/Assign` initializes it and `w/read` (Identity) is what the model reads.
 *
 *     pst_output x = pst_variable(g, "x", pst_const_f32(g, 20, NULL), 1);
 *     pst_node *init = pst_global_variables_initializer(g);
 */
#ifndef PST_OPS_STATE_H
#define PST_OPS_STATE_H

#include "graph.h"

/* Const with a borrowed value (the node takes its own reference). */
pst_output pst_const(pst_graph *g, pst_tensor *value, const char *name);
pst_output pst_const_f32(pst_graph *g, float v, const char *name);
pst_output pst_const_f64(pst_graph *g, double v, const char *name);
pst_output pst_const_i32(pst_graph *g, int32_t v, const char *name);
pst_output pst_const_i64(pst_graph *g, int64_t v, const char *name);
/* A scalar of dtype dt holding v (for constants that must match another tensor's dtype). */
pst_output pst_const_scalar(pst_graph *g, pst_dtype dt, double v, const char *name);
pst_output pst_const_i32_vec(pst_graph *g, int n, const int32_t *v, const char *name);
pst_output pst_const_i64_vec(pst_graph *g, int n, const int64_t *v, const char *name);
pst_output pst_const_f32_tensor(pst_graph *g, pst_shape shape, const float *v, const char *name);

/* Placeholder; shape dims may be -1 (unknown), or pst_shape_unknown() for any shape. */
pst_output pst_placeholder(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape);
/* A placeholder that yields `dflt` when not fed (e.g. an is_training flag). */
pst_output pst_placeholder_with_default(pst_graph *g, pst_output dflt, pst_shape shape,
                                        const char *name);

/* The raw VariableV2 op. Prefer pst_variable / pst_variable_ex. */
pst_output pst_variable_v2(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape);
pst_output pst_assign(pst_graph *g, pst_output ref, pst_output value, const char *name);
pst_output pst_assign_add(pst_graph *g, pst_output ref, pst_output value, const char *name);
pst_output pst_assign_sub(pst_graph *g, pst_output ref, pst_output value, const char *name);

/* A variable: a callback builds its initial value inside the variable's scope. */
typedef pst_output (*pst_init_fn)(pst_graph *g, pst_dtype dt, pst_shape shape, void *ctx);

typedef struct pst_variable_opts {
    const char *name;        /* required; made unique like TF ("w", "w_1") */
    pst_dtype dtype;
    pst_shape shape;         /* fully known */
    pst_output initial_value; /* used when init_fn is NULL; dtype/shape taken from it if
                                 dtype is PST_DT_INVALID */
    pst_init_fn init_fn;
    void *init_ctx;
    int trainable;           /* adds to trainable_variables */
    int local;               /* local_variables instead of variables */
    const char *device;      /* NULL: the scopes' */
    const char *const *collections; /* extra keys, NULL-terminated, or NULL */
} pst_variable_opts;

/* Creates `name` (VariableV2), `name/Assign` and `name/read`, adds the variable to its
 * collections. Returns the VariableV2 output (use pst_variable_value for reading). */
pst_output pst_variable_ex(pst_graph *g, const pst_variable_opts *o);
pst_output pst_variable(pst_graph *g, const char *name, pst_output initial_value, int trainable);
/* `var/read`, the snapshot models read. A null output for a non-variable. */
pst_output pst_variable_value(pst_output var);
/* `var/Assign`, the initializer. NULL for a non-variable. */
pst_node *pst_variable_initializer(pst_output var);

/* NoOps with control inputs on the initializers of a collection or of a list. */
pst_node *pst_global_variables_initializer(pst_graph *g);
pst_node *pst_local_variables_initializer(pst_graph *g);
pst_node *pst_variables_initializer(pst_graph *g, int n, const pst_output *vars, const char *name);

pst_output pst_identity(pst_graph *g, pst_output x, const char *name);
pst_output pst_stop_gradient(pst_graph *g, pst_output x, const char *name);
pst_node *pst_no_op(pst_graph *g, const char *name);
/* A NoOp depending on every dep (tf.group). */
pst_node *pst_group(pst_graph *g, int n, pst_node *const *deps, const char *name);
/* Identity of x that runs after deps (tf.control_dependencies + identity). */
pst_output pst_with_dependencies(pst_graph *g, int n, pst_node *const *deps, pst_output x,
                                 const char *name);
pst_output pst_add_n(pst_graph *g, int n, const pst_output *xs, const char *name);
pst_output pst_zeros_like(pst_graph *g, pst_output x, const char *name);
pst_output pst_ones_like(pst_graph *g, pst_output x, const char *name);

#endif
