/*
 * The seed's fine-tuning example: take a VGG-16 trained for 1000 classes, restore every layer
 * but the last into a VGG-16 for 20 classes (slim's get_variables_to_restore with an exclude
 * scope, then an init function that assigns from the checkpoint), and train all layers.
 *
 * Usage: finetune_vgg [dir]   (a "pretrained" checkpoint is written there first: ~550 MB)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nets.h"
#include "ops.h"
#include "optimizer.h"
#include "saver.h"
#include "variables.h"

static int fail(const char *what, const pst_status *st) {
    fprintf(stderr, "finetune_vgg: %s: %s\n", what, st->msg);
    return 1;
}

int main(int argc, char **argv) {
    pst_ops_init(); /* the built-in op families, before any graph */
    const char *dir = argc > 1 ? argv[1] : "/tmp/pst_finetune";
    mkdir(dir, 0755);
    char path[4096], prefix[4096];
    snprintf(path, sizeof path, "%s/vgg_16.ckpt", dir);
    pst_status st = {0};

    /* 1. A "pretrained" 1000-class VGG-16 checkpoint. */
    pst_graph *g1 = pst_graph_new();
    pst_net_opts o1 = pst_net_defaults();
    o1.num_classes = 1000;
    o1.training = 0;
    pst_net_vgg16(g1, pst_placeholder(g1, "images", PST_FLOAT, pst_shape_4d(-1, 224, 224, 3)), &o1);
    pst_session *s1 = pst_session_new(g1, NULL, &st);
    if (pst_session_run_target(s1, pst_global_variables_initializer(g1), &st) < 0) return fail("init", &st);
    pst_saver *sv1 = pst_saver_new(g1, &(pst_saver_opts){.write_meta = 0}, &st);
    if (pst_saver_save(sv1, s1, path, -1, prefix, sizeof prefix, &st) < 0) return fail("save", &st);
    printf("pretrained checkpoint: %s\n", prefix);
    pst_saver_free(sv1);
    pst_session_free(s1);
    pst_graph_free(g1);

    /* 2. The 20-class model: restore all but fc8, then train. */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(-1, 224, 224, 3));
    pst_output y = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    pst_net_opts o = pst_net_defaults();
    o.num_classes = 20;
    pst_output logits = pst_net_vgg16(g, x, &o);
    pst_node *xe = pst_sparse_softmax_cross_entropy_with_logits(g, logits, y, NULL);
    pst_output loss = pst_reduce_mean(g, pst_out(xe, 0), 0, NULL, 0, "loss");
    pst_optimizer_opts opt = pst_optimizer_defaults(PST_OPT_SGD, 1e-3f);
    pst_node *train = pst_optimizer_minimize(g, &opt, loss, 0, NULL, pst_out(NULL, 0), NULL);
    if (train == NULL) return fail("build", pst_graph_status(g));
    pst_output *restore;
    const char *exclude[] = {"vgg_16/fc8", NULL};
    int n = pst_get_variables_to_restore(g, NULL, exclude, &restore);
    pst_session *s = pst_session_new(g, NULL, &st);
    if (pst_session_run_target(s, pst_global_variables_initializer(g), &st) < 0) return fail("init", &st);
    /* The init function: assign the restored layers from the checkpoint. */
    pst_saver *init_fn = pst_saver_new(g, &(pst_saver_opts){.n_vars = n, .vars = restore}, &st);
    if (pst_saver_restore(init_fn, s, prefix, &st) < 0) return fail("restore", &st);
    printf("restored %d variables; vgg_16/fc8 starts fresh\n", n);
    pst_tensor *images = pst_tensor_new_zeros(PST_FLOAT, pst_shape_4d(2, 224, 224, 3), NULL);
    pst_tensor *labels = pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){4, 19});
    pst_feed f[2] = {{x, images}, {y, labels}};
    pst_tensor *l = NULL;
    if (pst_session_run(s, f, 2, &loss, 1, &train, 1, &l, &st) < 0) return fail("train", &st);
    printf("one fine-tuning step on 2 images: loss %.4f\n", pst_tensor_f32(l)[0]);
    pst_tensor_unref(l);
    pst_tensor_unref(images);
    pst_tensor_unref(labels);
    free(restore);
    pst_saver_free(init_fn);
    pst_session_free(s);
    pst_graph_free(g);
    return 0;
}
