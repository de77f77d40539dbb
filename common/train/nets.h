/*
 * nets — the model zoo: softmax regression, an MLP (784-256-256-10), the seed notebooks'
 * SimpleCNN and five-block CNN, LeNet-5 and VGG-16 in slim's layout. Each builds logits from
 * NHWC float images through the layers API, so its variables carry devices, initializers and
 * regularizers like any slim model.
 *
 *     const pst_net_def *net = pst_net_lookup("simple_cnn");
 *     pst_net_opts o = pst_net_defaults();
 *     pst_output logits = net->build(g, images, &o);
 */
#ifndef PST_NETS_H
#define PST_NETS_H

#include "graph.h"

typedef struct pst_net_opts {
    int num_classes;        /* default 10 */
    pst_output is_training; /* bool scalar; null: `training` constant */
    int training;           /* default 1 */
    float keep_prob;        /* dropout keep probability, default 0.5 */
    float weight_decay;     /* L2 scale on weights; 0 = none (default) */
    int64_t seed;           /* op seed base for initializers, -1 = from the graph seed */
} pst_net_opts;

pst_net_opts pst_net_defaults(void);

typedef pst_output (*pst_net_fn)(pst_graph *g, pst_output images, const pst_net_opts *o);

typedef struct pst_net_def {
    const char *name;        /* "softmax", "mlp", "simple_cnn", "cnn5", "lenet5", "vgg16",
                                "bag_of_ids" */
    pst_net_fn build;
    int height, width, channels; /* the input the net expects */
    const char *description;
} pst_net_def;

/* NULL for an unknown name. */
const pst_net_def *pst_net_lookup(const char *name);
/* The NULL-terminated list of all nets. */
const pst_net_def *const *pst_net_list(void);

pst_output pst_net_softmax(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_mlp(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_simple_cnn(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_cnn5(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_lenet5(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_vgg16(pst_graph *g, pst_output images, const pst_net_opts *o);
pst_output pst_net_bag_of_ids(pst_graph *g, pst_output images, const pst_net_opts *o);

#endif
