/*
 * The seed notebooks' TF-Slim argument-scope examples in C.
 *
 * 1. Three convolutions share an initializer and a regularizer through one arg scope; conv2
 *    overrides the padding explicitly.
 * 2. Nested scopes: conv2d and fully_connected share an activation and weight decay; an inner
 *    scope changes conv2d's stride and padding only.
 */
#include <stdio.h>

#include "layers.h"
#include "op.h"
#include "ops.h"
#include "regularizer.h"

static void show(pst_graph *g, const char *name) {
    pst_node *n = pst_graph_find(g, name);
    char buf[128];
    if (n == NULL) return;
    pst_shape s = n->out_shapes[0];
    printf("  %-28s %-10s %-6s %s\n", n->name, n->op->name, pst_node_attr_s(n, "padding", ""),
           pst_shape_str(&s, buf, sizeof buf));
}

int main(void) {
    pst_ops_init(); /* the built-in op families, before any graph */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(-1, 32, 32, 3));

    /* Example 1 */
    pst_layer_args shared = {.set = PST_ARG_PADDING | PST_ARG_WEIGHTS_INIT | PST_ARG_WEIGHTS_REG,
                             .padding = "SAME",
                             .weights_init = pst_init_truncated_normal(0, 0.01, -1),
                             .weights_reg = pst_regularizer_l2(0.0005)};
    pst_arg_scope_push(PST_L_CONV2D, &shared);
    pst_output n1 = pst_layer_conv2d(g, x, 64, 11, 11, NULL, "conv1");
    pst_layer_args valid = {.set = PST_ARG_PADDING, .padding = "VALID"};
    pst_output n2 = pst_layer_conv2d(g, n1, 128, 11, 11, &valid, "conv2");
    pst_output n3 = pst_layer_conv2d(g, n2, 256, 11, 11, NULL, "conv3");
    pst_arg_scope_pop();

    /* Example 2 */
    pst_layer_args outer = {.set = PST_ARG_ACTIVATION | PST_ARG_WEIGHTS_INIT | PST_ARG_WEIGHTS_REG,
                            .activation = PST_ACT_RELU,
                            .weights_init = pst_init_truncated_normal(0, 0.01, -1),
                            .weights_reg = pst_regularizer_l2(0.0005)};
    pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED, &outer);
    pst_layer_args inner = {.set = PST_ARG_STRIDE | PST_ARG_PADDING, .stride_h = 1, .stride_w = 1,
                            .padding = "VALID"};
    pst_arg_scope_push(PST_L_CONV2D, &inner);
    pst_output y = pst_layer_conv2d(g, n3, 256, 5, 5, NULL, "conv4");
    pst_layer_args same = {.set = PST_ARG_PADDING, .padding = "SAME"};
    y = pst_layer_conv2d(g, y, 256, 3, 3, &same, "conv5");
    pst_arg_scope_pop();
    y = pst_layer_fully_connected(g, pst_layer_flatten(g, y, NULL), 1000,
                                  &(pst_layer_args){.set = PST_ARG_ACTIVATION}, "fc");
    pst_arg_scope_pop();

    if (pst_graph_error(g)) {
        fprintf(stderr, "arg_scope_slim: %s\n", pst_graph_status(g)->msg);
        return 1;
    }
    printf("layers (name, op, padding, output shape):\n");
    const char *names[] = {"conv1/Conv2D", "conv2/Conv2D", "conv3/Conv2D", "conv4/Conv2D",
                           "conv5/Conv2D", "fc/MatMul",    "conv4/Relu",   "fc/BiasAdd"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) show(g, names[i]);
    int nreg;
    pst_graph_collection(g, PST_REGULARIZATION_LOSSES, &nreg);
    printf("regularization losses: %d (one per weight tensor)\n", nreg);
    pst_graph_free(g);
    return 0;
}
