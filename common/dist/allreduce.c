/* allreduce: the allreduce data-parallel engine and its ops (see allreduce.h). */
#include "allreduce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "transport_mpi.h"

#ifdef PST_HAVE_MPI

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "clock.h"
#include "ops.h"

/* One gradient's place in the engine. A slot's n-th submission on every rank is reduced
 * together: sub counts submissions, red reductions; sub > red means pending. */
typedef struct slot {
    pst_tensor *in, *out;
    int64_t sub, red;
} slot;

typedef struct engine {
    pst_allreduce_opts o;
    int rank, size;
    MPI_Comm comm;  /* the engine thread's collectives */
    MPI_Comm bcomm; /* broadcasts and barriers from the training thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;
    int n_slots;
    int quit;
    pst_status err; /* the first failure: every later wait gets it */
    pthread_t thread;
    uint8_t *fusion;
    size_t fusion_cap;
    pst_allreduce_stats stats;
} engine;

/* Gradients this large are never fused (cycle()). */
#define ALONE_BYTES (INT64_C(1) << 20)

static pthread_mutex_t eng_mu = PTHREAD_MUTEX_INITIALIZER;
static engine *eng;

/* Waits for a nonblocking collective until timeout_ms, testing it (MPI progresses only inside
 * its calls). A data collective (spin) is tested without pause, yielding the core between
 * tests: every rank has entered it, and each pause would stall its rounds and fragments (the
 * fused allreduce ran at 0.09 of one raw MPI_Allreduce with 50 us sleeps). Otherwise (the
 * negotiation, barriers: other ranks may still be computing) it yields for 2 ms, then tests
 * every 50 us, leaving the cores to the ranks still computing. */
static int wait_req(engine *e, MPI_Request *r, int spin, const char *what, pst_status *st) {
    double start = pst_clock_now(), until = start + (double)e->o.timeout_ms / 1000.0;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char buf[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, buf, &len);
            return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: %s failed: %s", e->rank,
                                  what, buf);
        }
        if (done) return 0;
        double now = pst_clock_now();
        if (now >= until) {
            /* The request stays with MPI: the rank is about to fail and exit. */
            char gone[1024];
            if (pst_mpi_gone_ranks(gone, sizeof gone) > 0)
                return pst_status_set(st, PST_E_DEADLINE, "rank %d: %s: %s exited; the other "
                                      "ranks did not join within %lld ms", e->rank, what, gone,
                                      (long long)e->o.timeout_ms);
            return pst_status_set(st, PST_E_DEADLINE,
                                  "rank %d: %s: the other ranks did not join within %lld ms "
                                  "(a rank died, hangs, or is far behind; --recv-timeout-ms)",
                                  e->rank, what, (long long)e->o.timeout_ms);
        }
        if (!spin && now - start > 0.002) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
    }
}

static MPI_Datatype mpi_type(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return MPI_FLOAT;
    case PST_DOUBLE: return MPI_DOUBLE;
    case PST_INT32: return MPI_INT32_T;
    case PST_INT64: return MPI_INT64_T;
    default: return MPI_DATATYPE_NULL;
    }
}

/* dst[i] = src[i] / the number of ranks (dst may be src). */
static void average_into(engine *e, pst_dtype dt, void *dst, const void *src, int64_t n) {
    if (dt == PST_FLOAT) {
        float inv = 1.0f / (float)e->size, *y = dst;
        const float *x = src;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv;
    } else if (dt == PST_DOUBLE) {
        double inv = 1.0 / (double)e->size, *y = dst;
        const double *x = src;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv;
    } else if (dt == PST_INT32) {
        int32_t *y = dst;
        const int32_t *x = src;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / e->size;
    } else {
        int64_t *y = dst;
        const int64_t *x = src;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / e->size;
    }
}

/* Reduces slots [ids[0..k)) (one dtype) in one collective; their outputs are set. */
static int reduce_group(engine *e, const int *ids, int k, pst_status *st) {
    pst_tensor *first = e->slots[ids[0]].in;
    pst_dtype dt = first->dtype;
    MPI_Datatype mt = mpi_type(dt);
    int64_t elems = 0;
    for (int i = 0; i < k; i++) elems += e->slots[ids[i]].in->n;
    if (elems > INT32_MAX)
        return pst_status_set(st, PST_E_INVALID, "a fused allreduce of %lld elements is over "
                              "MPI's count limit", (long long)elems);
    pst_tensor *outs[k];
    memset(outs, 0, sizeof outs);
    int rc = 0;
    /* The previous round's average is the output again once nobody else holds it (the
     * step applied it): no fresh pages for a large gradient every step. */
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < k; i++) {
        slot *s = &e->slots[ids[i]];
        if (s->out && atomic_load(&s->out->refs) == 1 && s->out->dtype == s->in->dtype &&
            s->out->nbytes == s->in->nbytes && pst_shape_equal(&s->out->shape, &s->in->shape)) {
            outs[i] = s->out;
            s->out = NULL;
        }
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < k && !rc; i++) {
        pst_tensor *in = e->slots[ids[i]].in;
        if (!outs[i] && !(outs[i] = pst_tensor_new(in->dtype, in->shape, st))) rc = st->code;
    }
    char what[160];
    snprintf(what, sizeof what, "allreduce of %d gradient(s), %lld bytes", k,
             (long long)(elems * (int64_t)pst_dtype_size(dt)));
    MPI_Request r;
    if (!rc && k == 1) {
        /* one gradient: straight from its tensor into the output, no copy */
        if (MPI_Iallreduce(first->data, outs[0]->data, (int)elems, mt, MPI_SUM, e->comm, &r) !=
            MPI_SUCCESS)
            rc = pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Iallreduce failed", e->rank);
        else
            rc = wait_req(e, &r, 1, what, st);
        if (!rc) average_into(e, dt, outs[0]->data, outs[0]->data, elems);
    } else if (!rc) {
        size_t bytes = (size_t)elems * pst_dtype_size(dt);
        if (bytes > e->fusion_cap) {
            uint8_t *nb = realloc(e->fusion, bytes);
            if (!nb) rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a %zu-byte "
                                         "fusion buffer", bytes);
            else {
                e->fusion = nb;
                e->fusion_cap = bytes;
            }
        }
        size_t off = 0;
        for (int i = 0; i < k && !rc; i++) {
            pst_tensor *in = e->slots[ids[i]].in;
            memcpy(e->fusion + off, in->data, (size_t)in->nbytes);
            off += (size_t)in->nbytes;
        }
        if (!rc && MPI_Iallreduce(MPI_IN_PLACE, e->fusion, (int)elems, mt, MPI_SUM, e->comm, &r) !=
                       MPI_SUCCESS)
            rc = pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Iallreduce failed", e->rank);
        else if (!rc)
            rc = wait_req(e, &r, 1, what, st);
        off = 0;
        for (int i = 0; i < k && !rc; i++) { /* averaged on the way out: one pass */
            average_into(e, dt, outs[i]->data, e->fusion + off, outs[i]->n);
            off += (size_t)outs[i]->nbytes;
        }
    }
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < k; i++) {
        slot *s = &e->slots[ids[i]];
        if (!rc) {
            pst_tensor_unref(s->out);
            s->out = outs[i];
            outs[i] = NULL;
            pst_tensor_unref(s->in);
            s->in = NULL;
            s->red++;
        }
    }
    if (!rc) {
        e->stats.reductions++;
        e->stats.bytes += elems * (int64_t)pst_dtype_size(dt);
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < k; i++) pst_tensor_unref(outs[i]);
    return rc;
}

/* One cycle: which slots are ready on every rank (a bitwise AND of every rank's bits), then
 * those reduced in fusion groups, in slot order. */
static int cycle(engine *e, int n, pst_status *st) {
    int words = (n + 63) / 64;
    uint64_t mine[words], all[words];
    memset(mine, 0, sizeof mine);
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < n; i++)
        if (e->slots[i].sub > e->slots[i].red) mine[i / 64] |= 1ULL << (i % 64);
    e->stats.cycles++;
    pthread_mutex_unlock(&e->mu);
    MPI_Request r;
    if (MPI_Iallreduce(mine, all, words, MPI_UINT64_T, MPI_BAND, e->comm, &r) != MPI_SUCCESS)
        return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Iallreduce failed", e->rank);
    if (wait_req(e, &r, 0, "negotiating which gradients are ready", st) < 0) return st->code;
    /* A gradient of ALONE_BYTES or more is reduced by itself, straight from its tensor:
     * copying it into and out of a fusion buffer costs about as much as reducing it (two
     * passes over its bytes), and fusing saves a collective's latency only for small ones.
     * The small ones go into fusion buffers in slot order (the same on every rank). */
    for (int i = 0; i < n; i++) {
        int ready = (all[i / 64] >> (i % 64)) & 1;
        pst_tensor *t = ready ? e->slots[i].in : NULL; /* only this thread clears in */
        if (t && (int64_t)t->nbytes >= ALONE_BYTES && reduce_group(e, &i, 1, st) < 0)
            return st->code;
    }
    int ids[n], k = 0;
    int64_t group_bytes = 0;
    pst_dtype group_dt = PST_FLOAT;
    for (int i = 0; i <= n; i++) {
        int ready = i < n && (all[i / 64] >> (i % 64)) & 1;
        pst_tensor *t = ready ? e->slots[i].in : NULL;
        if (t && (int64_t)t->nbytes >= ALONE_BYTES) continue; /* reduced above */
        int fits = t && k > 0 && t->dtype == group_dt && e->o.fusion_bytes > 0 &&
                   group_bytes + (int64_t)t->nbytes <= e->o.fusion_bytes;
        if (k > 0 && (i == n || (t && !fits))) {
            if (reduce_group(e, ids, k, st) < 0) return st->code;
            k = 0;
            group_bytes = 0;
        }
        if (t) {
            group_dt = t->dtype;
            group_bytes += (int64_t)t->nbytes;
            ids[k++] = i;
        }
    }
    return 0;
}

static int any_pending(engine *e) {
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].sub > e->slots[i].red) return 1;
    return 0;
}

/* 1 while a gradient of the current round (the most submitted slot's count) has not been
 * handed over yet here: then waiting a cycle may fuse it with the others. */
static int round_incomplete(engine *e) {
    int64_t cur = 0;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].sub > cur) cur = e->slots[i].sub;
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].sub < cur) return 1;
    return 0;
}

static void *engine_main(void *arg) {
    engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->quit && !e->err.code && !any_pending(e)) pthread_cond_wait(&e->cv, &e->mu);
        /* Let more gradients become ready for up to the cycle time: they are then reduced in
         * fewer buffers. The wait ends as soon as every gradient of the round is here (nothing
         * more to batch). */
        if (e->o.cycle_ms > 0 && round_incomplete(e)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            int64_t ns = until.tv_nsec + (int64_t)(e->o.cycle_ms * 1e6);
            until.tv_sec += (time_t)(ns / 1000000000);
            until.tv_nsec = (long)(ns % 1000000000);
            while (!e->quit && !e->err.code && round_incomplete(e) &&
                   pthread_cond_timedwait(&e->cv, &e->mu, &until) == 0) {
            }
        }
        int stop = e->quit || e->err.code;
        int n = e->n_slots;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
        pst_status st = {0};
        if (cycle(e, n, &st) < 0) {
            pthread_mutex_lock(&e->mu);
            if (!e->err.code) e->err = st;
            pthread_cond_broadcast(&e->cv);
            pthread_mutex_unlock(&e->mu);
            break;
        }
    }
    return NULL;
}

/* ---- the ops ---- */

int pst_allreduce_submit(int idx, int n_slots, pst_tensor *t, pst_status *st) {
    pthread_mutex_lock(&eng_mu);
    engine *e = eng;
    pthread_mutex_unlock(&eng_mu);
    if (!e)
        return pst_status_set(st, PST_E_PRECONDITION, "no allreduce engine in this process "
                              "(pstrain-worker --mode allreduce starts it)");
    if (mpi_type(t->dtype) == MPI_DATATYPE_NULL)
        return pst_status_set(st, PST_E_INVALID, "allreduce of %s tensors is not supported",
                              pst_dtype_name(t->dtype));
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (e->err.code) {
        rc = pst_status_set(st, e->err.code, "%s", e->err.msg);
    } else if (e->n_slots == 0) {
        e->slots = calloc((size_t)n_slots, sizeof *e->slots);
        if (e->slots) e->n_slots = n_slots;
        else rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory for %d gradients", n_slots);
    } else if (n_slots != e->n_slots) {
        rc = pst_status_set(st, PST_E_INVALID, "allreduce: a graph with %d gradients after one "
                            "with %d (one training graph per process)", n_slots, e->n_slots);
    }
    if (!rc && (idx < 0 || idx >= e->n_slots))
        rc = pst_status_set(st, PST_E_INVALID, "allreduce slot %d of %d", idx, e->n_slots);
    if (!rc) {
        slot *s = &e->slots[idx];
        if (s->sub > s->red) {
            rc = pst_status_set(st, PST_E_INVALID, "gradient %d handed to allreduce twice "
                                "before its reduction", idx);
        } else {
            s->in = pst_tensor_ref(t);
            s->sub++;
            pthread_cond_broadcast(&e->cv);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

pst_tensor *pst_allreduce_wait(int idx, pst_status *st) {
    pthread_mutex_lock(&eng_mu);
    engine *e = eng;
    pthread_mutex_unlock(&eng_mu);
    if (!e) {
        pst_status_set(st, PST_E_PRECONDITION, "no allreduce engine in this process");
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    pst_tensor *out = NULL;
    if (idx < 0 || idx >= e->n_slots) {
        pst_status_set(st, PST_E_INVALID, "allreduce slot %d was never submitted", idx);
    } else {
        slot *s = &e->slots[idx];
        while (!e->err.code && !e->quit && s->sub > s->red) pthread_cond_wait(&e->cv, &e->mu);
        if (s->sub > s->red || e->err.code)
            pst_status_set(st, e->err.code ? e->err.code : PST_E_CANCELLED, "%s",
                           e->err.code ? e->err.msg : "the allreduce engine stopped");
        else
            out = pst_tensor_ref(s->out);
    }
    pthread_mutex_unlock(&e->mu);
    return out;
}

static int start_kernel(pst_kernel_ctx *c) {
    int slot_i = (int)pst_kctx_attr_i(c, "slot", -1), n = (int)pst_kctx_attr_i(c, "slots", 0);
    if (pst_allreduce_submit(slot_i, n, c->inputs[0], c->status) < 0) return c->status->code;
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

static int wait_kernel(pst_kernel_ctx *c) {
    int slot_i = (int)pst_kctx_attr_i(c, "slot", -1);
    pst_tensor *t = pst_allreduce_wait(slot_i, c->status);
    if (!t) return c->status->code;
    pst_kctx_set_output(c, 0, t);
    return 0;
}

static int same_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static const pst_attr_spec ar_attrs[] = {{"slot", PST_ATTR_INT, 1}, {"slots", PST_ATTR_INT, 0},
                                         {0}};
/* Pure as far as the executor is concerned (its output is its input), so helper threads run
 * it as soon as the gradient exists; handing the gradient over is its only effect. */
static const pst_op_def start_op = {.name = "PstAllreduceStart", .min_inputs = 1,
                                    .max_inputs = 1, .n_outputs = 1, .attrs = ar_attrs,
                                    .shape = same_shape, .kernel = start_kernel,
                                    .flags = PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def wait_op = {.name = "PstAllreduceWait", .min_inputs = 1, .max_inputs = 1,
                                   .n_outputs = 1, .attrs = ar_attrs, .shape = same_shape,
                                   .kernel = wait_kernel,
                                   .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE};

static pthread_once_t ops_once = PTHREAD_ONCE_INIT;
static void register_ops(void) {
    pst_ops_init();
    pst_op_register(&start_op);
    pst_op_register(&wait_op);
}

/* Hybrid mode: the variable lives on a PS (its gradient goes there). */
static int on_ps(const pst_grad_var *gv) {
    return strncmp(gv->var.node->device, "/job:ps", 7) == 0;
}

void pst_allreduce_transform(void *ctx, pst_graph *g, int n, pst_grad_var *gv) {
    int hybrid = ctx != NULL;
    pthread_once(&ops_once, register_ops);
    int slots = 0;
    for (int i = 0; i < n; i++) {
        if (!gv[i].grad.node || (hybrid && on_ps(&gv[i]))) continue;
        if (gv[i].sparse_ids.node) {
            pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "allreduce mode: the gradient of '%s' is "
                                "sparse (an embedding); keep embeddings on a PS",
                                gv[i].var.node->name);
            return;
        }
        slots++;
    }
    pst_output *started = calloc((size_t)n + 1, sizeof *started);
    if (!started) {
        pst_graph_set_error(g, PST_E_EXHAUSTED, "allreduce: out of memory");
        return;
    }
    /* All the starts first, then the waits: every rank hands over every gradient before it
     * blocks on any average. */
    for (int pass = 0, k = 0; pass < 2; pass++, k = 0) {
        for (int i = 0; i < n; i++) {
            if (!gv[i].grad.node || (hybrid && on_ps(&gv[i]))) continue;
            char name[512];
            snprintf(name, sizeof name, "allreduce/%s_%s", pass ? "wait" : "start",
                     gv[i].var.node->name);
            pst_node_builder *b = pst_nb_new(g, pass ? "PstAllreduceWait" : "PstAllreduceStart",
                                             name);
            pst_nb_input(b, pass ? started[i] : gv[i].grad);
            pst_nb_attr_i(b, "slot", k++);
            pst_nb_attr_i(b, "slots", slots);
            pst_output o = pst_nb_finish_out(b);
            if (pass) gv[i].grad = o;
            else started[i] = o;
        }
    }
    free(started);
}

/* ---- lifecycle and collectives from the training thread ---- */

int pst_allreduce_start(const pst_allreduce_opts *o, int *rank, int *size, pst_status *st) {
    pthread_once(&ops_once, register_ops);
    int r = 0, n = 0;
    if (pst_mpi_init(&r, &n, st) < 0) return st->code;
    pthread_mutex_lock(&eng_mu);
    int busy = eng != NULL;
    pthread_mutex_unlock(&eng_mu);
    if (busy) return pst_status_set(st, PST_E_EXISTS, "the allreduce engine already runs");
    engine *e = calloc(1, sizeof *e);
    if (!e) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for the allreduce engine");
    if (o) e->o = *o;
    if (e->o.fusion_bytes == 0) e->o.fusion_bytes = INT64_C(64) << 20;
    if (e->o.fusion_bytes < 0) e->o.fusion_bytes = 0;
    if (e->o.cycle_ms == 0) e->o.cycle_ms = 5;
    if (e->o.cycle_ms < 0) e->o.cycle_ms = 0;
    if (e->o.timeout_ms <= 0) e->o.timeout_ms = 60000;
    MPI_Comm base = MPI_COMM_WORLD, group_comm = MPI_COMM_NULL;
    if (e->o.first_rank > 0) {
        /* Only ranks first_rank .. n-1 take part (MPI_Comm_create_group is collective over
         * them alone: the PS ranks do not call it). */
        if (e->o.first_rank >= n || r < e->o.first_rank) {
            free(e);
            return pst_status_set(st, PST_E_INVALID, "rank %d of %d: not among the allreduce "
                                  "ranks %d..%d", r, n, o->first_rank, n - 1);
        }
        MPI_Group world, part;
        int range[1][3] = {{e->o.first_rank, n - 1, 1}};
        int ok = MPI_Comm_group(MPI_COMM_WORLD, &world) == MPI_SUCCESS &&
                 MPI_Group_range_incl(world, 1, range, &part) == MPI_SUCCESS;
        ok = ok && MPI_Comm_create_group(MPI_COMM_WORLD, part, 77, &group_comm) == MPI_SUCCESS;
        if (ok) {
            MPI_Group_free(&part);
            MPI_Group_free(&world);
        }
        if (!ok || group_comm == MPI_COMM_NULL) {
            free(e);
            return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: cannot make the "
                                  "communicator of ranks %d..%d", r, o->first_rank, n - 1);
        }
        base = group_comm;
        MPI_Comm_rank(base, &r);
        MPI_Comm_size(base, &n);
    }
    e->rank = r;
    e->size = n;
    int dup_ok = MPI_Comm_dup(base, &e->comm) == MPI_SUCCESS &&
                 MPI_Comm_dup(base, &e->bcomm) == MPI_SUCCESS;
    if (group_comm != MPI_COMM_NULL) MPI_Comm_free(&group_comm);
    if (!dup_ok) {
        free(e);
        return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Comm_dup failed", r);
    }
    MPI_Comm_set_errhandler(e->comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(e->bcomm, MPI_ERRORS_RETURN);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return pst_status_set(st, PST_E_EXHAUSTED, "cannot start the allreduce thread");
    }
    pthread_mutex_lock(&eng_mu);
    eng = e;
    pthread_mutex_unlock(&eng_mu);
    if (rank) *rank = r;
    if (size) *size = n;
    return 0;
}

void pst_allreduce_stop(void) {
    pthread_mutex_lock(&eng_mu);
    engine *e = eng;
    eng = NULL;
    pthread_mutex_unlock(&eng_mu);
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->quit = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    for (int i = 0; i < e->n_slots; i++) {
        pst_tensor_unref(e->slots[i].in);
        pst_tensor_unref(e->slots[i].out);
    }
    free(e->slots);
    free(e->fusion);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void pst_allreduce_get_stats(pst_allreduce_stats *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&eng_mu);
    if (eng) {
        pthread_mutex_lock(&eng->mu);
        *s = eng->stats;
        pthread_mutex_unlock(&eng->mu);
    }
    pthread_mutex_unlock(&eng_mu);
}

static engine *current(pst_status *st) {
    pthread_mutex_lock(&eng_mu);
    engine *e = eng;
    pthread_mutex_unlock(&eng_mu);
    if (!e) pst_status_set(st, PST_E_PRECONDITION, "no allreduce engine in this process");
    return e;
}

/* A broadcast from root on the training thread's communicator, within the timeout. */
static int bcast(engine *e, void *p, int64_t bytes, int root, const char *what, pst_status *st) {
    for (int64_t off = 0; off < bytes;) {
        int n = bytes - off > (1 << 30) ? 1 << 30 : (int)(bytes - off);
        MPI_Request r;
        if (MPI_Ibcast((uint8_t *)p + off, n, MPI_BYTE, root, e->bcomm, &r) != MPI_SUCCESS)
            return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Ibcast failed", e->rank);
        /* small ones (counts, sizes) may wait for the root to restore: no spinning */
        if (wait_req(e, &r, bytes > 65536, what, st) < 0) return st->code;
        off += n;
    }
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(pst_var *const *)a)->name, (*(pst_var *const *)b)->name);
}

int pst_allreduce_broadcast_vars(pst_var_store *vs, int root, pst_status *st) {
    engine *e = current(st);
    if (!e) return st->code;
    pst_var **vars = NULL;
    int n = pst_var_store_list(vs, &vars);
    if (n < 0) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory listing variables");
    qsort(vars, (size_t)n, sizeof *vars, by_name);
    int64_t count = n;
    int rc = bcast(e, &count, sizeof count, root, "broadcasting the variable count", st);
    if (!rc && count != n)
        rc = pst_status_set(st, PST_E_INVALID, "rank %d holds %d variables, rank %d %lld: the "
                            "ranks must build the same model", e->rank, n, root,
                            (long long)count);
    for (int i = 0; i < n && !rc; i++) {
        pst_tensor *cur = pst_var_read(vars[i]);
        if (!cur) {
            rc = pst_status_set(st, PST_E_PRECONDITION, "rank %d: variable '%s' is not "
                                "initialized before the broadcast", e->rank, vars[i]->name);
            break;
        }
        int64_t nb = cur->nbytes, root_nb = nb;
        char what[400];
        snprintf(what, sizeof what, "broadcasting variable '%s'", vars[i]->name);
        rc = bcast(e, &root_nb, sizeof root_nb, root, what, st);
        if (!rc && root_nb != nb)
            rc = pst_status_set(st, PST_E_INVALID, "variable '%s' has %lld bytes on rank %d and "
                                "%lld on rank %d", vars[i]->name, (long long)nb, e->rank,
                                (long long)root_nb, root);
        pst_tensor *t = NULL;
        if (!rc && e->rank == root) {
            rc = bcast(e, cur->data, nb, root, what, st);
        } else if (!rc) {
            t = pst_tensor_new(cur->dtype, cur->shape, st);
            rc = t ? bcast(e, t->data, nb, root, what, st) : st->code;
            if (!rc) rc = pst_var_assign_take(vars[i], t, 1, st); /* still ours to unref */
        }
        pst_tensor_unref(t);
        pst_tensor_unref(cur);
    }
    free(vars);
    return rc;
}

int pst_allreduce_barrier(pst_status *st) {
    engine *e = current(st);
    if (!e) return st->code;
    MPI_Request r;
    if (MPI_Ibarrier(e->bcomm, &r) != MPI_SUCCESS)
        return pst_status_set(st, PST_E_UNAVAILABLE, "rank %d: MPI_Ibarrier failed", e->rank);
    return wait_req(e, &r, 0, "barrier", st);
}

#else /* no MPI */

static int no_mpi(pst_status *st) {
    return pst_status_set(st, PST_E_UNIMPLEMENTED, "the allreduce mode needs MPI: this pstrain "
                          "was built without it (install libopenmpi-dev, -DPST_MPI=ON)");
}
int pst_allreduce_start(const pst_allreduce_opts *o, int *rank, int *size, pst_status *st) {
    (void)o;
    (void)rank;
    (void)size;
    return no_mpi(st);
}
void pst_allreduce_stop(void) {}
void pst_allreduce_transform(void *ctx, pst_graph *g, int n, pst_grad_var *gv) {
    (void)ctx;
    (void)n;
    (void)gv;
    pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the allreduce mode needs MPI");
}
int pst_allreduce_submit(int slot, int n_slots, pst_tensor *t, pst_status *st) {
    (void)slot;
    (void)n_slots;
    (void)t;
    return no_mpi(st);
}
pst_tensor *pst_allreduce_wait(int slot, pst_status *st) {
    (void)slot;
    no_mpi(st);
    return NULL;
}
int pst_allreduce_broadcast_vars(pst_var_store *vs, int root, pst_status *st) {
    (void)vs;
    (void)root;
    return no_mpi(st);
}
int pst_allreduce_barrier(pst_status *st) { return no_mpi(st); }
void pst_allreduce_get_stats(pst_allreduce_stats *s) { memset(s, 0, sizeof *s); }

#endif
