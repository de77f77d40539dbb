/* model: the trainer's graph (see model.h). */
#include "model.h"

#include <string.h>

#include "layers.h"
#include "losses.h"
#include "lr_schedule.h"
#include "ops.h"
#include "optimizer.h"

/* Nearest-neighbour upsampling and channel tiling for nets that want bigger colour inputs. */
static pst_output adapt_input(pst_graph *g, pst_output x, int h, int w, int c, const pst_net_def *net) {
    if (net->height == h && net->width == w && net->channels == c) return x;
    int fy = net->height / h, fx = net->width / w;
    int64_t r1[6] = {-1, h, 1, w, 1, c}, mult[6] = {1, 1, fy, 1, fx, net->channels / c};
    int64_t r2[4] = {-1, net->height, net->width, net->channels};
    pst_output y = pst_reshape(g, x, 6, r1, NULL);
    y = pst_tile(g, y, 6, mult, NULL);
    return pst_reshape(g, y, 4, r2, "resized_input");
}

int pst_worker_build_model(const pst_train_flags *f, const pst_net_def *net, model *m,
                           pst_device_fn device_fn, void *device_ctx, pst_status *st) {
    pst_graph *g = m->g = pst_graph_new();
    if (device_fn) pst_graph_set_device_fn(g, device_fn, device_ctx);
    if (f->partition_min_bytes > 0)
        pst_layers_set_partitioner(g, f->partition_min_bytes,
                                   f->partition_max_parts > 0 ? f->partition_max_parts : 1 << 20);
    pst_graph_set_seed(g, f->seed);
    /* Images arrive as bytes and are scaled to [0, 1] in the graph: a quarter of the memory. */
    m->images = pst_placeholder(g, "images", PST_UINT8, pst_shape_4d(-1, 28, 28, 1));
    pst_output scaled = pst_mul(g, pst_cast(g, m->images, PST_FLOAT, NULL),
                                pst_const_f32(g, 1.0f / 255.0f, NULL), "scaled_images");
    m->labels = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    m->is_training = pst_placeholder_with_default(g, pst_const_scalar(g, PST_BOOL, 1, NULL),
                                                  pst_shape_scalar(), "is_training");
    pst_net_opts no = pst_net_defaults();
    no.is_training = m->is_training;
    no.keep_prob = f->keep_prob;
    no.weight_decay = f->weight_decay;
    pst_output logits = net->build(g, adapt_input(g, scaled, 28, 28, 1, net), &no);
    pst_loss_sparse_softmax_cross_entropy(g, logits, m->labels, pst_out(NULL, 0), NULL);
    pst_output total = pst_get_total_loss(g, 1, "total_loss");
    int kind = pst_optimizer_kind_parse(f->optimizer);
    if (kind < 0)
        return pst_status_set(st, PST_E_INVALID,
                              "--optimizer: unknown optimizer '%s' (adam, sgd, momentum, adagrad, "
                              "rmsprop)", f->optimizer);
    pst_optimizer_opts oo = pst_optimizer_defaults((pst_opt_kind)kind, f->lr);
    oo.sync_replicas = f->replicas_to_aggregate;
    oo.sync_total = f->sync_total;
    oo.sync_last_step = f->steps;
    oo.transform_grads = m->transform_grads;
    oo.transform_ctx = m->transform_ctx;
    oo.sync_elastic = f->sync_elastic;
    oo.sync_member = f->sync_member;
    oo.sync_incarnation = f->sync_incarnation;
    oo.sync_lr_scale_base = f->lr_scale_base;
    m->global_step = pst_train_global_step(g);
    pst_lr_schedule lr = pst_train_flags_lr(f);
    oo.lr_tensor = pst_lr_schedule_op(g, &lr, pst_variable_value(m->global_step));
    m->loss = pst_create_train_op(g, total, &oo, m->global_step, 0, &m->train_op);
    pst_output pred = pst_argmax(g, logits, 1, PST_INT64, "predictions");
    m->correct = pst_reduce_sum(g, pst_cast(g, pst_equal(g, pred, m->labels, NULL), PST_FLOAT, NULL),
                                0, NULL, 0, "correct");
    m->init = pst_global_variables_initializer(g);
    if (device_fn) pst_graph_set_device_fn(g, NULL, NULL);
    if (pst_graph_error(g))
        return pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    return 0;
}

int pst_worker_build_serving_model(const pst_train_flags *f, const pst_net_def *net,
                                   serving_model *m, pst_status *st) {
    pst_graph *g = m->g = pst_graph_new();
    pst_graph_set_seed(g, f->seed);
    m->images = pst_placeholder(g, "images", PST_UINT8, pst_shape_4d(-1, 28, 28, 1));
    pst_output scaled = pst_mul(g, pst_cast(g, m->images, PST_FLOAT, NULL),
                                pst_const_f32(g, 1.0f / 255.0f, NULL), "scaled_images");
    pst_output is_training = pst_placeholder_with_default(
        g, pst_const_scalar(g, PST_BOOL, 0, NULL), pst_shape_scalar(), "is_training");
    pst_net_opts no = pst_net_defaults();
    no.is_training = is_training;
    no.keep_prob = f->keep_prob;
    pst_output logits = net->build(g, adapt_input(g, scaled, 28, 28, 1, net), &no);
    m->probabilities = pst_softmax(g, logits, "probabilities");
    m->classes = pst_identity(g, pst_argmax(g, logits, 1, PST_INT64, NULL), "classes");
    if (pst_graph_error(g))
        return pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    return 0;
}

int pst_worker_build_model_on_ps(pst_train_flags *f, const pst_net_def *net, int num_ps, model *m,
                                 pst_replica_setter **rs, pst_status *st) {
    *rs = NULL;
    if (num_ps > 0) {
        pst_place_strategy strategy =
            strcmp(f->placement, "greedy") == 0 ? PST_PLACE_GREEDY : PST_PLACE_ROUND_ROBIN;
        if ((*rs = pst_replica_setter_new(num_ps, "/job:worker/task:0", strategy, st)) == NULL)
            return st->code;
        if (f->partition_min_bytes > 0 && f->partition_max_parts <= 0)
            f->partition_max_parts = num_ps;
    }
    return pst_worker_build_model(f, net, m, *rs ? pst_replica_setter_fn : NULL, *rs, st);
}

int pst_worker_accuracy(model *m, const pst_dataset *ds, pst_worker_eval_fn run, void *ctx,
                        double *acc, pst_status *st) {
    pst_dataset_iter_opts o = {.batch = 1000};
    pst_dataset_iter *it = pst_dataset_iter_new(ds, &o, st);
    if (it == NULL) return st->code;
    pst_tensor *no = pst_tensor_scalar_bool(0), *x, *y;
    double correct = 0;
    int64_t total = 0;
    int rc;
    while ((rc = pst_dataset_next(it, &x, &y, st)) == 1) {
        pst_feed f[3] = {{m->images, x}, {m->labels, y}, {m->is_training, no}};
        pst_tensor *c = NULL;
        rc = run(ctx, f, 3, &c, st);
        total += y->n;
        pst_tensor_unref(x);
        pst_tensor_unref(y);
        if (rc < 0) break;
        correct += pst_tensor_f32(c)[0];
        pst_tensor_unref(c);
    }
    pst_tensor_unref(no);
    pst_dataset_iter_free(it);
    *acc = total ? correct / (double)total : 0;
    return rc < 0 ? rc : 0;
}
