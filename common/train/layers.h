/*
 * layers — TF-Slim's layers in C: variables with devices, initializers and regularizers;
 * conv2d, separable_conv2d, conv2d_transpose, fully_connected, max/avg pooling, dropout,
 * flatten, batch_norm, bias_add, one_hot_encoding, unit_norm; repeat and stack; and argument
 * scopes.
 *
 * Optional arguments travel in a pst_layer_args whose `set` bits say which fields count.
 * An argument scope supplies defaults for a set of layer kinds; scopes nest, the inner one
 * wins, and an explicit argument wins over every scope:
 *
 *     pst_initializer tn = pst_init_truncated_normal(0, 0.01, -1);
 *     pst_layer_args d = {.set = PST_ARG_ACTIVATION | PST_ARG_WEIGHTS_INIT | PST_ARG_WEIGHTS_REG,
 *                         .activation = PST_ACT_RELU, .weights_init = tn,
 *                         .weights_reg = pst_regularizer_l2(0.0005)};
 *     pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED, &d);
 *     x = pst_layer_conv2d(g, x, 64, 3, 3, NULL, "conv1");                  // conv1/weights ...
 *     pst_layer_args valid = {.set = PST_ARG_PADDING, .padding = "VALID"};
 *     x = pst_layer_conv2d(g, x, 128, 3, 3, &valid, "conv2");               // overrides padding
 *     pst_arg_scope_pop();
 *
 * Layers name their nodes like slim (`conv1/weights`, `conv1/biases`, `conv1/Conv2D`,
 * `conv1/BiasAdd`, `conv1/Relu`); a NULL scope gives slim's default (`Conv`, `Conv_1`, ...).
 * Argument scopes are per thread.
 */
#ifndef PST_LAYERS_H
#define PST_LAYERS_H

#include "graph.h"
#include "init.h"
#include "regularizer.h"

typedef enum pst_activation {
    PST_ACT_NONE = 0,
    PST_ACT_RELU,
    PST_ACT_RELU6,
    PST_ACT_LEAKY_RELU, /* uses alpha */
    PST_ACT_ELU,
    PST_ACT_SIGMOID,
    PST_ACT_TANH,
    PST_ACT_SOFTMAX,
    PST_ACT_COUNT
} pst_activation;

/* Layer kinds, for argument scopes. */
enum {
    PST_L_CONV2D = 1 << 0,
    PST_L_FULLY_CONNECTED = 1 << 1,
    PST_L_MAX_POOL2D = 1 << 2,
    PST_L_AVG_POOL2D = 1 << 3,
    PST_L_DROPOUT = 1 << 4,
    PST_L_BATCH_NORM = 1 << 5,
    PST_L_SEPARABLE_CONV2D = 1 << 6,
    PST_L_CONV2D_TRANSPOSE = 1 << 7,
    PST_L_VARIABLE = 1 << 8, /* pst_layer_variable / pst_layer_model_variable */
    PST_L_BIAS_ADD = 1 << 9,
};

/* Which pst_layer_args fields are set. */
enum {
    PST_ARG_PADDING = 1 << 0,
    PST_ARG_STRIDE = 1 << 1,
    PST_ARG_ACTIVATION = 1 << 2,
    PST_ARG_WEIGHTS_INIT = 1 << 3,
    PST_ARG_WEIGHTS_REG = 1 << 4,
    PST_ARG_BIASES_INIT = 1 << 5,
    PST_ARG_BIASES_REG = 1 << 6,
    PST_ARG_USE_BIASES = 1 << 7,
    PST_ARG_NORMALIZER = 1 << 8,
    PST_ARG_TRAINABLE = 1 << 9,
    PST_ARG_IS_TRAINING = 1 << 10,
    PST_ARG_KEEP_PROB = 1 << 11,
    PST_ARG_DEVICE = 1 << 12,
    PST_ARG_BN = 1 << 13, /* bn_decay, bn_epsilon, bn_center, bn_scale */
    PST_ARG_DEPTH_MULTIPLIER = 1 << 14,
};

typedef struct pst_layer_args {
    unsigned set;
    const char *padding;      /* "SAME" (conv default) or "VALID" (pool default) */
    int stride_h, stride_w;   /* conv default 1, pool default 2 */
    pst_activation activation; /* conv/fc default RELU, like slim */
    float alpha;              /* leaky relu slope (default 0.2) */
    pst_initializer weights_init; /* default Xavier uniform */
    pst_regularizer weights_reg;
    pst_initializer biases_init;  /* default zeros */
    pst_regularizer biases_reg;
    int use_biases;           /* default 1 (slim's biases_initializer=None is 0) */
    int normalizer;           /* 1: batch_norm after the linear part, no biases */
    int trainable;            /* default 1 */
    pst_output is_training;   /* bool scalar tensor; a null output uses `training` */
    int training;             /* constant flag when is_training is null (default 1) */
    float keep_prob;          /* dropout, default 0.5 */
    const char *device;       /* for variables */
    float bn_decay, bn_epsilon; /* defaults 0.999, 0.001 */
    int bn_center, bn_scale;  /* defaults 1, 0 (slim) */
    int depth_multiplier;     /* separable_conv2d, default 1 */
} pst_layer_args;

/* Argument scopes: push defaults for the layer kinds in `kinds`; pop restores. */
void pst_arg_scope_push(unsigned kinds, const pst_layer_args *defaults);
void pst_arg_scope_pop(void);
/* The effective arguments of a layer kind: built-in defaults, then scopes outer to inner,
 * then the explicit args (may be NULL). */
pst_layer_args pst_layer_resolve_args(unsigned kind, const pst_layer_args *explicit_args);

/* Variables (slim.variable / slim.model_variable). Model variables also join
 * "model_variables". Honours PST_L_VARIABLE argument scopes for device, regularizer,
 * initializer and trainable. `extra_collections` is NULL-terminated or NULL. */
pst_output pst_layer_variable(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape,
                              const pst_layer_args *args, const char *const *extra_collections);
pst_output pst_layer_model_variable(pst_graph *g, const char *name, pst_dtype dt,
                                    pst_shape shape, const pst_layer_args *args,
                                    const char *const *extra_collections);

pst_output pst_layer_activation(pst_graph *g, pst_output x, pst_activation a, float alpha);

pst_output pst_layer_conv2d(pst_graph *g, pst_output x, int num_outputs, int kh, int kw,
                            const pst_layer_args *args, const char *scope);
pst_output pst_layer_separable_conv2d(pst_graph *g, pst_output x, int num_outputs, int kh, int kw,
                                      const pst_layer_args *args, const char *scope);
pst_output pst_layer_conv2d_transpose(pst_graph *g, pst_output x, int num_outputs, int kh,
                                      int kw, const pst_layer_args *args, const char *scope);
pst_output pst_layer_fully_connected(pst_graph *g, pst_output x, int num_outputs,
                                     const pst_layer_args *args, const char *scope);
pst_output pst_layer_max_pool2d(pst_graph *g, pst_output x, int kh, int kw,
                                const pst_layer_args *args, const char *scope);
pst_output pst_layer_avg_pool2d(pst_graph *g, pst_output x, int kh, int kw,
                                const pst_layer_args *args, const char *scope);
/* Averages over height and width (global average pooling), giving [N, C]. */
pst_output pst_layer_global_avg_pool(pst_graph *g, pst_output x, const char *scope);
pst_output pst_layer_dropout(pst_graph *g, pst_output x, const pst_layer_args *args,
                             const char *scope);
pst_output pst_layer_flatten(pst_graph *g, pst_output x, const char *scope);
/* Adds the moving-average updates to "update_ops". */
pst_output pst_layer_batch_norm(pst_graph *g, pst_output x, const pst_layer_args *args,
                                const char *scope);
pst_output pst_layer_bias_add(pst_graph *g, pst_output x, const pst_layer_args *args,
                              const char *scope);
pst_output pst_layer_one_hot_encoding(pst_graph *g, pst_output labels, int num_classes,
                                      const char *scope);
/* x / sqrt(sum(x^2, axis) + epsilon). */
pst_output pst_layer_unit_norm(pst_graph *g, pst_output x, int axis, float epsilon,
                               const char *scope);

/* repeat: n applications of fn, scoped `scope/scope_1` ... `scope/scope_n`.
 * stack: the same naming, fn receives the layer index to pick its own arguments. */
typedef pst_output (*pst_layer_fn)(pst_graph *g, pst_output x, int index, void *ctx,
                                   const char *scope);
pst_output pst_layer_repeat(pst_graph *g, pst_output x, int n, pst_layer_fn fn, void *ctx,
                            const char *scope);
pst_output pst_layer_stack(pst_graph *g, pst_output x, int n, pst_layer_fn fn, void *ctx,
                           const char *scope);

/* Layer weights created from now on whose axis 0 allows it are partitioned
 * (tf.min_max_variable_partitioner): as many parts as keep each at least min_slice_bytes, at
 * most max_parts, named `weights/part_i` and spread over the PS by the device setter. */
#define PST_PARTITIONER_KEY "pstrain_partitioner"
void pst_layers_set_partitioner(pst_graph *g, int64_t min_slice_bytes, int max_parts);

#endif
