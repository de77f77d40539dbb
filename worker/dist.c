/* dist: pstrain-worker in a cluster (see dist.h). */
#include "dist.h"
#include "lr_schedule.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allreduce.h"
#include "cluster.h"
#include "dataset.h"
#include "device.h"
#include "dist_ops.h"
#include "dist_run.h"
#include "dist_save.h"
#include "hybrid.h"
#include "idx.h"
#include "imported_model.h"
#include "model.h"
#include "op.h"
#include "ops.h"
#include "parallel.h"
#include "ps_vars.h"
#include "readiness.h"
#include "task.h"
#include "task_client.h"
#include "task_status.h"
#include "train_loop.h"
#include "replica_setter.h"
#include "fashion_mnist.h"
#include "file.h"
#include "clock.h"
#include "coord_agent.h"
#include "events.h"
#include "member.h"
#include "mpi_job.h"
#include "member_data.h"
#include "security.h"
#include "transport_mpi.h"
#include <stdatomic.h>

int pst_worker_is_distributed(const pst_train_flags *f) {
    const char *tf = getenv("TF_CONFIG");
    if (strcmp(f->sync, "allreduce") == 0) return 0; /* one replica per rank: main.c */
    if (strcmp(f->sync, "hybrid") == 0) return 1;    /* PS and workers (it needs MPI) */
    return f->cluster != NULL || f->coordinator != NULL || (tf && tf[0]) ||
           strcmp(f->transport, "mpi") == 0;
}

/* A PS rank of an MPI job run by pstrain-worker: serves as pstrain-ps does until every worker
 * is done. */
static int serve_ps_rank(const pst_train_flags *f, const pst_cluster *c, int index,
                         pst_status *st) {
    /* Save and Restore may name files in the job's --checkpoint-dir (task.h) */
    if (f->checkpoint_dir && pst_file_make_dirs(f->checkpoint_dir, st) < 0) return st->code;
    pst_task_opts o = {.cluster = c, .job = "ps", .index = index, .transport = "mpi",
                       .quiet = f->quiet, .recv_timeout_ms = f->recv_timeout_ms,
                       .connect_timeout_ms = f->connect_timeout_ms,
                       .checkpoint_dir = f->checkpoint_dir};
    pst_task *t = pst_task_new(&o, st);
    if (!t) return st->code;
    int rc = pst_task_wait_shutdown(t, 0, st);
    pst_task_free(t);
    return rc;
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

/* ---- the worker ---- */

typedef struct dist {
    const pst_train_flags *f;
    const char *net_name;
    pst_cluster *c;
    int index, n_workers, n_ps, chief;
    pst_task *t;
    model m;
    pst_imported_model *imp; /* --meta: a TensorFlow user's graph (imported_model.h) */
    int hybrid;              /* --mode hybrid: m trains, layout initializes and saves (hybrid.h) */
    model layout;
    placer pl;
    model twin;               /* sync: the same model built asynchronously, written as .meta */
    placer twin_pl;
    pst_ps_vars pv;
    pst_dist_run *init, *train, *eval;
    pst_dist_run *enter;      /* elastic sync: the round tag alone (entering the rounds) */
    pst_dist_save *saver;
    pst_member member;        /* launched: the task, its agent and the job's cluster */
    int left;                 /* scale-down: left the job before its end */
    int elastic_sync;         /* launched sync job: rounds of members (fetches the round tag) */
    pst_lr_schedule lr;       /* the flags' learning-rate schedule (TensorBoard's rate) */
    pst_member_data *md;      /* launched: the examples follow the membership */
    FILE *example_log;        /* --example-log DIR: this worker's file there */
    pst_events_writer *events; /* the chief's TensorBoard events (--events-dir) */
    /* progress for the launcher's heartbeats (written by the step, read by the agent) */
    _Atomic int64_t global_step, local_steps;
    _Atomic double loss;
    double started;
    double stop_seen, stop_polled; /* when the launcher's stop came; when PS 0 was last asked */
    char last_ckpt[512];
    pthread_mutex_t ckpt_mu;
    /* --meta of a graph reading its own input: the next batch, fetched before each step (a
     * step never starts without its input, so the input's end is a clean end) */
    pst_feed in[PST_MAX_FEEDS];
    int n_in, in_ready, in_done;
    pst_status in_err;
} dist;

/* The heartbeat's progress: the global step, loss and this worker's examples/s. */
static void report_progress(void *ctx, pst_coord_progress *p, const char **state) {
    dist *d = ctx;
    p->global_step = atomic_load(&d->global_step);
    p->total_steps = d->f->steps;
    p->local_steps = atomic_load(&d->local_steps);
    p->loss = atomic_load(&d->loss);
    double el = pst_clock_now() - d->started;
    p->examples_per_sec = d->started > 0 && el > 0 ? (double)p->local_steps * d->f->batch / el : 0;
    pthread_mutex_lock(&d->ckpt_mu);
    static __thread char ck[512];
    snprintf(ck, sizeof ck, "%s", d->last_ckpt);
    pthread_mutex_unlock(&d->ckpt_mu);
    p->last_checkpoint = ck;
    *state = d->started > 0 ? "running" : "starting";
}

static int save_ckpt(dist *d, int64_t step, pst_status *st) {
    char prefix[4096];
    /* hybrid: the PS get the chief's dense replicas first */
    int rc = d->hybrid ? pst_worker_hybrid_push(d->t, &d->m, d->layout.g, st) : 0;
    if (rc == 0) rc = pst_dist_save_write(d->saver, step, prefix, sizeof prefix, st);
    if (rc == 0 && !d->f->quiet) printf("saved %s (every PS wrote its shard)\n", prefix);
    fflush(stdout);
    if (rc == 0) {
        pthread_mutex_lock(&d->ckpt_mu);
        snprintf(d->last_ckpt, sizeof d->last_ckpt, "%.500s", prefix);
        pthread_mutex_unlock(&d->ckpt_mu);
        if (d->events) {
            pst_status es = {0};
            pst_events_add_session_log(d->events, PST_EVENTS_CHECKPOINT, step, prefix, &es);
            pst_events_flush(d->events, &es);
        }
    }
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
    *first_step = 0;
    pst_readiness_result res;
    if (pst_readiness_prepare(d->t, &d->pv, d->f->checkpoint_dir, d->f->start_fresh, d->init, &res,
                              st) < 0)
        return st->code;
    if (res.warning[0]) fprintf(stderr, "pstrain-worker: warning: %s\n", res.warning);
    if (res.how == PST_READY_RESTORED) printf("restored %s onto %d PS\n", res.checkpoint, d->n_ps);
    if (res.how == PST_READY_KEPT) printf("the PS already hold every variable: continuing from them\n");
    return res.how == PST_READY_INITIALIZED ? 0 : 1;
}

static void ready_progress(void *ctx, int ready, int total, const char *missing) {
    dist *d = ctx;
    fprintf(stderr, "%s: waiting for the chief to initialize the model (%d of %d variables ready; "
            "waiting for %s)\n", pst_task_device(d->t), ready, total, missing);
}

/* Non-chief: wait until every variable is initialized on its PS. */
static int wait_ready(dist *d, pst_status *st) {
    return pst_readiness_wait(d->t, &d->pv, d->f->ready_timeout_ms, ready_progress, d, st);
}

static void say_done_all(dist *d, int failed, const char *reason) {
    const char *jobs[2] = {"ps", "worker"};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < pst_cluster_num_tasks(d->c, jobs[j]); k++) {
            if (j == 1 && (!d->chief || k == d->index)) continue; /* the chief ends servers */
            /* MPI workers end on their own; a rank that finished answers nothing (its call
             * would wait for its deadline). */
            if (j == 1 && strcmp(d->f->transport, "mpi") == 0) continue;
            char dev[64];
            snprintf(dev, sizeof dev, "/job:%s/task:%d", jobs[j], k);
            pst_status ignore = {0};
            pst_task_client_say_done(d->t, dev, failed, reason, &ignore);
        }
}

/* The distributed trainer the training loop drives: a step runs the registered partitions (the
 * PS apply its gradients) and reports the global step the PS hold, which the other workers move
 * too; only the chief evaluates and saves (every PS writes its shard). */
typedef struct dist_trainer {
    dist *d;
    pst_dataset_iter *it; /* not launched: this worker's fixed shard */
    const pst_dataset *val;
    int64_t first_step;
} dist_trainer;

/* The prefetched input batch, released. */
static void drop_input(dist *d) {
    for (int i = 0; i < d->n_in; i++) pst_tensor_unref(d->in[i].value);
    d->n_in = d->in_ready = 0;
}

/* Fetches the next batch of the graph's own input: 1 when the input is exhausted (its epochs
 * are done, its queues closed), else 0 (an error is kept for the step to report). */
static int next_input(dist *d) {
    if (d->in_ready || d->in_done || d->in_err.code) return d->in_done;
    pst_status st = {0};
    if (pst_imported_model_next_input(d->imp, d->in, PST_MAX_FEEDS, &d->n_in, &st) < 0) {
        if (st.code == PST_E_OUT_OF_RANGE) d->in_done = 1;
        else d->in_err = st;
        return d->in_done;
    }
    d->in_ready = 1;
    return 0;
}

/* A synchronous step the PS refused as past the job's last step, or could no longer complete
 * because the other replicas finished training (both PST_E_OUT_OF_RANGE): a worker whose last
 * step began as the global step reached the end. When the job's global step has reached --steps
 * this worker ends as well, its last gradients not applied (as a backup worker's late ones are
 * not); otherwise the error stands. 1 when it ended (st cleared, *global_step the job's). */
static int sync_job_ended(dist *d, int64_t *global_step, pst_status *st) {
    if (strcmp(d->f->sync, "sync") != 0 || st->code != PST_E_OUT_OF_RANGE) return 0;
    pst_status ps = {0};
    pst_tensor *gs = pst_task_client_pull_variable(d->t, d->m.global_step.node->device,
                                                   d->m.global_step.node->name, &ps);
    if (!gs) return 0;
    int64_t g = (int64_t)pst_tensor_get_f64(gs, 0);
    pst_tensor_unref(gs);
    if (g < d->f->steps) return 0;
    printf("%s: the other replicas finished training at global step %lld; this worker's last "
           "gradients were not applied (%s)\n", pst_task_device(d->t), (long long)g, st->msg);
    fflush(stdout);
    pst_status_clear(st);
    pst_task_resume_steps(d->t); /* the failed step aborted this task's receives */
    *global_step = g;
    return 1;
}

static int dist_step(void *ctx, float *loss, int64_t *global_step, pst_status *st) {
    dist_trainer *t = ctx;
    dist *d = t->d;
    pst_tensor *x = NULL, *y = NULL;
    int batch = d->f->batch;
    int64_t *ids = NULL, data_epoch = 0;
    int rank = 0, n = 1;
    if (d->md || (d->imp && d->member.agent)) {
        /* Launched: this worker's share follows the membership the coordination service
         * reports (member_data.h); a fixed global batch divides among the members. */
        char members[1024];
        pst_coord_agent_members(d->member.agent, members, sizeof members);
        pst_member_data_rank(members, d->index, &rank, &n);
        data_epoch = pst_coord_agent_epoch(d->member.agent);
        if (d->md) pst_member_data_set(d->md, data_epoch, rank, n);
        if (d->f->global_batch > 0) batch = (d->f->global_batch + n - 1) / n;
        if (!(ids = malloc((size_t)batch * sizeof *ids)))
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a batch");
        int r = d->imp ? 0 : pst_member_data_next(d->md, batch, &x, &y, ids, st);
        if (r < 0) {
            free(ids);
            return r;
        }
    } else if (!d->imp) {
        int r = pst_dataset_next(t->it, &x, &y, st);
        if (r <= 0)
            return r < 0 ? r : pst_status_set(st, PST_E_OUT_OF_RANGE, "the training data ran out");
    }
    pst_feed feeds[PST_MAX_FEEDS] = {{d->m.images, x}, {d->m.labels, y}};
    int n_feeds = 2;
    if (d->imp) {
        /* A user's graph: its feeds' records in file order; this worker's share (rank of n)
         * of each global batch of n * batch records, stepping on with its own steps. */
        int64_t *rows = malloc((size_t)batch * sizeof *rows);
        if (!d->member.agent) {
            rank = d->index;
            n = d->n_workers;
        }
        int64_t base = (atomic_load(&d->local_steps) * n + rank) * batch;
        for (int i = 0; rows && i < batch; i++) rows[i] = base + i;
        int r = rows ? pst_imported_model_feeds(d->imp, rows, batch, feeds, st)
                     : pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a batch");
        int64_t records = pst_imported_model_records(d->imp);
        for (int i = 0; ids && rows && i < batch; i++) ids[i] = records ? rows[i] % records : 0;
        free(rows);
        n_feeds = d->imp->n_feeds;
        if (r == 0 && d->imp->n_inputs > 0) {
            /* the graph's own input: the batch next_input fetched (dist_should_stop) */
            if (!d->in_ready) next_input(d);
            if (d->in_err.code) r = pst_status_set(st, d->in_err.code, "%s", d->in_err.msg);
            else if (d->in_done)
                r = pst_status_set(st, PST_E_OUT_OF_RANGE, "the input is exhausted");
            for (int i = 0; r == 0 && i < d->n_in; i++) feeds[n_feeds++] = d->in[i];
        }
        if (r < 0) {
            free(ids);
            return r;
        }
    }
    pst_tensor *out[3] = {0};
    int rc = pst_dist_run_step(d->train, feeds, n_feeds, out, st);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    drop_input(d);
    if (rc < 0) {
        free(ids);
        if (!sync_job_ended(d, global_step, st)) return rc;
        *loss = (float)atomic_load(&d->loss); /* its last step's */
        return 0;
    }
    *loss = (float)pst_tensor_get_f64(out[0], 0);
    /* read before this step's increment (int64, or int32 in some TF users' graphs) */
    *global_step = (int64_t)pst_tensor_get_f64(out[1], 0) + 1;
    /* hybrid: the workers step together (their allreduce), each moving the PS's global step:
     * every worker counts the rounds alike, so all stop after the same one */
    if (d->hybrid)
        *global_step = t->first_step + (atomic_load(&d->local_steps) + 1) * d->n_workers;
    if (d->example_log) {
        /* "round members epoch rank count ids...": the round (sync: its tag; async: the
         * global step read) and its members (async: 0), then the membership the examples
         * were assigned by (member_data.h) */
        int64_t round = *global_step - 1, members = 0;
        if (out[2]) {
            round = pst_tensor_i64(out[2])[0];
            members = pst_tensor_i64(out[2])[4];
        }
        fprintf(d->example_log, "%lld %lld %lld %d %d", (long long)round, (long long)members,
                (long long)data_epoch, rank, n);
        for (int i = 0; i < batch; i++) fprintf(d->example_log, " %lld", (long long)ids[i]);
        fputc('\n', d->example_log);
        fflush(d->example_log);
    }
    free(ids);
    pst_tensor_unref(out[0]);
    pst_tensor_unref(out[1]);
    pst_tensor_unref(out[2]);
    if (d->started == 0) d->started = pst_clock_now();
    int64_t local = atomic_fetch_add(&d->local_steps, 1) + 1;
    if (local == 1) {
        /* When this worker's first gradient was applied (bench/: time from pstrain scale). */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("%s: first gradient applied at global step %lld (unix time %.3f)\n",
               pst_task_device(d->t), (long long)*global_step,
               (double)now.tv_sec + (double)now.tv_nsec / 1e9);
        fflush(stdout);
    }
    atomic_store(&d->global_step, *global_step);
    atomic_store(&d->loss, (double)*loss);
    /* TensorBoard: the chief's loss and rates every 10 of its steps. */
    if (d->events && local % 10 == 0) {
        double el = pst_clock_now() - d->started;
        pst_status es = {0};
        pst_events_add_scalar(d->events, "loss", *loss, *global_step, &es);
        if (el > 0) {
            pst_events_add_scalar(d->events, "examples_per_sec",
                                  (float)((double)local * d->f->batch / el), *global_step, &es);
            pst_events_add_scalar(d->events, "global_steps_per_sec",
                                  (float)((double)(*global_step - t->first_step) / el),
                                  *global_step, &es);
        }
        pst_events_add_scalar(d->events, "learning_rate",
                              (float)pst_lr_schedule_at(&d->lr, *global_step), *global_step, &es);
        if (local % 100 == 0) pst_events_flush(d->events, &es);
    }
    return 0;
}

/* The chief of an asynchronous job stops after the other workers: their last updates are
 * then in its final checkpoint. It asks PS 0 how many workers said they are done (at most every
 * 200 ms) and stops when all others have, or 10 s after the stop came. */
static int others_done(dist *d) {
    if (strcmp(d->f->sync, "sync") == 0 || d->n_workers < 2) return 1;
    double now = pst_clock_now();
    if (d->stop_seen == 0) d->stop_seen = now;
    if (now - d->stop_seen > 10) return 1;
    if (now - d->stop_polled < 0.2) return 0;
    d->stop_polled = now;
    if (d->member.agent) {
        /* Launched (workers come and go): the coordination service's running workers. */
        char members[1024];
        return pst_coord_agent_members(d->member.agent, members, sizeof members) <= 1;
    }
    pst_status st = {0};
    pst_task_status_report r;
    if (pst_task_client_report(d->t, "/job:ps/task:0", 0, &r, &st) < 0) return 1;
    int done = r.workers_done >= d->n_workers - 1;
    pst_task_status_report_destroy(&r);
    return done;
}

/* A launcher's stop (its heartbeat replies), or a newer incarnation took this worker's slot. */
static int dist_should_stop(void *ctx) {
    dist *d = ((dist_trainer *)ctx)->d;
    if (d->member.agent) {
        if (pst_coord_agent_superseded(d->member.agent)) return 1;
        /* Scale-down: this worker leaves after its current step (the chief never does). */
        if (!d->chief && pst_coord_agent_leave_requested(d->member.agent)) return 1;
        if (pst_coord_agent_stop_requested(d->member.agent) && (!d->chief || others_done(d)))
            return 1;
    }
    /* A graph reading its own input ends cleanly when the input is exhausted; the chief
     * after the other workers (their last updates in its final checkpoint; at most 10 s). */
    if (!d->imp || d->imp->n_inputs == 0 || !next_input(d)) return 0;
    while (d->chief && !others_done(d)) usleep(50000);
    return 1;
}

static int dist_validate(void *ctx, double *acc, pst_status *st) {
    dist_trainer *t = ctx;
    int rc = run_eval(t->d, t->val, acc, st);
    if (rc == 0 && t->d->events) {
        pst_status es = {0};
        pst_events_add_scalar(t->d->events, "validation_accuracy", (float)*acc,
                              atomic_load(&t->d->global_step), &es);
        pst_events_flush(t->d->events, &es);
    }
    return rc;
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
    double load_start = pst_clock_now();
    if (d->imp) goto data_ready; /* a user's graph: its --feed files, loaded with the graph */
    if ((rc = pst_fashion_mnist_load_format(f->data_dir, "train", f->data_format, &tr_x, &tr_y,
                                            st)) < 0 ||
        (rc = pst_fashion_mnist_load_format(f->data_dir, "test", f->data_format, &te_x, &te_y,
                                            st)) < 0)
        goto out;
    if (d->member.agent) /* bench/run_elastic_bench.sh leaves the data loading out */
        printf("%s: data loaded in %.3f s\n", pst_task_device(d->t), pst_clock_now() - load_start);
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
data_ready:;
    int64_t first_step = 0;
    if (d->chief) {
        rc = chief_prepare(d, &first_step, st);
        if (rc < 0) goto out;
        if (rc == 0 && d->imp) {
            /* Initialized afresh: start from the user's TF checkpoint where it holds a
             * variable (the chief reads it and pushes each value to its PS); the global step
             * comes last, which lets the other workers start. */
            int n = 0;
            int64_t step = 0;
            if (f->init_checkpoint &&
                (rc = pst_imported_model_push_checkpoint(d->imp, d->m.g, d->t, f->init_checkpoint,
                                                         &n, &step, st)) < 0)
                goto out;
            if ((rc = pst_imported_model_set_step(d->imp, d->t, d->m.g, step, st)) < 0) goto out;
            if (f->init_checkpoint)
                printf("started from %s (%d variables and global step %lld)\n",
                       f->init_checkpoint, n, (long long)step);
        }
        rc = 0;
    } else if ((rc = wait_ready(d, st)) < 0) {
        goto out;
    }
    if (d->hybrid) {
        /* This worker's dense replicas start from what the PS hold (initialized or restored). */
        if ((rc = pst_worker_hybrid_pull(d->t, &d->m, d->layout.g, st)) < 0) goto out;
        printf("%s: hybrid: partitioned variables and the global step on the PS, the dense "
               "ones replicated, their gradients averaged over %d workers\n",
               pst_task_device(d->t), d->n_workers);
    }
    {
        /* Where the job stands: the global step as its PS holds it (a restored job resumes). */
        pst_tensor *gs = pst_task_client_pull_variable(d->t, d->m.global_step.node->device,
                                                       d->m.global_step.node->name, st);
        if (!gs) {
            rc = st->code;
            goto out;
        }
        first_step = (int64_t)pst_tensor_get_f64(gs, 0);
        pst_tensor_unref(gs);
        if (first_step > 0)
            printf("%s: %s at global step %lld\n", pst_task_device(d->t),
                   d->chief ? "resuming" : "starting", (long long)first_step);
    }
    char input_note[1024] = "";
    if (d->imp && pst_imported_model_reads_input(d->imp, &d->m)) {
        /* The graph reads its own input: its input ops run here (this task's resources) */
        if ((rc = pst_imported_model_start_input(f, &d->m, d->imp, d->t, d->index, d->n_workers,
                                                 input_note, sizeof input_note, st)) < 0)
            goto out;
    } else if (d->imp && f->records) {
        rc = pst_status_set(st, PST_E_INVALID, "--records %s: %s's train op reads no input of "
                            "its own (no queue dequeue or tf.data iterator): give its "
                            "placeholders' data with --feed (job file: \"feeds\")", f->records,
                            f->meta);
        goto out;
    } else if (d->imp) {
        /* the feeds' records, shared out in dist_step */
    } else if (d->member.agent) {
        /* Launched: the whole training set, shared out by membership at every step. */
        pst_dataset_free(mine);
        pst_dataset_free(val);
        mine = val = NULL;
        if ((rc = pst_dataset_split_for_worker(all, f->validation, 0, 1, &mine, &val, st)) < 0)
            goto out;
        if (!(d->md = pst_member_data_new(mine, (uint64_t)f->seed, !f->no_shuffle, st))) {
            rc = st->code;
            goto out;
        }
        if (f->example_log) {
            char path[4096];
            snprintf(path, sizeof path, "%.4000s/worker%d-%016llx.txt", f->example_log, d->index,
                     (unsigned long long)pst_coord_agent_incarnation(d->member.agent));
            if (!(d->example_log = fopen(path, "w"))) {
                rc = pst_status_set(st, PST_E_IO, "--example-log: cannot write %s", path);
                goto out;
            }
        }
    } else {
        pst_dataset_iter_opts io = {.batch = f->batch,
                                    .shuffle_buffer = f->no_shuffle ? 0 : pst_dataset_size(mine),
                                    .seed = (uint64_t)f->seed + (uint64_t)d->index,
                                    .repeat = -1, .prefetch = 2, .drop_remainder = 1};
        if (!(it = pst_dataset_iter_new(mine, &io, st))) {
            rc = st->code;
            goto out;
        }
    }
    if (d->imp && input_note[0])
        printf("%s: training %s's '%s' (loss '%s') on the graph's own input (%s), until global "
               "step %lld\n", pst_task_device(d->t), f->meta, d->m.train_op->name,
               d->m.loss.node->name, input_note, (long long)f->steps);
    else if (d->imp)
        printf("%s: training %s's '%s' (loss '%s'), %lld records in its feeds shared by the "
               "workers, batch %d, until global step %lld\n", pst_task_device(d->t), f->meta,
               d->m.train_op->name, d->m.loss.node->name,
               (long long)pst_imported_model_records(d->imp), f->batch, (long long)f->steps);
    else {
        char sched[128];
        printf("%s: %s %s training, %lld examples in this worker's shard, batch %d, %s lr %g%s, "
               "until global step %lld\n", pst_task_device(d->t), d->net_name, f->sync,
               (long long)pst_dataset_size(mine), f->batch, f->optimizer, f->lr,
               pst_train_flags_lr_schedule(f, sched, sizeof sched), (long long)f->steps);
    }
    fflush(stdout);
    if (d->enter) {
        /* Elastic sync: enter the rounds in a step of its own (it waits for the next round
         * boundary), so the first training step reads the variables of the round it joins. */
        pst_tensor *tag = NULL;
        if ((rc = pst_dist_run_step(d->enter, NULL, 0, &tag, st)) < 0) goto out;
        printf("%s: entered synchronous round %lld with %lld members\n", pst_task_device(d->t),
               (long long)pst_tensor_i64(tag)[0], (long long)pst_tensor_i64(tag)[4]);
        fflush(stdout);
        pst_tensor_unref(tag);
    }
    dist_trainer tr = {.d = d, .it = it, .val = val, .first_step = first_step};
    atomic_store(&d->global_step, first_step);
    if (d->chief && f->events_dir) {
        /* One writer per directory: the chief's. START at the step training resumes from, so
         * TensorBoard drops the steps a restarted job redoes. */
        if (!(d->events = pst_events_writer_open(f->events_dir, NULL, st))) {
            rc = st->code;
            goto out;
        }
        pst_events_add_session_log(d->events, PST_EVENTS_START, first_step, NULL, st);
        pst_events_flush(d->events, st);
        pst_status_clear(st);
    }
    pst_train_ops ops = {.step = dist_step,
                         .should_stop = dist_should_stop,
                         .evaluate = d->chief && val && pst_dataset_size(val) > 0 ? dist_validate
                                                                                 : NULL,
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
    if (stats.stopped && d->member.agent && pst_coord_agent_superseded(d->member.agent)) {
        rc = pst_status_set(st, PST_E_ABORTED, "a newer incarnation of %s took its place",
                            pst_task_device(d->t));
        goto out;
    }
    if (stats.stopped && !d->chief && pst_coord_agent_leave_requested(d->member.agent) &&
        !pst_coord_agent_stop_requested(d->member.agent)) {
        /* Scale-down: this worker's last step is applied; it leaves the job (the PS forget
         * it, the coordination service frees its slot) while the others train on. */
        printf("%s: left the job at global step %lld after %lld steps of its own\n",
               pst_task_device(d->t), (long long)stats.global_step,
               (long long)atomic_load(&d->local_steps));
        d->left = 1;
        goto out;
    }
    if (d->imp) {
        /* the queue runners stopped (their queues closed, threads joined): an error one hit
         * (a file that cannot be read) is the job's */
        drop_input(d);
        if ((rc = pst_imported_model_stop_input(d->imp, st)) < 0) goto out;
    }
    if (d->in_done)
        printf("%s: input exhausted after %lld steps of its own, at global step %lld\n",
               pst_task_device(d->t), (long long)atomic_load(&d->local_steps),
               (long long)stats.global_step);
    else if (stats.stopped)
        printf("%s: stopped at global step %lld as asked\n", pst_task_device(d->t),
               (long long)stats.global_step);
    double acc = 0;
    if (d->imp) {
        /* no accuracy to measure in a user's graph: its last loss */
        if (atomic_load(&d->local_steps) > 0)
            printf("final_loss=%.6g\n", atomic_load(&d->loss));
        else /* the others reached the last global step before this worker's first step */
            printf("final_loss=none: this worker made no steps (the job reached global step "
                   "%lld first)\n", (long long)stats.global_step);
        if (d->events) {
            pst_status es = {0};
            pst_events_add_session_log(d->events, PST_EVENTS_STOP, stats.global_step, NULL, &es);
        }
        goto out;
    }
    if ((rc = run_eval(d, test, &acc, st)) < 0) goto out;
    printf("test_accuracy=%.4f\n", acc);
    if (d->events) {
        pst_status es = {0};
        pst_events_add_scalar(d->events, "test_accuracy", (float)acc, stats.global_step, &es);
        pst_events_add_session_log(d->events, PST_EVENTS_STOP, stats.global_step, NULL, &es);
    }
out:
    if (d->imp) {
        pst_status qs = {0};
        drop_input(d);
        pst_imported_model_stop_input(d->imp, &qs);
    }
    if (d->events) {
        pst_status es = {0};
        pst_events_writer_close(d->events, &es);
        d->events = NULL;
    }
    pst_dataset_iter_free(it);
    pst_member_data_free(d->md);
    d->md = NULL;
    if (d->example_log) fclose(d->example_log);
    d->example_log = NULL;
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
            pst_task_status_report r;
            char *s = NULL;
            if (pst_task_client_report(d->t, dev, 0, &r, &st) == 0) {
                s = pst_task_status_text(&r);
                pst_task_status_report_destroy(&r);
                if (!s) pst_status_set(&st, PST_E_EXHAUSTED, "out of memory for its status");
            }
            if (s) {
                fputs(s, stdout);
                free(s);
            } else {
                printf("%s: %s\n", dev, st.msg);
            }
        }
    fflush(stdout);
}

int pst_worker_join(const pst_train_flags *f, char *job_path, size_t len, int *index,
                    pst_status *st) {
    pst_security *sec = pst_security_new(&(pst_security_opts){.token_file = f->token_file,
                                                              .tls_dir = f->tls_dir,
                                                              .insecure = f->insecure,
                                                              .require_token = 1},
                                         st);
    if (!sec) return st->code;
    pst_coord_client *c = pst_coord_client_new(f->join, sec, st);
    char *json = NULL;
    int rc = c ? pst_coord_join(c, "worker", f->connect_timeout_ms, index, NULL, &json, st)
               : st->code;
    pst_coord_client_free(c);
    pst_security_free(sec);
    if (rc < 0) {
        pst_status_prefix(st, "--join: ");
        return rc;
    }
    if (!json[0]) {
        free(json);
        return pst_status_set(st, PST_E_INVALID, "--join: the coordination service at %s has no "
                              "job settings to give (not started by pstrain launch?)", f->join);
    }
    snprintf(job_path, len, "/tmp/pstrain-join-XXXXXX.json");
    int fd = mkstemps(job_path, 5); /* mode 0600 */
    size_t n = strlen(json);
    if (fd < 0 || write(fd, json, n) != (ssize_t)n) {
        rc = pst_status_set(st, PST_E_IO, "--join: cannot write the job's settings to %s",
                            job_path);
        if (fd >= 0) unlink(job_path);
    }
    if (fd >= 0) close(fd);
    free(json);
    return rc;
}

int pst_worker_run_distributed(const pst_train_flags *f, const pst_net_def *net) {
    dist d = {.f = f, .net_name = net->name};
    pst_security *sec = NULL;
    pst_status st = {0};
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    pst_dist_ops_init(); /* synchronous training builds the PstSync ops */
    openblas_set_num_threads(1);
    pst_parallel_set_threads(f->threads);
    if (f->inter_op_threads > 0) pst_session_set_default_inter_op_threads(f->inter_op_threads);
    d.index = f->task;
    pthread_mutex_init(&d.ckpt_mu, NULL);
    int mpi = strcmp(f->transport, "mpi") == 0, engine = 0;
    d.hybrid = strcmp(f->sync, "hybrid") == 0;
    d.lr = pst_train_flags_lr(f);
    if (d.hybrid && (!mpi || f->meta)) {
        pst_status_set(&st, PST_E_INVALID, "--mode hybrid needs --transport mpi (the workers "
                       "average their dense gradients with MPI_Allreduce)%s",
                       f->meta ? " and a model of pstrain's (not --meta)" : "");
        goto out;
    }
    if (mpi) {
        /* Every task is an MPI rank (mpi_job.h); MPI messages carry no token. */
        char job[64];
        int index = -1;
        int n_ps = f->mpi_ps > 0 ? f->mpi_ps : f->job_ps;
        if (!f->cluster && n_ps <= 0) {
            pst_status_set(&st, PST_E_INVALID, "--transport mpi needs --ps N (ranks 0..N-1 "
                           "are the PS) or --cluster FILE with \"mpi:RANK\" addresses");
            goto out;
        }
        if (!(d.c = pst_mpi_job_cluster(f->cluster, n_ps, job, sizeof job, &index, &st)))
            goto out;
        int rank = 0;
        pst_mpi_init(&rank, NULL, &st);
        char who[128];
        snprintf(who, sizeof who, "pstrain-worker: rank %d (/job:%s/task:%d)", rank, job, index);
        pst_mpi_report_termination(who);
        if (strcmp(job, "ps") == 0) {
            rc = serve_ps_rank(f, d.c, index, &st) < 0 ? 1 : 0;
            goto out;
        }
        d.index = index;
        if (d.hybrid) {
            /* The dense gradients' allreduce among the worker ranks (after the PS ranks). */
            if (f->cluster || n_ps <= 0) {
                pst_status_set(&st, PST_E_INVALID, "--mode hybrid needs --ps N (ranks 0..N-1 the "
                               "PS, the others the workers), not --cluster");
                goto out;
            }
            pst_allreduce_opts ao = {.fusion_bytes = f->fusion_bytes > 0 ? f->fusion_bytes : -1,
                                     .cycle_ms = f->cycle_ms > 0 ? f->cycle_ms : -1,
                                     .timeout_ms = f->recv_timeout_ms, .quiet = f->quiet,
                                     .first_rank = n_ps};
            if (pst_allreduce_start(&ao, NULL, NULL, &st) < 0) goto out;
            engine = 1;
        }
    } else if (pst_coord_agent_die_with_launcher(&st) < 0) {
        goto out;
    } else {
        char token[512] = "";
        if (f->token_stdin && pst_coord_agent_token_from_stdin(token, sizeof token, &st) < 0)
            goto out;
        sec = pst_security_new(&(pst_security_opts){.token_file = f->token_file,
                                                    .token = token[0] ? token : NULL,
                                                    .tls_dir = f->tls_dir,
                                                    .insecure = f->insecure,
                                                    .require_token = 1},
                               &st);
        memset(token, 0, sizeof token);
        if (!sec) goto out;
    }
    if (mpi) {
        /* the cluster is known */
    } else if (f->coordinator) {
        /* Started by pstrain launch: any port, the cluster from the launcher. */
        if (!f->bind) {
            pst_status_set(&st, PST_E_INVALID, "--coordinator needs --bind HOST:PORT");
            goto out;
        }
        pst_member_opts mo = {.task = {.job = "worker", .index = d.index,
                                       .connect_timeout_ms = f->connect_timeout_ms,
                                       .recv_timeout_ms = f->recv_timeout_ms,
                                       .expected_workers = 1, .quiet = f->quiet,
                                       .security = sec},
                              .bind = f->bind, .coordinator = f->coordinator,
                              .heartbeat_ms = f->heartbeat_ms, .progress = report_progress,
                              .progress_ctx = &d};
        if (pst_member_start(&mo, &d.member, &st) < 0) goto out;
        d.c = d.member.cluster;
        d.t = d.member.task;
    } else if (f->cluster) {
        d.c = pst_cluster_load_ex(f->cluster, f->port_file ? PST_CLUSTER_ALLOW_PORT0 : 0, &st);
    } else {
        char type[64];
        int index = -1;
        d.c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
        if (d.c && !f->task_given) {
            if (strcmp(type, "worker") != 0 && strcmp(type, "chief") != 0) {
                pst_status_set(&st, PST_E_INVALID, "TF_CONFIG names task type '%s'; "
                               "pstrain-worker runs 'worker' (or 'chief') tasks", type);
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
                        .quiet = f->quiet, .listen = f->listen, .security = sec,
                        .transport = mpi ? "mpi" : NULL};
    if (!d.t && !(d.t = pst_task_new(&to, &st))) goto out;
    if (f->port_file) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", pst_task_port(d.t));
        if (pst_file_write_atomic(f->port_file, line, (size_t)n, &st) < 0) goto out;
    }
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
    /* Launched sync jobs are elastic: each round averages its members' gradients (the job
     * file's worker count then only sets the backup workers and the LR scaling's reference). */
    d.elastic_sync = sync && d.member.agent;
    int n_sync = d.elastic_sync && f->job_workers > 0 ? f->job_workers : d.n_workers;
    mf.replicas_to_aggregate = sync ? (f->replicas_to_aggregate > 0 ? f->replicas_to_aggregate
                                                                    : n_sync)
                                    : 0;
    if (sync && mf.replicas_to_aggregate > n_sync) {
        pst_status_set(&st, PST_E_INVALID, "--replicas-to-aggregate %d: the cluster has only %d "
                       "workers", mf.replicas_to_aggregate, n_sync);
        goto out;
    }
    mf.sync_total = sync ? n_sync : 0;
    if (d.elastic_sync) {
        mf.sync_elastic = 1;
        mf.sync_member = d.index;
        mf.sync_incarnation = pst_coord_agent_incarnation(d.member.agent);
        mf.lr_scale_base = strcmp(f->lr_scaling, "linear") == 0 && f->global_batch == 0 ? n_sync : 0;
    }
    if (mf.partition_min_bytes > 0 && mf.partition_max_parts <= 0) mf.partition_max_parts = d.n_ps;
    if (f->meta) {
        if (!(d.imp = calloc(1, sizeof *d.imp))) {
            pst_status_set(&st, PST_E_EXHAUSTED, "out of memory");
            goto out;
        }
        if (pst_worker_build_imported_model(&mf, &d.m, d.imp, place, &d.pl, &st) < 0 ||
            pst_imported_model_load_feeds(&mf, &d.m, d.imp, &st) < 0)
            goto out;
        if (d.imp->added_step || d.imp->added_increment)
            printf("%s: %s\n", f->meta, d.imp->added_step
                                            ? "no global step in the graph: added one on a PS"
                                            : "the train op does not move the global step: "
                                              "added an increment");
    } else if (pst_worker_build_model(&mf, net, &d.m, place, &d.pl, &st) < 0) {
        goto out;
    }
    if (d.hybrid) {
        /* d.m as built is the layout; the training graph replaces it */
        d.layout = d.m;
        memset(&d.m, 0, sizeof d.m);
        d.m.transform_grads = pst_allreduce_transform;
        d.m.transform_ctx = &d; /* non-NULL: PS-held variables' gradients go to their PS */
        if (pst_worker_hybrid_build(&mf, net, d.layout.g, wdev, &d.m, &st) < 0) goto out;
    }
    model *lay = d.hybrid ? &d.layout : &d.m; /* what is initialized and saved */
    if (pst_ps_vars_collect(lay->g, d.n_ps, &d.pv, &st) < 0) goto out;
    pst_output efetch = d.m.correct;
    pst_output tfetch[3] = {d.m.loss, pst_variable_value(d.m.global_step), pst_out(NULL, 0)};
    if (d.elastic_sync) {
        pst_node *tag = pst_graph_find(d.m.g, "sync_local_step");
        if (!tag) {
            pst_status_set(&st, PST_E_INTERNAL, "the synchronous graph has no sync_local_step");
            goto out;
        }
        tfetch[2] = pst_out(tag, 0);
        if (!(d.enter = pst_dist_run_new(d.t, d.m.g, 1, &tfetch[2], 0, NULL, &st))) goto out;
    }
    if (!(d.init = pst_dist_run_new(d.t, lay->g, 0, NULL, 1, &lay->init, &st))) goto out;
    if (!(d.train = pst_dist_run_new(d.t, d.m.g, d.elastic_sync ? 3 : 2, tfetch, 1, &d.m.train_op, &st))) goto out;
    if (efetch.node && !(d.eval = pst_dist_run_new(d.t, d.m.g, 1, &efetch, 0, NULL, &st)))
        goto out;
    if (d.chief && f->checkpoint_dir && mf.replicas_to_aggregate > 0 && !d.imp) {
        /* A synchronous job's checkpoints carry the model as an asynchronous graph: the sync
         * graph's PstSync* ops exist only in pstrain, so TensorFlow could not load its .meta.
         * Same flags, placement and variable names; only the updates are plain Apply ops. */
        pst_train_flags af = mf;
        af.replicas_to_aggregate = 0;
        af.sync_total = 0;
        af.sync_elastic = 0;
        af.lr_scale_base = 0;
        d.twin_pl = d.pl;
        d.twin_pl.rs = pst_replica_setter_new(d.n_ps, wdev,
                                              strcmp(f->placement, "greedy") == 0
                                                  ? PST_PLACE_GREEDY
                                                  : PST_PLACE_ROUND_ROBIN,
                                              &st);
        if (!d.twin_pl.rs || pst_worker_build_model(&af, net, &d.twin, place, &d.twin_pl, &st) < 0)
            goto out;
    }
    if (d.chief && f->checkpoint_dir) {
        pst_dist_save_opts so = {.dir = f->checkpoint_dir, .max_to_keep = f->max_to_keep,
                                 .meta_graph = d.twin.g};
        if (!(d.saver = pst_dist_save_new(d.t, lay->g, &d.pv, &so, &st))) goto out;
    }
    rc = train(&d, &st) < 0 ? 1 : 0;
    if (rc == 0 && f->ps_status) print_status(&d);
    say_done_all(&d, rc, rc ? st.msg : NULL);
out:
    if (rc) fprintf(stderr, "pstrain-worker: %s\n", st.msg[0] ? st.msg : "failed");
    pst_dist_save_free(d.saver);
    pst_dist_run_free(d.eval);
    pst_dist_run_free(d.train);
    pst_dist_run_free(d.enter);
    pst_dist_run_free(d.init);
    pst_ps_vars_destroy(&d.pv);
    if (d.imp) {
        pst_imported_model_destroy(d.imp, &d.m);
        free(d.imp);
    } else {
        pst_graph_free(d.m.g);
    }
    pst_graph_free(d.layout.g);
    if (engine) pst_allreduce_stop();
    pst_replica_setter_free(d.pl.rs);
    pst_graph_free(d.twin.g);
    pst_replica_setter_free(d.twin_pl.rs);
    if (d.member.task) {
        pst_member_finish(&d.member, rc != 0, rc ? st.msg : d.left ? "left the job" : "done");
    } else {
        pst_task_free(d.t);
        pst_cluster_free(d.c);
    }
    pst_security_free(sec);
    pthread_mutex_destroy(&d.ckpt_mu);
    /* On an error MPI stays up: mpirun ends the ranks that would wait for this one. */
    if (mpi && rc == 0) pst_mpi_finalize();
    return rc;
}
