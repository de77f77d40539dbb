/*
 * pstrain-worker: trains a model-zoo network on Fashion-MNIST in one process and prints the
 * test-set accuracy as `test_accuracy=0.XXXX`. See --help.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "flags.h"
#include "model.h"
#include "dist.h"
#include "idx.h"
#include "init.h"
#include "losses.h"
#include "nets.h"
#include "optimizer.h"
#include "parallel.h"
#include "bundle.h"
#include "saver.h"
#include "ops.h"
#include "session.h"
#include "train_loop.h"
#include "fashion_mnist.h"
#include "file.h"
#include "clock.h"

typedef struct feeder {
    model *m;
    pst_dataset_iter *it;
    pst_tensor *x, *y;
} feeder;

static int next_batch(void *ctx, int64_t step, pst_feed *feeds, int *n, pst_status *st) {
    (void)step;
    feeder *fd = ctx;
    pst_tensor_unref(fd->x);
    pst_tensor_unref(fd->y);
    fd->x = fd->y = NULL;
    int rc = pst_dataset_next(fd->it, &fd->x, &fd->y, st);
    if (rc == 0) return pst_status_set(st, PST_E_OUT_OF_RANGE, "the training data ran out");
    if (rc < 0) return rc;
    feeds[0] = (pst_feed){fd->m->images, fd->x};
    feeds[1] = (pst_feed){fd->m->labels, fd->y};
    *n = 2;
    return 0;
}

/* One evaluation batch through the session. */
static int session_eval(void *ctx, const pst_feed *feeds, int n, pst_tensor **out,
                        pst_status *st) {
    model *m = ((void **)ctx)[1];
    return pst_session_run(((void **)ctx)[0], feeds, n, &m->correct, 1, NULL, 0, out, st);
}

static int accuracy(pst_session *s, model *m, const pst_dataset *ds, double *acc, pst_status *st) {
    void *ctx[2] = {s, m};
    return pst_worker_accuracy(m, ds, session_eval, ctx, acc, st);
}

typedef struct hook_ctx {
    model *m;
    const pst_dataset *val;
    const pst_train_flags *f;
    pst_saver *saver;
    double last_save;        /* when the last checkpoint was written */
    int64_t last_saved_step; /* its step (-1: none yet) */
} hook_ctx;

static int save(hook_ctx *h, pst_session *s, int64_t step, pst_status *st) {
    char path[4096], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", h->f->checkpoint_dir);
    int rc = pst_saver_save(h->saver, s, path, step, prefix, sizeof prefix, st);
    if (rc == 0 && !h->f->quiet) printf("saved %s\n", prefix);
    return rc;
}

/* Every step: validation every --eval-every steps, a checkpoint every --save-every-steps. */
static int step_hook(void *ctx, pst_session *s, int64_t step, pst_status *st) {
    hook_ctx *h = ctx;
    if (h->val && h->f->eval_every > 0 && step % h->f->eval_every == 0) {
        double acc;
        int rc = accuracy(s, h->m, h->val, &acc, st);
        if (rc < 0) return rc;
        printf("step %lld: validation_accuracy=%.4f\n", (long long)step, acc);
    }
    double now = pst_clock_now();
    if (h->saver && ((h->f->save_every_steps > 0 && step % h->f->save_every_steps == 0) ||
                     (h->f->save_every_secs > 0 && now - h->last_save >= (double)h->f->save_every_secs))) {
        h->last_save = now;
        h->last_saved_step = step;
        return save(h, s, step, st);
    }
    return 0;
}

int main(int argc, char **argv) {
    pst_ops_init(); /* the built-in op families, before any graph */
    pst_train_flags f;
    char err[2048];
    int prc = pst_train_flags_parse(argc, argv, &f, err, sizeof err);
    if (prc != 0) {
        fputs(err, prc > 0 ? stdout : stderr);
        return prc > 0 ? 0 : 2;
    }
    const pst_net_def *net = pst_net_lookup(f.model);
    if (net == NULL) {
        fprintf(stderr, "pstrain-worker: --model: unknown model '%s' (softmax, mlp, simple_cnn, "
                        "cnn5, lenet5, vgg16)\n", f.model);
        return 2;
    }
    if (pst_worker_is_distributed(&f)) return pst_worker_run_distributed(&f, net);
    /* Kernels split work across pstrain's pool; BLAS calls inside them run single-threaded. */
    openblas_set_num_threads(1);
    pst_parallel_set_threads(f.threads);
    if (f.inter_op_threads > 0) pst_session_set_default_inter_op_threads(f.inter_op_threads);
    pst_status st = {0};
    pst_tensor *tr_x = NULL, *tr_y = NULL, *te_x = NULL, *te_y = NULL;
    model m = {0};
    pst_session *s = NULL;
    pst_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
    pst_dataset_iter *it = NULL;
    pst_saver *saver = NULL;
    int rc = 1;
    if (pst_fashion_mnist_load_raw(f.data_dir, "train", &tr_x, &tr_y, &st) < 0 ||
        pst_fashion_mnist_load_raw(f.data_dir, "test", &te_x, &te_y, &st) < 0)
        goto fail;
    all = pst_dataset_new(tr_x, tr_y, &st);
    test = pst_dataset_new(te_x, te_y, &st);
    if (all == NULL || test == NULL) goto fail;
    int64_t n_val = f.validation < pst_dataset_size(all) ? f.validation : 0;
    if (pst_dataset_split(all, pst_dataset_size(all) - n_val, &train, &val, &st) < 0) goto fail;
    if (pst_worker_build_model(&f, net, &m, NULL, NULL, &st) < 0) goto fail;
    s = pst_session_new(m.g, NULL, &st);
    int64_t first_step = 0;
    if (f.checkpoint_dir) {
        if (pst_file_make_dirs(f.checkpoint_dir, &st) < 0) goto fail;
        pst_saver_opts so = {.max_to_keep = f.max_to_keep, .write_meta = 1};
        if ((saver = pst_saver_new(m.g, &so, &st)) == NULL) goto fail;
        char latest[4096], warn[2048];
        int lr = pst_latest_checkpoint(f.checkpoint_dir, f.start_fresh, latest, sizeof latest, warn, sizeof warn, &st);
        if (lr < 0) goto fail;
        if (warn[0]) fprintf(stderr, "pstrain-worker: warning: %s\n", warn);
        if (lr == 0) {
            if (pst_saver_restore(saver, s, latest, &st) < 0) goto fail;
            pst_tensor *gs = pst_session_run1(s, pst_variable_value(pst_train_global_step(m.g)), &st);
            if (gs == NULL) goto fail;
            first_step = pst_tensor_i64(gs)[0];
            pst_tensor_unref(gs);
            printf("restored %s (global step %lld)\n", latest, (long long)first_step);
        }
    }
    if (first_step == 0 && pst_session_run_target(s, m.init, &st) < 0) goto fail;
    pst_dataset_iter_opts io = {.batch = f.batch, .shuffle_buffer = f.no_shuffle ? 0 : pst_dataset_size(train),
                                .seed = (uint64_t)f.seed, .repeat = -1, .prefetch = 2,
                                .drop_remainder = 1};
    it = pst_dataset_iter_new(train, &io, &st);
    if (it == NULL) goto fail;
    printf("pstrain-worker: %s (%s), %lld training examples, batch %d, %s lr %g, %lld steps\n",
           net->name, net->description, (long long)pst_dataset_size(train), f.batch, f.optimizer,
           f.lr, (long long)f.steps);
    fflush(stdout);
    feeder fd = {.m = &m, .it = it};
    hook_ctx hc = {.m = &m, .val = n_val > 0 ? val : NULL, .f = &f, .saver = saver,
                   .last_save = pst_clock_now(), .last_saved_step = -1};
    pst_train_loop_opts lo = {.first_step = first_step, .steps = f.steps, .train_op = m.train_op,
                              .loss = m.loss, .next = next_batch, .ctx = &fd,
                              .batch_size = f.batch, .quiet = f.quiet, .hook = step_hook,
                              .hook_ctx = &hc, .hook_every = 1};
    pst_train_stats stats;
    int lrc = pst_train_loop(s, &lo, &stats, &st);
    pst_tensor_unref(fd.x);
    pst_tensor_unref(fd.y);
    if (lrc < 0) goto fail;
    if (saver && stats.steps > 0 && hc.last_saved_step != f.steps &&
        save(&hc, s, f.steps, &st) < 0)
        goto fail;
    double acc;
    if (accuracy(s, &m, test, &acc, &st) < 0) goto fail;
    printf("trained %lld steps in %.1f s (%.0f examples/s), final loss %.4f\n",
           (long long)stats.steps, stats.seconds, stats.examples_per_sec, stats.last_loss);
    printf("test_accuracy=%.4f\n", acc);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "pstrain-worker: %s\n", st.msg);
    pst_dataset_iter_free(it);
    pst_saver_free(saver);
    pst_dataset_free(all);
    pst_dataset_free(train);
    pst_dataset_free(val);
    pst_dataset_free(test);
    pst_session_free(s);
    pst_graph_free(m.g);
    pst_tensor_unref(tr_x);
    pst_tensor_unref(tr_y);
    pst_tensor_unref(te_x);
    pst_tensor_unref(te_y);
    return rc;
}
