/*
 * pstrain-worker: trains a model-zoo network on Fashion-MNIST in one process and prints the
 * test-set accuracy as `test_accuracy=0.XXXX`. See --help.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memtune.h"
#include "dataset.h"
#include "flags.h"
#include "model.h"
#include "dist.h"
#include "eval.h"
#include <cjson/cJSON.h>
#include "allreduce.h"
#include "transport_mpi.h"
#include "cluster_slurm.h"
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

/* The single-process trainer the training loop drives: a step is a session run fed from the
 * dataset iterator; evaluation and checkpoints go through the same session. */
typedef struct trainer {
    const pst_train_flags *f;
    model *m;
    pst_session *s;
    pst_dataset_iter *it;
    const pst_dataset *val;
    pst_saver *saver;
    FILE *replay;            /* --replay-batches: the batches, one line per step */
    const pst_dataset *all;  /* the whole training file, which the replayed ids index */
} trainer;

/* The next replayed batch: the examples whose indices line i lists. */
static int replay_batch(trainer *t, pst_tensor **x, pst_tensor **y, pst_status *st) {
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, t->replay) <= 0) {
        free(line);
        return pst_status_set(st, PST_E_OUT_OF_RANGE, "--replay-batches %s: no line for this "
                              "step", t->f->replay);
    }
    int64_t n = 0, *ids = malloc((strlen(line) / 2 + 1) * sizeof *ids);
    int rc = ids ? 0 : pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    for (char *p = line, *end; rc == 0 && *p && *p != '\n'; p = end) {
        ids[n++] = strtoll(p, &end, 10);
        if (end == p) rc = pst_status_set(st, PST_E_INVALID, "--replay-batches %s: '%.40s' is "
                                          "not a list of example indices", t->f->replay, line);
    }
    if (rc == 0 && n == 0)
        rc = pst_status_set(st, PST_E_INVALID, "--replay-batches %s: an empty line",
                            t->f->replay);
    if (rc == 0) rc = pst_dataset_gather(t->all, ids, n, x, y, st);
    free(ids);
    free(line);
    return rc < 0 ? rc : 1;
}

static int local_step(void *ctx, float *loss, int64_t *global_step, pst_status *st) {
    (void)global_step; /* one process: the loop's count is the global step */
    trainer *t = ctx;
    pst_tensor *x = NULL, *y = NULL;
    int rc = t->replay ? replay_batch(t, &x, &y, st) : pst_dataset_next(t->it, &x, &y, st);
    if (rc == 0) return pst_status_set(st, PST_E_OUT_OF_RANGE, "the training data ran out");
    if (rc < 0) return rc;
    pst_feed feeds[2] = {{t->m->images, x}, {t->m->labels, y}};
    pst_tensor *lt = NULL;
    rc = pst_session_run(t->s, feeds, 2, &t->m->loss, 1, &t->m->train_op, 1, &lt, st);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    if (rc < 0) return rc;
    *loss = (float)pst_tensor_get_f64(lt, 0);
    pst_tensor_unref(lt);
    return 0;
}

/* One evaluation batch through the session. */
static int session_eval(void *ctx, const pst_feed *feeds, int n, pst_tensor **out,
                        pst_status *st) {
    trainer *t = ctx;
    return pst_session_run(t->s, feeds, n, &t->m->correct, 1, NULL, 0, out, st);
}

static int accuracy(trainer *t, const pst_dataset *ds, double *acc, pst_status *st) {
    return pst_worker_accuracy(t->m, ds, session_eval, t, acc, st);
}

static int validate(void *ctx, double *acc, pst_status *st) {
    trainer *t = ctx;
    return accuracy(t, t->val, acc, st);
}

static int save(void *ctx, int64_t step, pst_status *st) {
    trainer *t = ctx;
    char path[4096], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", t->f->checkpoint_dir);
    int rc = pst_saver_save(t->saver, t->s, path, step, prefix, sizeof prefix, st);
    if (rc == 0 && !t->f->quiet) printf("saved %s\n", prefix);
    return rc;
}

/* The parsed flags live for the whole run; what parsing allocated (a job file's settings) is
 * freed at exit, whichever path returns. */
static pst_train_flags flags;
static void free_flags(void) { pst_train_flags_destroy(&flags); }

/* Whether TF_CONFIG's task is {"type": "evaluator", ...} (TF runs its evaluator outside the
 * cluster, so no cluster entry names it). */
static int tf_config_is_evaluator(void) {
    const char *tf = getenv("TF_CONFIG");
    cJSON *j = tf && tf[0] ? cJSON_Parse(tf) : NULL;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(task, "type");
    int is = cJSON_IsString(type) && strcmp(type->valuestring, "evaluator") == 0;
    cJSON_Delete(j);
    return is;
}

int main(int argc, char **argv) {
    pst_memtune_process(); /* large buffers stay in the heap (base/memtune.h) */
    pst_ops_init(); /* the built-in op families, before any graph */
    pst_status sst = {0}; /* --cluster-from slurm becomes TF_CONFIG (cluster_slurm.h) */
    if (pst_cluster_slurm_main(&argc, argv, "worker", &sst) < 0) {
        fprintf(stderr, "pstrain-worker: %s\n", sst.msg);
        return 2;
    }
    pst_train_flags f;
    char err[PST_TRAIN_USAGE_MAX];
    int prc = pst_train_flags_parse(argc, argv, &flags, err, sizeof err);
    atexit(free_flags);
    f = flags;
    if (prc != 0) {
        fputs(err, prc > 0 ? stdout : stderr);
        return prc > 0 ? 0 : 2;
    }
    if (f.join) {
        /* Joining by hand: a worker id and the job's settings from the coordination service,
         * then the flags again as a launched worker's: --job SETTINGS [the command line]
         * --coordinator ADDR --task K [--bind 127.0.0.1:0]. */
        static char job_path[64], task[16];
        int index = -1;
        pst_status js = {0};
        if (pst_worker_join(&f, job_path, sizeof job_path, &index, &js) < 0) {
            fprintf(stderr, "pstrain-worker: %s\n", js.msg);
            return 1;
        }
        snprintf(task, sizeof task, "%d", index);
        static char *args[512];
        int n = 0;
        args[n++] = argv[0];
        args[n++] = "--job";
        args[n++] = job_path;
        for (int i = 1; i < argc && n < 500; i++) args[n++] = argv[i];
        args[n++] = "--coordinator";
        args[n++] = (char *)f.join;
        args[n++] = "--task";
        args[n++] = task;
        if (!f.bind) {
            args[n++] = "--bind";
            args[n++] = "127.0.0.1:0";
        }
        args[n] = NULL;
        pst_train_flags_destroy(&flags);
        prc = pst_train_flags_parse(n, args, &flags, err, sizeof err);
        unlink(job_path);
        f = flags;
        if (prc != 0) {
            fprintf(stderr, "pstrain-worker: the job's settings: %s", err);
            return 2;
        }
        printf("pstrain-worker: joined the job at %s as worker %d\n", f.join, index);
        fflush(stdout);
    }
    const pst_net_def *net = pst_net_lookup(f.model);
    if (net == NULL) {
        fprintf(stderr, "pstrain-worker: --model: unknown model '%s' (softmax, mlp, simple_cnn, "
                        "cnn5, lenet5, vgg16, bag_of_ids)\n", f.model);
        return 2;
    }
    if (tf_config_is_evaluator()) {
        /* TF's evaluator task: outside the cluster, it evaluates each new checkpoint */
        pst_status est = {0};
        pst_eval_opts eo = {.checkpoint_dir = f.checkpoint_dir, .events_dir = f.events_dir,
                            .last_step = f.steps};
        int n = pst_worker_eval_loop(&f, &eo, stdout, &est);
        if (n < 0) fprintf(stderr, "pstrain-worker: evaluator: %s\n", est.msg);
        pst_train_flags_destroy(&flags);
        return n < 0 ? 1 : 0;
    }
    if (f.meta && !pst_worker_is_distributed(&f)) {
        fprintf(stderr, "pstrain-worker: --meta trains a TensorFlow user's graph in a cluster "
                "(--cluster, TF_CONFIG or pstrain launch); in one process use pstrain train "
                "--meta\n");
        pst_train_flags_destroy(&flags);
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
    /* --mode allreduce: this process is one rank's replica; gradients are averaged over the
     * ranks (allreduce.h), rank 0 restores or initializes and broadcasts, evaluates and saves. */
    int ar = strcmp(f.sync, "allreduce") == 0, rank = 0, size = 1;
    if (ar) {
        pst_allreduce_opts ao = {.fusion_bytes = f.fusion_bytes > 0 ? f.fusion_bytes : -1,
                                 .cycle_ms = f.cycle_ms > 0 ? f.cycle_ms : -1,
                                 .timeout_ms = f.recv_timeout_ms, .quiet = f.quiet};
        if (pst_allreduce_start(&ao, &rank, &size, &st) < 0) goto fail;
        char who[64];
        snprintf(who, sizeof who, "pstrain-worker: rank %d of %d", rank, size);
        pst_mpi_report_termination(who);
        m.transform_grads = pst_allreduce_transform;
        if (rank != 0) f.quiet = 1;
    }
    if (pst_fashion_mnist_load_format(f.data_dir, "train", f.data_format, &tr_x, &tr_y, &st) < 0 ||
        pst_fashion_mnist_load_format(f.data_dir, "test", f.data_format, &te_x, &te_y, &st) < 0)
        goto fail;
    all = pst_dataset_new(tr_x, tr_y, &st);
    test = pst_dataset_new(te_x, te_y, &st);
    if (all == NULL || test == NULL) goto fail;
    /* Rank r of N trains on examples r, r + N, ... of the training split. */
    if (pst_dataset_split_for_worker(all, f.validation, rank, size, &train, &val, &st) < 0)
        goto fail;
    if (pst_worker_build_model(&f, net, &m, NULL, NULL, &st) < 0) goto fail;
    s = pst_session_new(m.g, NULL, &st);
    int64_t first_step = 0;
    if (f.checkpoint_dir && rank == 0) {
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
    if (ar) {
        /* Every rank starts from rank 0's values (restored or initialized). */
        if (pst_allreduce_broadcast_vars(pst_session_vars(s), 0, &st) < 0) goto fail;
        pst_tensor *gs = pst_session_run1(s, pst_variable_value(pst_train_global_step(m.g)), &st);
        if (gs == NULL) goto fail;
        first_step = pst_tensor_i64(gs)[0];
        pst_tensor_unref(gs);
        if (rank == 0)
            printf("pstrain-worker: allreduce over %d ranks (fusion buffer %lld bytes, cycle "
                   "%g ms), batch %d per rank\n", size, (long long)f.fusion_bytes, f.cycle_ms,
                   f.batch);
    }
    pst_dataset_iter_opts io = {.batch = f.batch, .shuffle_buffer = f.no_shuffle ? 0 : pst_dataset_size(train),
                                .seed = (uint64_t)f.seed + (uint64_t)rank, .repeat = -1, .prefetch = 2,
                                .drop_remainder = 1};
    it = pst_dataset_iter_new(train, &io, &st);
    if (it == NULL) goto fail;
    char sched[128];
    if (rank == 0)
        printf("pstrain-worker: %s (%s), %lld training examples, batch %d, %s lr %g%s, %lld steps\n",
               net->name, net->description, (long long)pst_dataset_size(train), f.batch,
               f.optimizer, f.lr, pst_train_flags_lr_schedule(&f, sched, sizeof sched),
               (long long)f.steps);
    fflush(stdout);
    pst_train_ops ops = {.step = local_step,
                         .evaluate = rank == 0 && pst_dataset_size(val) > 0 ? validate : NULL,
                         .save = saver ? save : NULL};
    trainer t = {.f = &f, .m = &m, .s = s, .it = it, .val = val, .saver = saver, .all = all};
    if (f.replay && !(t.replay = fopen(f.replay, "r"))) {
        pst_status_set(&st, PST_E_IO, "--replay-batches: cannot read %s", f.replay);
        goto fail;
    }
    pst_train_opts lo = {.first_step = first_step, .steps = f.steps, .batch_size = f.batch,
                         .save_every_steps = f.save_every_steps,
                         .save_every_secs = (double)f.save_every_secs,
                         .eval_every = f.eval_every, .quiet = f.quiet};
    pst_train_stats stats;
    int trc = pst_train_run(&ops, &t, &lo, &stats, &st);
    if (t.replay) fclose(t.replay);
    if (trc < 0) goto fail;
    double acc;
    if (rank == 0) { /* the replicas are equal: one evaluates */
        if (accuracy(&t, test, &acc, &st) < 0) goto fail;
        printf("test_accuracy=%.4f\n", acc);
    }
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
    if (ar) {
        pst_allreduce_stop();
        /* On an error MPI stays up: mpirun ends the ranks that would wait for this one. */
        if (rc == 0) pst_mpi_finalize();
    }
    return rc;
}
