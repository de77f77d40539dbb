/* dist: pstrain-worker in a cluster (see dist.h). */
#include "dist.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "cluster.h"
#include "dataset.h"
#include "device.h"
#include "idx.h"
#include "model.h"
#include "op.h"
#include "ops.h"
#include "parallel.h"
#include "saver.h"
#include "task.h"
#include "train_loop.h"
#include "replica_setter.h"
#include "fashion_mnist.h"
#include "file.h"
#include "clock.h"

int pst_worker_is_distributed(const pst_train_flags *f) {
    const char *tf = getenv("TF_CONFIG");
    return f->cluster != NULL || (tf && tf[0]);
}

/* Places the ops of one name scope on another device (model parallelism), everything else by
 * the replica device setter. */
typedef struct placer {
    pst_replica_setter *rs;
    char scope[256];
    char device[PST_DEVICE_MAX];
} placer;

static void place(void *ctx, const pst_node *node, const char *requested, char *out) {
    placer *p = ctx;
    pst_replica_setter_fn(p->rs, node, requested, out);
    size_t l = strlen(p->scope);
    if (l && strncmp(node->name, p->scope, l) == 0 && node->name[l] == '/' &&
        !(node->op->flags & PST_OP_VARIABLE) && strncmp(out, "/job:ps", 7) != 0)
        snprintf(out, PST_DEVICE_MAX, "%s", p->device);
}

/* The PS tasks that hold at least one global variable of g, and each variable's task. */
typedef struct ps_vars {
    int n_ps;
    int *count;      /* variables per PS */
    char ***names;   /* names per PS */
} ps_vars;

static int collect_ps_vars(pst_graph *g, int n_ps, ps_vars *pv, pst_status *st) {
    pv->n_ps = n_ps;
    pv->count = calloc((size_t)n_ps, sizeof *pv->count);
    pv->names = calloc((size_t)n_ps, sizeof *pv->names);
    int n = 0;
    const pst_output *vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    for (int i = 0; i < n; i++) {
        pst_device_name d;
        if (pst_device_parse(vars[i].node->device, &d, st) < 0) return st->code;
        if (strcmp(d.job, "ps") != 0 || d.task < 0 || d.task >= n_ps)
            return pst_status_set(st, PST_E_INVALID, "variable '%s' is placed on '%s', not on a PS "
                                  "of the cluster", vars[i].node->name, vars[i].node->device);
        int k = d.task;
        pv->names[k] = realloc(pv->names[k], (size_t)(pv->count[k] + 1) * sizeof *pv->names[k]);
        pv->names[k][pv->count[k]++] = vars[i].node->name;
    }
    return 0;
}

static void ps_vars_free(ps_vars *pv) {
    for (int k = 0; k < pv->n_ps; k++) free(pv->names[k]);
    free(pv->names);
    free(pv->count);
}

static void ps_device(int k, char *buf, size_t len) { snprintf(buf, len, "/job:ps/task:%d", k); }

/* How many of this run's variables are initialized on their PS; *missing names one that is
 * not (a static buffer). Negative on error (an unreachable PS). */
static int count_ready(pst_task *t, const ps_vars *pv, int *total, char *missing, size_t mlen,
                       pst_status *st) {
    int ready = 0;
    *total = 0;
    missing[0] = 0;
    for (int k = 0; k < pv->n_ps; k++) {
        if (pv->count[k] == 0) continue;
        char dev[64];
        ps_device(k, dev, sizeof dev);
        char **names = NULL;
        int *init = NULL;
        int n = pst_task_list_variables(t, dev, &names, &init, NULL, st);
        if (n < 0) return n;
        for (int j = 0; j < pv->count[k]; j++) {
            int ok = 0;
            for (int i = 0; i < n; i++)
                if (init[i] && strcmp(names[i], pv->names[k][j]) == 0) ok = 1;
            ready += ok;
            if (!ok && !missing[0]) snprintf(missing, mlen, "%s on %s", pv->names[k][j], dev);
        }
        *total += pv->count[k];
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        free(init);
    }
    return ready;
}

/* ---- checkpoints: every PS writes its shard, the chief merges ---- */

typedef struct save_job {
    pst_task *t;
    char dev[64];
    char prefix[4300];
    int shard, n;
    pst_status st;
    pthread_t th;
} save_job;

static void *save_thread(void *arg) {
    save_job *j = arg;
    pst_task_save_remote(j->t, j->dev, j->prefix, j->shard, j->n, &j->st);
    return NULL;
}

typedef struct dist_saver_ctx {
    pst_task *t;
    const ps_vars *pv;
} dist_saver_ctx;

static int dist_write(void *ctx, const char *prefix, pst_status *st) {
    dist_saver_ctx *c = ctx;
    int n = 0;
    for (int k = 0; k < c->pv->n_ps; k++) n += c->pv->count[k] > 0;
    save_job *jobs = calloc((size_t)n + 1, sizeof *jobs);
    const char **shards = calloc((size_t)n + 1, sizeof *shards);
    int i = 0;
    for (int k = 0; k < c->pv->n_ps; k++) {
        if (c->pv->count[k] == 0) continue;
        save_job *j = &jobs[i];
        j->t = c->t;
        ps_device(k, j->dev, sizeof j->dev);
        snprintf(j->prefix, sizeof j->prefix, "%s_temp_shard%d", prefix, i);
        j->shard = i;
        j->n = n;
        shards[i] = j->prefix;
        pthread_create(&j->th, NULL, save_thread, j); /* all PS write in parallel */
        i++;
    }
    int rc = 0;
    for (i = 0; i < n; i++) {
        pthread_join(jobs[i].th, NULL);
        if (jobs[i].st.code && !rc)
            rc = pst_status_set(st, jobs[i].st.code, "saving on %s: %s", jobs[i].dev,
                                jobs[i].st.msg);
    }
    if (rc == 0) rc = pst_bundle_merge(n, shards, prefix, st);
    free(shards);
    free(jobs);
    return rc;
}

/* ---- the worker ---- */

typedef struct dist {
    const pst_train_flags *f;
    const char *net_name;
    pst_cluster *c;
    int index, n_workers, n_ps, chief;
    pst_task *t;
    model m;
    placer pl;
    ps_vars pv;
    pst_dist_run *init, *train, *eval;
    pst_saver *saver;
    dist_saver_ctx sctx;
} dist;

static int save_ckpt(dist *d, int64_t step, pst_status *st) {
    char path[4096], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", d->f->checkpoint_dir);
    int rc = pst_saver_save(d->saver, NULL, path, step, prefix, sizeof prefix, st);
    if (rc == 0 && !d->f->quiet) printf("saved %s (every PS wrote its shard)\n", prefix);
    fflush(stdout);
    return rc;
}

/* One evaluation batch through the registered partitions. */
static int dist_eval(void *ctx, const pst_feed *feeds, int n, pst_tensor **out, pst_status *st) {
    return pst_dist_run_step(((dist *)ctx)->eval, feeds, n, out, st);
}

static int run_eval(dist *d, const pst_dataset *ds, double *acc, pst_status *st) {
    return pst_worker_accuracy(&d->m, ds, dist_eval, d, acc, st);
}

/* Chief: restore the latest checkpoint, or keep what the PS already hold, or initialize. */
static int chief_prepare(dist *d, int64_t *first_step, pst_status *st) {
    const pst_train_flags *f = d->f;
    *first_step = 0;
    if (f->checkpoint_dir) {
        if (pst_file_make_dirs(f->checkpoint_dir, st) < 0) return st->code;
        char latest[4096], warn[2048];
        int lr = pst_latest_checkpoint(f->checkpoint_dir, f->start_fresh, latest, sizeof latest, warn,
                                       sizeof warn, st);
        if (lr < 0) return lr;
        if (warn[0]) fprintf(stderr, "pstrain-worker: warning: %s\n", warn);
        if (lr == 0) {
            for (int k = 0; k < d->n_ps; k++) {
                if (d->pv.count[k] == 0) continue;
                char dev[64];
                ps_device(k, dev, sizeof dev);
                int n = 0;
                if (pst_task_restore_remote(d->t, dev, latest, &n, st) < 0) return st->code;
            }
            printf("restored %s onto %d PS\n", latest, d->n_ps);
            return 1;
        }
    }
    int total = 0;
    char missing[512];
    int ready = count_ready(d->t, &d->pv, &total, missing, sizeof missing, st);
    if (ready < 0) return ready;
    if (ready == total && total > 0) {
        printf("the PS already hold every variable: continuing from them\n");
        return 1;
    }
    return pst_dist_run_step(d->init, NULL, 0, NULL, st);
}

/* Non-chief: wait until every variable is initialized on its PS. */
static int wait_ready(dist *d, pst_status *st) {
    double start = pst_clock_now(), last = 0;
    for (;;) {
        int total = 0;
        char missing[512];
        int ready = count_ready(d->t, &d->pv, &total, missing, sizeof missing, st);
        if (ready < 0) return ready;
        if (ready == total) return 0;
        double el = pst_clock_now() - start;
        if (el * 1000 > (double)d->f->ready_timeout_ms)
            return pst_status_set(st, PST_E_DEADLINE, "the model was not ready after %lld ms: "
                                  "%d of %d variables uninitialized, e.g. %s (is the chief, "
                                  "worker 0, running?)", (long long)d->f->ready_timeout_ms,
                                  total - ready, total, missing);
        if (el - last >= 2 || last == 0) {
            fprintf(stderr, "%s: waiting for the chief to initialize the model (%d of %d "
                    "variables ready; waiting for %s)\n", pst_task_device(d->t), ready, total,
                    missing);
            last = el > 0 ? el : 1e-9;
        }
        usleep(100 * 1000);
    }
}

static void say_done_all(dist *d, int failed, const char *reason) {
    const char *jobs[2] = {"ps", "worker"};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < pst_cluster_num_tasks(d->c, jobs[j]); k++) {
            if (j == 1 && (!d->chief || k == d->index)) continue; /* the chief ends servers */
            char dev[64];
            snprintf(dev, sizeof dev, "/job:%s/task:%d", jobs[j], k);
            pst_status ignore = {0};
            pst_task_say_done(d->t, dev, failed, reason, &ignore);
        }
}

/* The distributed trainer the training loop drives: a step runs the registered partitions (the
 * PS apply its gradients) and reports the global step the PS hold, which the other workers move
 * too; only the chief evaluates and saves (every PS writes its shard). */
typedef struct dist_trainer {
    dist *d;
    pst_dataset_iter *it;
    const pst_dataset *val;
} dist_trainer;

static int dist_step(void *ctx, float *loss, int64_t *global_step, pst_status *st) {
    dist_trainer *t = ctx;
    dist *d = t->d;
    pst_tensor *x = NULL, *y = NULL;
    int r = pst_dataset_next(t->it, &x, &y, st);
    if (r <= 0)
        return r < 0 ? r : pst_status_set(st, PST_E_OUT_OF_RANGE, "the training data ran out");
    pst_feed feeds[2] = {{d->m.images, x}, {d->m.labels, y}};
    pst_tensor *out[2] = {0};
    int rc = pst_dist_run_step(d->train, feeds, 2, out, st);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    if (rc < 0) return rc;
    *loss = pst_tensor_f32(out[0])[0];
    *global_step = pst_tensor_i64(out[1])[0] + 1; /* read before this step's increment */
    pst_tensor_unref(out[0]);
    pst_tensor_unref(out[1]);
    return 0;
}

static int dist_validate(void *ctx, double *acc, pst_status *st) {
    dist_trainer *t = ctx;
    return run_eval(t->d, t->val, acc, st);
}

static int dist_save(void *ctx, int64_t global_step, pst_status *st) {
    return save_ckpt(((dist_trainer *)ctx)->d, global_step, st);
}

static int train(dist *d, pst_status *st) {
    const pst_train_flags *f = d->f;
    pst_tensor *tr_x = NULL, *tr_y = NULL, *te_x = NULL, *te_y = NULL;
    pst_dataset *all = NULL, *val = NULL, *test = NULL, *mine = NULL;
    pst_dataset_iter *it = NULL;
    int rc = 0;
    if ((rc = pst_fashion_mnist_load_raw(f->data_dir, "train", &tr_x, &tr_y, st)) < 0 ||
        (rc = pst_fashion_mnist_load_raw(f->data_dir, "test", &te_x, &te_y, st)) < 0)
        goto out;
    all = pst_dataset_new(tr_x, tr_y, st);
    test = pst_dataset_new(te_x, te_y, st);
    if (!all || !test) {
        rc = st->code;
        goto out;
    }
    /* Each worker reads its own shard: training example i goes to worker i % workers. */
    if ((rc = pst_dataset_split_for_worker(all, f->validation, d->index, d->n_workers, &mine,
                                           &val, st)) < 0)
        goto out;
    int64_t first_step = 0;
    if (d->chief) {
        rc = chief_prepare(d, &first_step, st);
        if (rc < 0) goto out;
        rc = 0;
    } else if ((rc = wait_ready(d, st)) < 0) {
        goto out;
    }
    {
        /* Where the job stands: the global step as its PS holds it (a restored job resumes). */
        pst_tensor *gs = pst_task_pull_variable(d->t, d->m.global_step.node->device,
                                                d->m.global_step.node->name, st);
        if (!gs) {
            rc = st->code;
            goto out;
        }
        first_step = pst_tensor_i64(gs)[0];
        pst_tensor_unref(gs);
        if (first_step > 0) printf("%s: resuming at global step %lld\n", pst_task_device(d->t),
                                   (long long)first_step);
    }
    pst_dataset_iter_opts io = {.batch = f->batch,
                                .shuffle_buffer = f->no_shuffle ? 0 : pst_dataset_size(mine),
                                .seed = (uint64_t)f->seed + (uint64_t)d->index,
                                .repeat = -1, .prefetch = 2, .drop_remainder = 1};
    if (!(it = pst_dataset_iter_new(mine, &io, st))) {
        rc = st->code;
        goto out;
    }
    printf("%s: %s %s training, %lld examples in this worker's shard, batch %d, %s lr %g, "
           "until global step %lld\n", pst_task_device(d->t), d->net_name, f->sync,
           (long long)pst_dataset_size(mine), f->batch, f->optimizer, f->lr, (long long)f->steps);
    fflush(stdout);
    dist_trainer tr = {.d = d, .it = it, .val = val};
    pst_train_ops ops = {.step = dist_step,
                         .evaluate = d->chief && pst_dataset_size(val) > 0 ? dist_validate : NULL,
                         .save = d->chief && d->saver ? dist_save : NULL};
    /* The chief saves at the end even without a step of its own: a checkpoint restored onto
     * another number of PS is rewritten in this cluster's layout. */
    pst_train_opts o = {.first_step = first_step, .steps = f->steps, .batch_size = f->batch,
                        .save_every_steps = f->save_every_steps,
                        .save_every_secs = (double)f->save_every_secs, .always_save_at_end = 1,
                        .eval_every = f->eval_every, .task = pst_task_device(d->t),
                        .quiet = f->quiet, .log_every_secs = 2};
    pst_train_stats stats;
    if ((rc = pst_train_run(&ops, &tr, &o, &stats, st)) < 0) goto out;
    double acc = 0;
    if ((rc = run_eval(d, test, &acc, st)) < 0) goto out;
    printf("test_accuracy=%.4f\n", acc);
out:
    pst_dataset_iter_free(it);
    pst_dataset_free(mine);
    pst_dataset_free(all);
    pst_dataset_free(val);
    pst_dataset_free(test);
    pst_tensor_unref(tr_x);
    pst_tensor_unref(tr_y);
    pst_tensor_unref(te_x);
    pst_tensor_unref(te_y);
    return rc;
}

static void print_status(dist *d) {
    const char *jobs[2] = {"ps", "worker"};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < pst_cluster_num_tasks(d->c, jobs[j]); k++) {
            char dev[64];
            snprintf(dev, sizeof dev, "/job:%s/task:%d", jobs[j], k);
            pst_status st = {0};
            char *s = pst_task_status_text(d->t, dev, &st);
            if (s) {
                fputs(s, stdout);
                free(s);
            } else {
                printf("%s: %s\n", dev, st.msg);
            }
        }
    fflush(stdout);
}

int pst_worker_run_distributed(const pst_train_flags *f, const pst_net_def *net) {
    dist d = {.f = f, .net_name = net->name};
    pst_status st = {0};
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    openblas_set_num_threads(1);
    pst_parallel_set_threads(f->threads);
    if (f->inter_op_threads > 0) pst_session_set_default_inter_op_threads(f->inter_op_threads);
    d.index = f->task;
    if (f->cluster) {
        d.c = pst_cluster_load(f->cluster, &st);
    } else {
        char type[64];
        int index = -1;
        d.c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
        if (d.c && !f->task_given) {
            if (strcmp(type, "worker") != 0) {
                pst_status_set(&st, PST_E_INVALID, "TF_CONFIG names task type '%s'; "
                               "pstrain-worker runs 'worker' tasks", type);
                goto out;
            }
            d.index = index;
        }
    }
    if (!d.c) goto out;
    if (pst_cluster_check_task(d.c, "worker", d.index, &st) < 0) goto out;
    d.n_workers = pst_cluster_num_tasks(d.c, "worker");
    d.n_ps = pst_cluster_num_tasks(d.c, "ps");
    d.chief = d.index == 0;
    if (d.n_ps == 0) {
        pst_status_set(&st, PST_E_INVALID, "the cluster has no \"ps\" job: variables need a PS");
        goto out;
    }
    pst_task_opts to = {.cluster = d.c, .job = "worker", .index = d.index,
                        .connect_timeout_ms = f->connect_timeout_ms,
                        .recv_timeout_ms = f->recv_timeout_ms, .expected_workers = 1,
                        .quiet = f->quiet};
    if (!(d.t = pst_task_new(&to, &st))) goto out;
    if (f->serve_only) {
        /* Runs what other workers place here until the chief says the job is done. */
        printf("%s: serving partitions for other workers\n", pst_task_device(d.t));
        fflush(stdout);
        pst_status ws = {0};
        pst_task_wait_shutdown(d.t, 0, &ws);
        say_done_all(&d, 0, NULL);
        rc = 0;
        goto out;
    }
    char wdev[64];
    snprintf(wdev, sizeof wdev, "/job:worker/task:%d", d.index);
    d.pl.rs = pst_replica_setter_new(d.n_ps, wdev,
                                     strcmp(f->placement, "greedy") == 0 ? PST_PLACE_GREEDY
                                                                         : PST_PLACE_ROUND_ROBIN,
                                     &st);
    if (!d.pl.rs) goto out;
    if (f->layer_device) {
        const char *eq = strchr(f->layer_device, '=');
        if (!eq || eq == f->layer_device) {
            pst_status_set(&st, PST_E_INVALID, "--layer-device: '%s' is not SCOPE=DEVICE",
                           f->layer_device);
            goto out;
        }
        snprintf(d.pl.scope, sizeof d.pl.scope, "%.*s", (int)(eq - f->layer_device),
                 f->layer_device);
        if (pst_device_canonical(eq + 1, d.pl.device, sizeof d.pl.device, &st) < 0) goto out;
        if (!pst_cluster_address_of_device(d.c, d.pl.device)) {
            pst_status_set(&st, PST_E_INVALID, "--layer-device: no task %s in the cluster",
                           d.pl.device);
            goto out;
        }
    }
    pst_train_flags mf = *f;
    int sync = strcmp(f->sync, "sync") == 0;
    mf.replicas_to_aggregate = sync ? (f->replicas_to_aggregate > 0 ? f->replicas_to_aggregate
                                                                    : d.n_workers)
                                    : 0;
    if (sync && mf.replicas_to_aggregate > d.n_workers) {
        pst_status_set(&st, PST_E_INVALID, "--replicas-to-aggregate %d: the cluster has only %d "
                       "workers", mf.replicas_to_aggregate, d.n_workers);
        goto out;
    }
    mf.sync_total = sync ? d.n_workers : 0;
    if (mf.partition_min_bytes > 0 && mf.partition_max_parts <= 0) mf.partition_max_parts = d.n_ps;
    if (pst_worker_build_model(&mf, net, &d.m, place, &d.pl, &st) < 0) goto out;
    if (collect_ps_vars(d.m.g, d.n_ps, &d.pv, &st) < 0) goto out;
    pst_output efetch = d.m.correct;
    pst_output tfetch[2] = {d.m.loss, pst_variable_value(d.m.global_step)};
    if (!(d.init = pst_dist_run_new(d.t, d.m.g, 0, NULL, 1, &d.m.init, &st))) goto out;
    if (!(d.train = pst_dist_run_new(d.t, d.m.g, 2, tfetch, 1, &d.m.train_op, &st))) goto out;
    if (!(d.eval = pst_dist_run_new(d.t, d.m.g, 1, &efetch, 0, NULL, &st))) goto out;
    if (d.chief && f->checkpoint_dir) {
        d.sctx = (dist_saver_ctx){.t = d.t, .pv = &d.pv};
        pst_saver_opts so = {.max_to_keep = f->max_to_keep, .write_meta = 1,
                             .write_fn = dist_write, .write_ctx = &d.sctx};
        if (!(d.saver = pst_saver_new(d.m.g, &so, &st))) goto out;
    }
    rc = train(&d, &st) < 0 ? 1 : 0;
    if (rc == 0 && f->ps_status) print_status(&d);
    say_done_all(&d, rc, rc ? st.msg : NULL);
out:
    if (rc) fprintf(stderr, "pstrain-worker: %s\n", st.msg[0] ? st.msg : "failed");
    pst_saver_free(d.saver);
    pst_dist_run_free(d.eval);
    pst_dist_run_free(d.train);
    pst_dist_run_free(d.init);
    if (d.pv.count) ps_vars_free(&d.pv);
    pst_graph_free(d.m.g);
    pst_replica_setter_free(d.pl.rs);
    pst_task_free(d.t);
    pst_cluster_free(d.c);
    return rc;
}
