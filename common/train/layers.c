#include "layers.h"


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "partitioned_var.h"
#include "regularizer.h"

/* ---- Argument scopes ------------------------------------------------------------------- */

#define MAX_ARG_SCOPES 64

typedef struct arg_frame {
    unsigned kinds;
    pst_layer_args args;
} arg_frame;

static _Thread_local arg_frame frames[MAX_ARG_SCOPES];
static _Thread_local int n_frames;

void pst_arg_scope_push(unsigned kinds, const pst_layer_args *defaults) {
    PST_ASSERT(n_frames < MAX_ARG_SCOPES);
    frames[n_frames].kinds = kinds;
    frames[n_frames].args = *defaults;
    n_frames++;
}

void pst_arg_scope_pop(void) {
    PST_ASSERT(n_frames > 0);
    n_frames--;
}

static void overlay(pst_layer_args *dst, const pst_layer_args *src) {
    unsigned s = src->set;
    if (s & PST_ARG_PADDING) dst->padding = src->padding;
    if (s & PST_ARG_STRIDE) {
        dst->stride_h = src->stride_h;
        dst->stride_w = src->stride_w ? src->stride_w : src->stride_h;
    }
    if (s & PST_ARG_ACTIVATION) {
        dst->activation = src->activation;
        if (src->alpha != 0) dst->alpha = src->alpha;
    }
    if (s & PST_ARG_WEIGHTS_INIT) dst->weights_init = src->weights_init;
    if (s & PST_ARG_WEIGHTS_REG) dst->weights_reg = src->weights_reg;
    if (s & PST_ARG_BIASES_INIT) dst->biases_init = src->biases_init;
    if (s & PST_ARG_BIASES_REG) dst->biases_reg = src->biases_reg;
    if (s & PST_ARG_USE_BIASES) dst->use_biases = src->use_biases;
    if (s & PST_ARG_NORMALIZER) dst->normalizer = src->normalizer;
    if (s & PST_ARG_TRAINABLE) dst->trainable = src->trainable;
    if (s & PST_ARG_IS_TRAINING) {
        dst->is_training = src->is_training;
        dst->training = src->training;
    }
    if (s & PST_ARG_KEEP_PROB) dst->keep_prob = src->keep_prob;
    if (s & PST_ARG_DEVICE) dst->device = src->device;
    if (s & PST_ARG_BN) {
        dst->bn_decay = src->bn_decay;
        dst->bn_epsilon = src->bn_epsilon;
        dst->bn_center = src->bn_center;
        dst->bn_scale = src->bn_scale;
    }
    if (s & PST_ARG_DEPTH_MULTIPLIER) dst->depth_multiplier = src->depth_multiplier;
    dst->set |= s;
}

pst_layer_args pst_layer_resolve_args(unsigned kind, const pst_layer_args *explicit_args) {
    int pool = (kind & (PST_L_MAX_POOL2D | PST_L_AVG_POOL2D)) != 0;
    pst_layer_args a = {
        .padding = pool ? "VALID" : "SAME",
        .stride_h = pool ? 2 : 1,
        .stride_w = pool ? 2 : 1,
        .activation = PST_ACT_RELU,
        .alpha = 0.2f,
        .weights_init = pst_init_xavier(1, -1),
        .weights_reg = pst_regularizer_none(),
        .biases_init = pst_init_zeros(),
        .biases_reg = pst_regularizer_none(),
        .use_biases = 1,
        .trainable = 1,
        .training = 1,
        .keep_prob = 0.5f,
        .bn_decay = 0.999f,
        .bn_epsilon = 0.001f,
        .bn_center = 1,
        .bn_scale = 0,
        .depth_multiplier = 1,
    };
    for (int i = 0; i < n_frames; i++)
        if (frames[i].kinds & kind) overlay(&a, &frames[i].args);
    if (explicit_args) overlay(&a, explicit_args);
    return a;
}

/* ---- Helpers --------------------------------------------------------------------------- */

static int enter_scope(pst_graph *g, const char *scope, const char *dflt) {
    return pst_graph_push_name_scope(g, scope ? scope : dflt, 0) == 0;
}

static pst_output is_training_tensor(pst_graph *g, const pst_layer_args *a) {
    if (a->is_training.node) return a->is_training;
    return pst_out(NULL, 0);
}

/* ---- Variables ------------------------------------------------------------------------- */

static pst_output make_variable(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape,
                                const pst_layer_args *explicit_args,
                                const char *const *extra, int model) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_VARIABLE, explicit_args);
    const char *cols[16];
    int nc = 0;
    if (model) cols[nc++] = PST_MODEL_VARIABLES;
    for (const char *const *k = extra; k && *k && nc < 15; k++) cols[nc++] = *k;
    cols[nc] = NULL;
    pst_variable_opts o = {.name = name,
                           .dtype = dt,
                           .shape = shape,
                           .init_fn = pst_init_fn_of,
                           .init_ctx = &a.weights_init,
                           .trainable = a.trainable,
                           .device = a.device,
                           .collections = cols};
    pst_output v = pst_variable_ex(g, &o);
    if (v.node && a.weights_reg.kind != PST_REG_NONE) {
        pst_graph_push_name_scope(g, name, 0);
        pst_output r = pst_regularizer_build(g, &a.weights_reg, pst_variable_value(v));
        pst_graph_pop_name_scope(g);
        pst_graph_add_to_collection(g, PST_REGULARIZATION_LOSSES, r);
    }
    return v;
}

pst_output pst_layer_variable(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape,
                              const pst_layer_args *args, const char *const *extra) {
    return make_variable(g, name, dt, shape, args, extra, 0);
}

pst_output pst_layer_model_variable(pst_graph *g, const char *name, pst_dtype dt,
                                    pst_shape shape, const pst_layer_args *args,
                                    const char *const *extra) {
    return make_variable(g, name, dt, shape, args, extra, 1);
}

/* A layer's weights/biases: model variables with the layer's initializer and regularizer. */
static pst_output layer_var(pst_graph *g, const char *name, pst_shape shape,
                            const pst_initializer *init, const pst_regularizer *reg,
                            const pst_layer_args *a) {
    pst_layer_args v = {.set = PST_ARG_WEIGHTS_INIT | PST_ARG_WEIGHTS_REG | PST_ARG_TRAINABLE,
                        .weights_init = *init,
                        .weights_reg = *reg,
                        .trainable = a->trainable};
    if (a->set & PST_ARG_DEVICE) {
        v.set |= PST_ARG_DEVICE;
        v.device = a->device;
    }
    /* A partitioner set on the graph splits big weights along axis 0 over the PS. */
    int np = 0;
    const int64_t *part = pst_graph_int64_collection(g, PST_PARTITIONER_KEY, &np);
    int n_parts = np == 2 && pst_shape_is_known(&shape) && shape.rank >= 1
                      ? pst_partitioned_var_count(shape, PST_FLOAT, 0, part[0], (int)part[1])
                      : 1;
    if (n_parts > 1 && !(a->set & PST_ARG_DEVICE)) {
        pst_partitioned_var *pv =
            pst_partitioned_var_new(g, name, PST_FLOAT, shape, n_parts, init, a->trainable);
        if (!pv) return pst_out(NULL, 0);
        pst_output value = pv->value;
        for (int i = 0; i < pv->n_parts; i++)
            pst_graph_add_to_collection(g, PST_MODEL_VARIABLES, pv->parts[i]);
        pst_partitioned_var_free(pv);
        if (reg->kind != PST_REG_NONE) {
            pst_graph_push_name_scope(g, name, 0);
            pst_graph_add_to_collection(g, PST_REGULARIZATION_LOSSES, pst_regularizer_build(g, reg, value));
            pst_graph_pop_name_scope(g);
        }
        return value;
    }
    pst_output var = make_variable(g, name, PST_FLOAT, shape, &v, NULL, 1);
    return pst_variable_value(var);
}

void pst_layers_set_partitioner(pst_graph *g, int64_t min_slice_bytes, int max_parts) {
    pst_graph_add_int64_to_collection(g, PST_PARTITIONER_KEY, min_slice_bytes);
    pst_graph_add_int64_to_collection(g, PST_PARTITIONER_KEY, max_parts);
}

pst_output pst_layer_activation(pst_graph *g, pst_output x, pst_activation act, float alpha) {
    switch (act) {
    case PST_ACT_NONE: return x;
    case PST_ACT_RELU: return pst_relu(g, x, NULL);
    case PST_ACT_RELU6: return pst_relu6(g, x, NULL);
    case PST_ACT_LEAKY_RELU: return pst_leaky_relu(g, x, alpha, NULL);
    case PST_ACT_ELU: return pst_elu(g, x, NULL);
    case PST_ACT_SIGMOID: return pst_sigmoid(g, x, NULL);
    case PST_ACT_TANH: return pst_tanh(g, x, NULL);
    case PST_ACT_SOFTMAX: return pst_softmax(g, x, NULL);
    default: break;
    }
    pst_graph_set_error(g, PST_E_INVALID, "unknown activation %d", (int)act);
    return pst_out(NULL, 0);
}

/* Biases or the normalizer, then the activation: the common tail of conv and fc layers. */
static pst_output layer_tail(pst_graph *g, pst_output y, int num_outputs, const pst_layer_args *a) {
    if (a->normalizer) {
        pst_layer_args bn = *a;
        bn.set |= PST_ARG_IS_TRAINING | PST_ARG_BN;
        y = pst_layer_batch_norm(g, y, &bn, "BatchNorm");
    } else if (a->use_biases) {
        pst_output b = layer_var(g, "biases", pst_shape_1d(num_outputs), &a->biases_init,
                                 &a->biases_reg, a);
        y = pst_bias_add(g, y, b, "BiasAdd");
    }
    return pst_layer_activation(g, y, a->activation, a->alpha);
}

static int64_t last_dim(pst_graph *g, pst_output x, const char *layer) {
    if (x.node == NULL) return -1;
    pst_shape s = pst_output_shape(x);
    if (s.rank < 1 || s.dims[s.rank - 1] < 0) {
        char buf[128];
        pst_graph_set_error(g, PST_E_INVALID, "%s: input '%s' needs a known last dimension, got %s",
                            layer, x.node->name, pst_shape_str(&s, buf, sizeof buf));
        return -1;
    }
    return s.dims[s.rank - 1];
}

/* ---- Layers ---------------------------------------------------------------------------- */

pst_output pst_layer_conv2d(pst_graph *g, pst_output x, int num_outputs, int kh, int kw,
                            const pst_layer_args *args, const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_CONV2D, args);
    int64_t cin = last_dim(g, x, "conv2d");
    if (cin < 0 || !enter_scope(g, scope, "Conv")) return pst_out(NULL, 0);
    pst_output w = layer_var(g, "weights", pst_shape_4d(kh, kw, cin, num_outputs), &a.weights_init,
                             &a.weights_reg, &a);
    pst_output y = pst_conv2d(g, x, w, a.stride_h, a.stride_w, a.padding, "Conv2D");
    y = layer_tail(g, y, num_outputs, &a);
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_separable_conv2d(pst_graph *g, pst_output x, int num_outputs, int kh, int kw,
                                      const pst_layer_args *args, const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_SEPARABLE_CONV2D, args);
    int64_t cin = last_dim(g, x, "separable_conv2d");
    if (cin < 0 || !enter_scope(g, scope, "SeparableConv2d")) return pst_out(NULL, 0);
    int dm = a.depth_multiplier > 0 ? a.depth_multiplier : 1;
    pst_output dw = layer_var(g, "depthwise_weights", pst_shape_4d(kh, kw, cin, dm),
                              &a.weights_init, &a.weights_reg, &a);
    /* Depthwise: each input channel convolved with its own dm filters. */
    pst_output *ch = calloc((size_t)cin, sizeof *ch), *fw = calloc((size_t)cin, sizeof *fw);
    pst_output *outs = calloc((size_t)cin, sizeof *outs);
    PST_ASSERT(ch && fw && outs);
    pst_split(g, x, 3, (int)cin, ch, "split_input");
    pst_split(g, dw, 2, (int)cin, fw, "split_filter");
    for (int64_t c = 0; c < cin; c++)
        outs[c] = pst_conv2d(g, ch[c], fw[c], a.stride_h, a.stride_w, a.padding, "depthwise");
    pst_output y = cin == 1 ? outs[0] : pst_concat(g, (int)cin, outs, 3, "depthwise_concat");
    free(ch);
    free(fw);
    free(outs);
    pst_output pw = layer_var(g, "pointwise_weights", pst_shape_4d(1, 1, cin * dm, num_outputs),
                              &a.weights_init, &a.weights_reg, &a);
    y = pst_conv2d(g, y, pw, 1, 1, "VALID", "pointwise");
    y = layer_tail(g, y, num_outputs, &a);
    pst_graph_pop_name_scope(g);
    return y;
}

static int64_t conv_out_size(int64_t in, int k, int s, const char *padding) {
    if (in < 0) return -1;
    return strcmp(padding, "VALID") == 0 ? in * s + (k > s ? k - s : 0) : in * s;
}

pst_output pst_layer_conv2d_transpose(pst_graph *g, pst_output x, int num_outputs, int kh,
                                      int kw, const pst_layer_args *args, const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_CONV2D_TRANSPOSE, args);
    int64_t cin = last_dim(g, x, "conv2d_transpose");
    if (cin < 0 || !enter_scope(g, scope, "Conv2d_transpose")) return pst_out(NULL, 0);
    pst_output w = layer_var(g, "weights", pst_shape_4d(kh, kw, num_outputs, cin), &a.weights_init,
                             &a.weights_reg, &a);
    /* Output shape: [N, H*s (+k-s for VALID), W*s (...), num_outputs], batch taken at run time. */
    pst_shape in = pst_output_shape(x);
    int64_t oh = conv_out_size(in.dims[1], kh, a.stride_h, a.padding);
    int64_t ow = conv_out_size(in.dims[2], kw, a.stride_w, a.padding);
    if (oh < 0 || ow < 0) {
        pst_graph_set_error(g, PST_E_INVALID, "conv2d_transpose needs known height and width");
        pst_graph_pop_name_scope(g);
        return pst_out(NULL, 0);
    }
    pst_output batch = pst_strided_slice(g, pst_shape_of(g, x, PST_INT32, NULL), 1,
                                         (int64_t[]){0}, (int64_t[]){1}, (int64_t[]){1}, 0, 0, 0,
                                         NULL);
    int32_t rest[3] = {(int32_t)oh, (int32_t)ow, num_outputs};
    pst_output parts[2] = {batch, pst_const_i32_vec(g, 3, rest, NULL)};
    pst_output out_shape = pst_concat(g, 2, parts, 0, "output_shape");
    pst_node_builder *b = pst_nb_new(g, "Conv2DBackpropInput", "conv2d_transpose");
    pst_nb_input(b, out_shape);
    pst_nb_input(b, w);
    pst_nb_input(b, x);
    pst_nb_attr_type(b, "T", PST_FLOAT);
    int64_t strides[4] = {1, a.stride_h, a.stride_w, 1};
    pst_nb_attr_list_i(b, "strides", 4, strides);
    pst_nb_attr_s(b, "padding", a.padding);
    pst_nb_attr_shape(b, "_output_shape", pst_shape_4d(in.dims[0], oh, ow, num_outputs));
    pst_output y = pst_nb_finish_out(b);
    y = layer_tail(g, y, num_outputs, &a);
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_fully_connected(pst_graph *g, pst_output x, int num_outputs,
                                     const pst_layer_args *args, const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_FULLY_CONNECTED, args);
    int64_t cin = last_dim(g, x, "fully_connected");
    if (cin < 0 || !enter_scope(g, scope, "fully_connected")) return pst_out(NULL, 0);
    pst_output w = layer_var(g, "weights", pst_shape_2d(cin, num_outputs), &a.weights_init,
                             &a.weights_reg, &a);
    pst_output y = pst_matmul(g, x, w, 0, 0, "MatMul");
    y = layer_tail(g, y, num_outputs, &a);
    pst_graph_pop_name_scope(g);
    return y;
}

static pst_output pool(pst_graph *g, pst_output x, int kh, int kw, const pst_layer_args *args,
                       const char *scope, int is_max) {
    pst_layer_args a = pst_layer_resolve_args(is_max ? PST_L_MAX_POOL2D : PST_L_AVG_POOL2D, args);
    if (!enter_scope(g, scope, is_max ? "MaxPool2D" : "AvgPool2D")) return pst_out(NULL, 0);
    pst_output y = is_max ? pst_max_pool(g, x, kh, kw, a.stride_h, a.stride_w, a.padding, "MaxPool")
                          : pst_avg_pool(g, x, kh, kw, a.stride_h, a.stride_w, a.padding, "AvgPool");
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_max_pool2d(pst_graph *g, pst_output x, int kh, int kw,
                                const pst_layer_args *args, const char *scope) {
    return pool(g, x, kh, kw, args, scope, 1);
}

pst_output pst_layer_avg_pool2d(pst_graph *g, pst_output x, int kh, int kw,
                                const pst_layer_args *args, const char *scope) {
    return pool(g, x, kh, kw, args, scope, 0);
}

pst_output pst_layer_global_avg_pool(pst_graph *g, pst_output x, const char *scope) {
    if (!enter_scope(g, scope, "GlobalPool")) return pst_out(NULL, 0);
    int32_t axes[2] = {1, 2};
    pst_output y = pst_reduce_mean(g, x, 2, axes, 0, "Mean");
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_dropout(pst_graph *g, pst_output x, const pst_layer_args *args,
                             const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_DROPOUT, args);
    pst_output flag = is_training_tensor(g, &a);
    if (flag.node == NULL && (!a.training || a.keep_prob >= 1.0f)) return x;
    if (!enter_scope(g, scope, "Dropout")) return pst_out(NULL, 0);
    /* keep = floor(keep_prob + U[0,1)); y = x / keep_prob * keep. */
    pst_output u = pst_random_uniform_t(g, pst_shape_of(g, x, PST_INT32, NULL), PST_FLOAT, -1,
                                        "random_uniform");
    pst_output keep = pst_floor(g, pst_add(g, u, pst_const_f32(g, a.keep_prob, "keep_prob"), NULL),
                                NULL);
    pst_output y = pst_mul(g, pst_mul(g, x, pst_const_f32(g, 1.0f / a.keep_prob, NULL), NULL),
                           keep, "mul");
    if (flag.node) y = pst_select(g, flag, y, x, "select");
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_flatten(pst_graph *g, pst_output x, const char *scope) {
    if (x.node == NULL || !enter_scope(g, scope, "Flatten")) return pst_out(NULL, 0);
    pst_shape s = pst_output_shape(x);
    int64_t k = 1;
    for (int i = 1; i < s.rank; i++) k = (s.dims[i] < 0 || k < 0) ? -1 : k * s.dims[i];
    pst_output y;
    if (k < 0) {
        pst_graph_set_error(g, PST_E_INVALID, "flatten: '%s' needs known non-batch dims",
                            x.node->name);
        y = pst_out(NULL, 0);
    } else {
        int64_t dims[2] = {-1, k};
        y = pst_reshape(g, x, 2, dims, "Reshape");
    }
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_batch_norm(pst_graph *g, pst_output x, const pst_layer_args *args,
                                const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_BATCH_NORM, args);
    int64_t c = last_dim(g, x, "batch_norm");
    if (c < 0 || !enter_scope(g, scope, "BatchNorm")) return pst_out(NULL, 0);
    pst_regularizer none = pst_regularizer_none();
    pst_initializer zeros = pst_init_zeros(), ones = pst_init_ones();
    pst_shape cs = pst_shape_1d(c);
    pst_output beta = a.bn_center ? layer_var(g, "beta", cs, &zeros, &none, &a)
                                  : pst_init_build(g, &zeros, PST_FLOAT, cs);
    pst_output gamma = a.bn_scale ? layer_var(g, "gamma", cs, &ones, &none, &a)
                                  : pst_init_build(g, &ones, PST_FLOAT, cs);
    /* Moving statistics: model variables, never trained. */
    pst_layer_args zero_stat = {.set = PST_ARG_WEIGHTS_INIT | PST_ARG_TRAINABLE,
                                .weights_init = zeros};
    pst_layer_args one_stat = {.set = PST_ARG_WEIGHTS_INIT | PST_ARG_TRAINABLE,
                               .weights_init = ones};
    if (a.set & PST_ARG_DEVICE) {
        zero_stat.set |= PST_ARG_DEVICE;
        one_stat.set |= PST_ARG_DEVICE;
        zero_stat.device = one_stat.device = a.device;
    }
    pst_output mm = make_variable(g, "moving_mean", PST_FLOAT, cs, &zero_stat, NULL, 1);
    pst_output mv = make_variable(g, "moving_variance", PST_FLOAT, cs, &one_stat, NULL, 1);
    pst_output flag = is_training_tensor(g, &a);
    pst_output y = pst_out(NULL, 0);
    if (flag.node || a.training) {
        pst_node *bn = pst_fused_batch_norm(g, x, gamma, beta, pst_variable_value(mm),
                                            pst_variable_value(mv), a.bn_epsilon, 1,
                                            "FusedBatchNorm");
        if (bn) {
            y = pst_out(bn, 0);
            /* moving -= (moving - batch) * (1 - decay), zeroed when not training. */
            pst_output rate = pst_const_f32(g, 1.0f - a.bn_decay, "decay_rate");
            if (flag.node) rate = pst_mul(g, rate, pst_cast(g, flag, PST_FLOAT, NULL), NULL);
            pst_output dm = pst_mul(g, pst_sub(g, pst_variable_value(mm), pst_out(bn, 1), NULL),
                                    rate, NULL);
            pst_output dv = pst_mul(g, pst_sub(g, pst_variable_value(mv), pst_out(bn, 2), NULL),
                                    rate, NULL);
            pst_graph_add_to_collection(g, PST_UPDATE_OPS,
                                        pst_assign_sub(g, mm, dm, "AssignMovingAvg"));
            pst_graph_add_to_collection(g, PST_UPDATE_OPS,
                                        pst_assign_sub(g, mv, dv, "AssignMovingAvg_1"));
        }
    }
    if (flag.node || !a.training) {
        pst_node *bn = pst_fused_batch_norm(g, x, gamma, beta, pst_variable_value(mm),
                                            pst_variable_value(mv), a.bn_epsilon, 0,
                                            "FusedBatchNorm_inference");
        pst_output yi = bn ? pst_out(bn, 0) : pst_out(NULL, 0);
        y = y.node ? pst_select(g, flag, y, yi, "select") : yi;
    }
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_bias_add(pst_graph *g, pst_output x, const pst_layer_args *args,
                              const char *scope) {
    pst_layer_args a = pst_layer_resolve_args(PST_L_BIAS_ADD, args);
    int64_t c = last_dim(g, x, "bias_add");
    if (c < 0 || !enter_scope(g, scope, "BiasAdd")) return pst_out(NULL, 0);
    pst_output b = layer_var(g, "biases", pst_shape_1d(c), &a.biases_init, &a.biases_reg, &a);
    pst_output y = pst_bias_add(g, x, b, "BiasAdd");
    if (a.set & PST_ARG_ACTIVATION) y = pst_layer_activation(g, y, a.activation, a.alpha);
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_one_hot_encoding(pst_graph *g, pst_output labels, int num_classes,
                                      const char *scope) {
    if (!enter_scope(g, scope, "OneHotEncoding")) return pst_out(NULL, 0);
    pst_output y = pst_one_hot(g, labels, num_classes, 1.0f, 0.0f, -1, "one_hot");
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_unit_norm(pst_graph *g, pst_output x, int axis, float epsilon,
                               const char *scope) {
    if (!enter_scope(g, scope, "UnitNorm")) return pst_out(NULL, 0);
    int32_t ax = axis;
    pst_output ss = pst_reduce_sum(g, pst_square(g, x, NULL), 1, &ax, 1, NULL);
    pst_output norm = pst_sqrt(g, pst_add(g, ss, pst_const_f32(g, epsilon, NULL), NULL), NULL);
    pst_output y = pst_real_div(g, x, norm, "truediv");
    pst_graph_pop_name_scope(g);
    return y;
}

pst_output pst_layer_repeat(pst_graph *g, pst_output x, int n, pst_layer_fn fn, void *ctx,
                            const char *scope) {
    if (scope == NULL) scope = "Repeat";
    const char *base = strrchr(scope, '/') ? strrchr(scope, '/') + 1 : scope;
    if (!enter_scope(g, scope, "Repeat")) return pst_out(NULL, 0);
    for (int i = 0; i < n && x.node; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s_%d", base, i + 1);
        x = fn(g, x, i, ctx, name);
    }
    pst_graph_pop_name_scope(g);
    return x;
}

pst_output pst_layer_stack(pst_graph *g, pst_output x, int n, pst_layer_fn fn, void *ctx,
                           const char *scope) {
    return pst_layer_repeat(g, x, n, fn, ctx, scope ? scope : "Stack");
}
