#include "nets.h"

#include <stdio.h>
#include <string.h>

#include "embedding.h"
#include "layers.h"
#include "ops.h"
#include "partitioned_var.h"
#include "regularizer.h"

pst_net_opts pst_net_defaults(void) {
    pst_net_opts o = {.num_classes = 10, .training = 1, .keep_prob = 0.5f, .seed = -1};
    return o;
}

/* Common defaults for every layer of a net: training switch, weight decay, dropout. */
static void push_common(const pst_net_opts *o) {
    pst_layer_args a = {.set = PST_ARG_IS_TRAINING | PST_ARG_KEEP_PROB,
                        .is_training = o->is_training,
                        .training = o->training,
                        .keep_prob = o->keep_prob};
    if (o->weight_decay > 0) {
        a.set |= PST_ARG_WEIGHTS_REG;
        a.weights_reg = pst_regularizer_l2(o->weight_decay);
    }
    pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED | PST_L_DROPOUT | PST_L_BATCH_NORM |
                           PST_L_SEPARABLE_CONV2D,
                       &a);
}

static const pst_layer_args linear = {.set = PST_ARG_ACTIVATION, .activation = PST_ACT_NONE};

pst_output pst_net_softmax(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_graph_push_name_scope(g, "softmax", 0);
    pst_output x = pst_layer_flatten(g, images, NULL);
    pst_layer_args a = linear;
    a.set |= PST_ARG_WEIGHTS_INIT;
    a.weights_init = pst_init_zeros();
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &a, "logits");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    return y;
}

pst_output pst_net_mlp(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_graph_push_name_scope(g, "mlp", 0);
    pst_output x = pst_layer_flatten(g, images, NULL);
    x = pst_layer_fully_connected(g, x, 256, NULL, "fc1");
    x = pst_layer_fully_connected(g, x, 256, NULL, "fc2");
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &linear, "logits");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    return y;
}

/* The seed notebooks' SimpleCNN (TF's Deep MNIST tutorial): truncated-normal(0.1) weights and
 * 0.1 biases, 2x2 SAME max pooling. */
pst_output pst_net_simple_cnn(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_layer_args d = {.set = PST_ARG_WEIGHTS_INIT | PST_ARG_BIASES_INIT,
                        .weights_init = pst_init_truncated_normal(0, 0.1, o->seed),
                        .biases_init = pst_init_constant(0.1)};
    pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED, &d);
    pst_layer_args pool = {.set = PST_ARG_PADDING, .padding = "SAME"};
    pst_arg_scope_push(PST_L_MAX_POOL2D, &pool);
    pst_graph_push_name_scope(g, "cnn", 0);
    pst_output x = pst_layer_conv2d(g, images, 32, 5, 5, NULL, "conv1");
    x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool1");
    x = pst_layer_conv2d(g, x, 64, 5, 5, NULL, "conv2");
    x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool2");
    x = pst_layer_flatten(g, x, NULL);
    x = pst_layer_fully_connected(g, x, 1024, NULL, "fc1");
    x = pst_layer_dropout(g, x, NULL, "dropout");
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &linear, "logits");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    pst_arg_scope_pop();
    pst_arg_scope_pop();
    return y;
}

/* Five blocks of conv 3x3x8 SAME + leaky ReLU (He init) + 2x2 SAME max pool, global average
 * pooling, fc 32 leaky ReLU, output with Xavier init. */
pst_output pst_net_cnn5(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_layer_args d = {.set = PST_ARG_WEIGHTS_INIT | PST_ARG_ACTIVATION,
                        .weights_init = pst_init_he_normal(o->seed),
                        .activation = PST_ACT_LEAKY_RELU,
                        .alpha = 0.2f};
    pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED, &d);
    pst_layer_args pool = {.set = PST_ARG_PADDING, .padding = "SAME"};
    pst_arg_scope_push(PST_L_MAX_POOL2D, &pool);
    pst_graph_push_name_scope(g, "cnn5", 0);
    pst_output x = images;
    for (int b = 1; b <= 5; b++) {
        char scope[32];
        snprintf(scope, sizeof scope, "conv_block%d", b);
        pst_graph_push_name_scope(g, scope, 0);
        x = pst_layer_conv2d(g, x, 8, 3, 3, NULL, "conv");
        x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool");
        pst_graph_pop_name_scope(g);
    }
    x = pst_layer_global_avg_pool(g, x, "global_pool");
    x = pst_layer_fully_connected(g, x, 32, NULL, "fc");
    pst_layer_args out = {.set = PST_ARG_ACTIVATION | PST_ARG_WEIGHTS_INIT,
                          .activation = PST_ACT_NONE,
                          .weights_init = pst_init_xavier(1, o->seed)};
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &out, "logits");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    pst_arg_scope_pop();
    pst_arg_scope_pop();
    return y;
}

/* LeNet-5: conv 5x5x6 SAME, pool, conv 5x5x16 VALID, pool, fc 120, fc 84, fc classes. */
pst_output pst_net_lenet5(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_graph_push_name_scope(g, "LeNet", 0);
    pst_output x = pst_layer_conv2d(g, images, 6, 5, 5, NULL, "conv1");
    x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool1");
    pst_layer_args valid = {.set = PST_ARG_PADDING, .padding = "VALID"};
    x = pst_layer_conv2d(g, x, 16, 5, 5, &valid, "conv2");
    x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool2");
    x = pst_layer_flatten(g, x, NULL);
    x = pst_layer_fully_connected(g, x, 120, NULL, "fc3");
    x = pst_layer_fully_connected(g, x, 84, NULL, "fc4");
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &linear, "fc5");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    return y;
}

typedef struct conv_cfg {
    int outputs;
} conv_cfg;

static pst_output vgg_conv(pst_graph *g, pst_output x, int index, void *ctx, const char *scope) {
    (void)index;
    return pst_layer_conv2d(g, x, ((conv_cfg *)ctx)->outputs, 3, 3, NULL, scope);
}

/* slim's vgg_16: conv1..conv5 built with repeat, fc6..fc8 as convolutions, dropout. */
pst_output pst_net_vgg16(pst_graph *g, pst_output images, const pst_net_opts *o) {
    push_common(o);
    pst_graph_push_name_scope(g, "vgg_16", 0);
    static const int reps[5] = {2, 2, 3, 3, 3}, outs[5] = {64, 128, 256, 512, 512};
    pst_output x = images;
    for (int b = 0; b < 5; b++) {
        char scope[16], pool[16];
        snprintf(scope, sizeof scope, "conv%d", b + 1);
        snprintf(pool, sizeof pool, "pool%d", b + 1);
        conv_cfg c = {outs[b]};
        x = pst_layer_repeat(g, x, reps[b], vgg_conv, &c, scope);
        x = pst_layer_max_pool2d(g, x, 2, 2, NULL, pool);
    }
    pst_layer_args valid = {.set = PST_ARG_PADDING, .padding = "VALID"};
    x = pst_layer_conv2d(g, x, 4096, 7, 7, &valid, "fc6");
    x = pst_layer_dropout(g, x, NULL, "dropout6");
    x = pst_layer_conv2d(g, x, 4096, 1, 1, NULL, "fc7");
    x = pst_layer_dropout(g, x, NULL, "dropout7");
    x = pst_layer_conv2d(g, x, o->num_classes, 1, 1, &linear, "fc8");
    int32_t axes[2] = {1, 2};
    pst_output y = pst_squeeze(g, x, 2, axes, "fc8/squeezed");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    return y;
}

/* A bag-of-ids classifier, the shape of a recommendation model: each image becomes 49 ids (its
 * 7x7 average-pooled cells, each cell's position times 8 plus its brightness in 8 levels, 392
 * ids in all), looked up in a partitioned embedding table `embedding` [392, 16] (as many parts
 * as the graph's partitioner gives, else 2), the 49 rows concatenated, then a dense layer of
 * 128 and the logits. With a PS the table's parts live there and a step moves only the rows
 * the batch uses (embedding.h). */
pst_output pst_net_bag_of_ids(pst_graph *g, pst_output images, const pst_net_opts *o) {
    enum { CELLS = 49, LEVELS = 8, DIM = 16 };
    push_common(o);
    pst_graph_push_name_scope(g, "bag_of_ids", 0);
    pst_output cells = pst_avg_pool(g, images, 4, 4, 4, 4, "VALID", "cells"); /* [-1,7,7,1] */
    pst_output level = pst_floor(g, pst_minimum(g, pst_mul(g, cells, pst_const_f32(g, LEVELS, NULL),
                                                           NULL),
                                                pst_const_f32(g, LEVELS - 1, NULL), NULL),
                                 "level");
    float base[CELLS];
    for (int i = 0; i < CELLS; i++) base[i] = (float)(i * LEVELS);
    pst_output pos = pst_const_f32_tensor(g, pst_shape_4d(1, 7, 7, 1), base, "cell_base");
    int64_t flat[1] = {-1};
    pst_output ids = pst_cast(g, pst_reshape(g, pst_add(g, level, pos, NULL), 1, flat, NULL),
                              PST_INT64, "ids");
    pst_shape shape = pst_shape_2d(CELLS * LEVELS, DIM);
    int np = 0;
    const int64_t *part = pst_graph_int64_collection(g, PST_PARTITIONER_KEY, &np);
    int n_parts = np == 2 ? pst_partitioned_var_count(shape, PST_FLOAT, 0, part[0], (int)part[1])
                          : 2;
    pst_initializer init = pst_init_truncated_normal(0, 0.1, o->seed);
    pst_partitioned_var *table = pst_partitioned_var_new(g, "embedding", PST_FLOAT, shape,
                                                         n_parts < 2 ? 2 : n_parts, &init, 1);
    if (!table) {
        pst_graph_pop_name_scope(g);
        pst_arg_scope_pop();
        return pst_out(NULL, 0);
    }
    pst_output rows = pst_embedding_lookup(g, table, ids, "lookup"); /* [-1*49, 16] */
    pst_partitioned_var_free(table);
    int64_t per_example[2] = {-1, CELLS * DIM};
    pst_output x = pst_reshape(g, rows, 2, per_example, "bag");
    x = pst_layer_fully_connected(g, x, 128, NULL, "fc1");
    pst_output y = pst_layer_fully_connected(g, x, o->num_classes, &linear, "logits");
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    return y;
}

static const pst_net_def nets[] = {
    {"softmax", pst_net_softmax, 28, 28, 1, "softmax regression"},
    {"mlp", pst_net_mlp, 28, 28, 1, "MLP 784-256-256-10"},
    {"simple_cnn", pst_net_simple_cnn, 28, 28, 1, "SimpleCNN (conv32-pool-conv64-pool-fc1024)"},
    {"cnn5", pst_net_cnn5, 28, 28, 1, "five-block CNN with global average pooling"},
    {"lenet5", pst_net_lenet5, 28, 28, 1, "LeNet-5"},
    {"vgg16", pst_net_vgg16, 224, 224, 3, "VGG-16 (slim layout)"},
    {"bag_of_ids", pst_net_bag_of_ids, 28, 28, 1,
     "bag of 49 cell ids, partitioned embedding [392, 16], fc128"},
};

const pst_net_def *pst_net_lookup(const char *name) {
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
        if (strcmp(nets[i].name, name) == 0) return &nets[i];
    return NULL;
}

const pst_net_def *const *pst_net_list(void) {
    static const pst_net_def *list[sizeof nets / sizeof nets[0] + 1];
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) list[i] = &nets[i];
    return list;
}
