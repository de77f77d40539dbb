#include "session.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "op.h"
#include "session_internal.h"

typedef struct plan {
    char *key;
    int n_graph_nodes; /* graph size the plan was made for */
    int n_run;
    int *run;          /* node ids to execute, ascending */
    unsigned char *skip;     /* per run index: every output is fed, nothing to run */
    unsigned char *helpable; /* per run index: a pure kernel an inter-op helper may run early */
    int n_helpable;
    int *n_deps;       /* per run index: edges from producers in the run it waits for */
    int *succ_off;     /* per run index: its consumers are succ[succ_off[r] .. succ_off[r+1]) */
    int *succ;
    int *uses;         /* per node id * max outputs: flattened via out_base */
    int *out_base;     /* per node id: offset of its outputs in uses/value arrays */
    int n_slots;
} plan;

/* Per-op kernel time, collected when PST_PROFILE is set and printed when the session ends. */
typedef struct prof_entry {
    const char *op;
    double seconds;
    int64_t calls;
} prof_entry;

struct pst_session {
    int profile;
    int inter_op; /* threads running one step's nodes, the caller included */
    prof_entry prof[128];
    int n_prof;
    pst_graph *g;
    pst_var_store *vars;
    int owns_vars;
    void *exec;
    int files_confined;
    char *file_root;
    pthread_mutex_t mu; /* plans and node states */
    plan **plans;
    int n_plans, cap_plans;
    void **state;
    int n_state;
    pthread_mutex_t state_mu; /* serializes stateful kernels with state */
    int64_t next_step;
    atomic_llong helper_nodes; /* nodes inter-op helpers ran */
};

pst_session *pst_session_new(pst_graph *g, const pst_session_opts *opts, pst_status *st) {
    pst_session *s = calloc(1, sizeof *s);
    PST_ASSERT(s != NULL);
    s->g = g;
    if (opts && opts->vars) {
        s->vars = opts->vars;
    } else {
        s->vars = pst_var_store_new();
        s->owns_vars = 1;
        if (s->vars == NULL) {
            free(s);
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a session's variables");
            return NULL;
        }
    }
    s->exec = opts ? opts->exec : NULL;
    s->files_confined = opts ? opts->files_confined : 0;
    if (opts && opts->file_root && opts->file_root[0] &&
        (s->file_root = strdup(opts->file_root)) == NULL) {
        if (s->owns_vars) pst_var_store_free(s->vars);
        free(s);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a session");
        return NULL;
    }
    s->inter_op = opts && opts->inter_op_threads > 0 ? opts->inter_op_threads
                                                     : pst_session_default_inter_op_threads();
    const char *prof = getenv("PST_PROFILE");
    s->profile = prof && prof[0] && strcmp(prof, "0") != 0;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->state_mu, NULL);
    return s;
}

static void plan_free(plan *p) {
    if (p == NULL) return;
    free(p->key);
    free(p->run);
    free(p->skip);
    free(p->helpable);
    free(p->n_deps);
    free(p->succ_off);
    free(p->succ);
    free(p->uses);
    free(p->out_base);
    free(p);
}

static void prof_add(pst_session *s, const char *op, double sec) {
    pthread_mutex_lock(&s->mu);
    int i = 0;
    while (i < s->n_prof && strcmp(s->prof[i].op, op) != 0) i++;
    if (i == s->n_prof && s->n_prof < 128) s->prof[s->n_prof++] = (prof_entry){op, 0, 0};
    if (i < 128) {
        s->prof[i].seconds += sec;
        s->prof[i].calls++;
    }
    pthread_mutex_unlock(&s->mu);
}

static int prof_cmp(const void *a, const void *b) {
    double x = ((const prof_entry *)a)->seconds, y = ((const prof_entry *)b)->seconds;
    return (x < y) - (x > y);
}

void pst_session_free(pst_session *s) {
    if (s == NULL) return;
    if (s->profile && s->n_prof) {
        qsort(s->prof, (size_t)s->n_prof, sizeof s->prof[0], prof_cmp);
        double total = 0;
        for (int i = 0; i < s->n_prof; i++) total += s->prof[i].seconds;
        fprintf(stderr, "pstrain profile (kernel time by op, %.3f s total):\n", total);
        for (int i = 0; i < s->n_prof; i++)
            fprintf(stderr, "  %-36s %9.3f s %5.1f%% %10lld calls\n", s->prof[i].op,
                    s->prof[i].seconds, 100 * s->prof[i].seconds / (total > 0 ? total : 1),
                    (long long)s->prof[i].calls);
    }
    for (int i = 0; i < s->n_plans; i++) plan_free(s->plans[i]);
    free(s->plans);
    for (int i = 0; i < s->n_state; i++) {
        pst_node *n = pst_graph_node(s->g, i);
        if (s->state[i] && n && n->op->state_free) n->op->state_free(s->state[i]);
    }
    free(s->state);
    if (s->owns_vars) pst_var_store_free(s->vars);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->state_mu);
    free(s->file_root);
    free(s);
}

pst_var_store *pst_session_vars(pst_session *s) { return s->vars; }
int64_t pst_session_helper_nodes(pst_session *s) { return atomic_load(&s->helper_nodes); }
pst_graph *pst_session_graph(pst_session *s) { return s->g; }

/* Key: feeds, fetches and targets by node id and index. */
static char *plan_key(const pst_feed *feeds, int nf, const pst_output *fetches, int nx,
                      pst_node *const *targets, int nt) {
    size_t cap = 32 + (size_t)(nf + nx + nt) * 24, off = 0;
    char *k = malloc(cap);
    PST_ASSERT(k != NULL);
    off += (size_t)snprintf(k + off, cap - off, "F");
    for (int i = 0; i < nf; i++)
        off += (size_t)snprintf(k + off, cap - off, "%d:%d,", feeds[i].output.node->id,
                                feeds[i].output.index);
    off += (size_t)snprintf(k + off, cap - off, "X");
    for (int i = 0; i < nx; i++)
        off += (size_t)snprintf(k + off, cap - off, "%d:%d,", fetches[i].node->id,
                                fetches[i].index);
    off += (size_t)snprintf(k + off, cap - off, "T");
    for (int i = 0; i < nt; i++) off += (size_t)snprintf(k + off, cap - off, "%d,", targets[i]->id);
    return k;
}

static int is_fed(const pst_feed *feeds, int nf, const pst_node *n, int idx) {
    for (int i = 0; i < nf; i++)
        if (feeds[i].output.node == n && feeds[i].output.index == idx) return 1;
    return 0;
}

/* Ops cheap enough that handing them to another thread would cost more than running them. */
static int is_trivial_op(const char *op) {
    static const char *const trivial[] = {"Const",     "Identity",   "NoOp",       "Shape",
                                          "Size",      "Reshape",    "Squeeze",    "ExpandDims",
                                          "Placeholder", "StopGradient", "ZerosLike", "OnesLike"};
    for (size_t i = 0; i < sizeof trivial / sizeof trivial[0]; i++)
        if (strcmp(op, trivial[i]) == 0) return 1;
    return 0;
}

/* A pure kernel: its outputs are a function of its input tensors alone (no variable, no state,
 * no side effect, no waiting on another task), so running it before the nodes that precede it
 * in the plan cannot change any value. Only such nodes run on inter-op helpers. */
static int is_pure(const pst_node *n) {
    const pst_op_def *op = n->op;
    if (op->kernel == NULL || op->state_free || pst_op_ref_mask(op) ||
        (op->flags & (PST_OP_STATEFUL | PST_OP_VARIABLE)) || is_trivial_op(op->name))
        return 0;
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i].node->op->flags & PST_OP_VARIABLE) return 0;
    return 1;
}

/* The step's dependency graph over run indices: an edge from each producer that runs (not one
 * whose every output is fed) to each consumer of an unfed output, and to each control
 * dependent. */
static void plan_build_deps(plan *p, pst_graph *g, const pst_feed *feeds, int nf) {
    int nn = p->n_graph_nodes, nr = p->n_run;
    int *pos = malloc(((size_t)nn + 1) * sizeof(int));
    p->skip = calloc((size_t)nr + 1, 1);
    p->helpable = calloc((size_t)nr + 1, 1);
    p->n_deps = calloc((size_t)nr + 1, sizeof(int));
    p->succ_off = calloc((size_t)nr + 2, sizeof(int));
    PST_ASSERT(pos && p->skip && p->helpable && p->n_deps && p->succ_off);
    for (int i = 0; i < nn; i++) pos[i] = -1;
    for (int r = 0; r < nr; r++) {
        pst_node *n = pst_graph_node(g, p->run[r]);
        pos[n->id] = r;
        int all_fed = n->n_outputs > 0;
        for (int i = 0; i < n->n_outputs && all_fed; i++)
            if (!is_fed(feeds, nf, n, i)) all_fed = 0;
        p->skip[r] = (unsigned char)all_fed;
        p->helpable[r] = (unsigned char)(!all_fed && is_pure(n));
        p->n_helpable += p->helpable[r];
    }
    /* Two passes over the edges: count per producer, then fill. */
    for (int pass = 0; pass < 2; pass++) {
        int *fill = NULL;
        if (pass == 1) {
            for (int r = 0; r < nr; r++) p->succ_off[r + 1] += p->succ_off[r];
            p->succ = malloc(((size_t)p->succ_off[nr] + 1) * sizeof(int));
            fill = malloc(((size_t)nr + 1) * sizeof(int));
            PST_ASSERT(p->succ && fill);
            memcpy(fill, p->succ_off, (size_t)nr * sizeof(int));
        }
        for (int r = 0; r < nr; r++) {
            if (p->skip[r]) continue;
            pst_node *n = pst_graph_node(g, p->run[r]);
            int k = n->n_inputs + n->n_control;
            for (int e = 0; e < k; e++) {
                int from;
                if (e < n->n_inputs) {
                    pst_output in = n->inputs[e];
                    if (is_fed(feeds, nf, in.node, in.index)) continue;
                    from = pos[in.node->id];
                } else {
                    from = pos[n->control_inputs[e - n->n_inputs]->id];
                }
                PST_ASSERT(from >= 0 && from < r);
                if (p->skip[from]) continue;
                if (pass == 0) {
                    p->succ_off[from + 1]++;
                    p->n_deps[r]++;
                } else {
                    p->succ[fill[from]++] = r;
                }
            }
        }
        free(fill);
    }
    free(pos);
}

static plan *plan_build(pst_graph *g, const pst_feed *feeds, int nf, const pst_output *fetches,
                        int nx, pst_node *const *targets, int nt) {
    int nn = pst_graph_num_nodes(g);
    plan *p = calloc(1, sizeof *p);
    PST_ASSERT(p != NULL);
    p->n_graph_nodes = nn;
    p->out_base = calloc((size_t)nn + 1, sizeof(int));
    char *need = calloc((size_t)nn + 1, 1);
    PST_ASSERT(p->out_base && need);
    for (int i = 0; i < nn; i++) {
        p->out_base[i] = p->n_slots;
        p->n_slots += pst_graph_node(g, i)->n_outputs;
    }
    p->uses = calloc((size_t)p->n_slots + 1, sizeof(int));
    PST_ASSERT(p->uses != NULL);
    for (int i = 0; i < nx; i++)
        if (!is_fed(feeds, nf, fetches[i].node, fetches[i].index)) need[fetches[i].node->id] = 1;
    for (int i = 0; i < nt; i++) need[targets[i]->id] = 1;
    /* Inputs precede their consumers, so one descending sweep marks everything needed. */
    for (int id = nn - 1; id >= 0; id--) {
        if (!need[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        for (int i = 0; i < n->n_inputs; i++) {
            pst_output in = n->inputs[i];
            p->uses[p->out_base[in.node->id] + in.index]++;
            if (!is_fed(feeds, nf, in.node, in.index)) need[in.node->id] = 1;
        }
        for (int i = 0; i < n->n_control; i++) need[n->control_inputs[i]->id] = 1;
    }
    for (int i = 0; i < nx; i++) p->uses[p->out_base[fetches[i].node->id] + fetches[i].index]++;
    p->run = calloc((size_t)nn + 1, sizeof(int));
    PST_ASSERT(p->run != NULL);
    for (int id = 0; id < nn; id++)
        if (need[id]) p->run[p->n_run++] = id;
    free(need);
    plan_build_deps(p, g, feeds, nf);
    return p;
}

static plan *plan_get(pst_session *s, const pst_feed *feeds, int nf, const pst_output *fetches,
                      int nx, pst_node *const *targets, int nt) {
    char *key = plan_key(feeds, nf, fetches, nx, targets, nt);
    int nn = pst_graph_num_nodes(s->g);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_plans; i++)
        if (s->plans[i]->n_graph_nodes == nn && strcmp(s->plans[i]->key, key) == 0) {
            pthread_mutex_unlock(&s->mu);
            free(key);
            return s->plans[i];
        }
    plan *p = plan_build(s->g, feeds, nf, fetches, nx, targets, nt);
    p->key = key;
    /* Plans made for a smaller graph are stale but may still be in use by another thread's
     * run; they are kept until the session is freed. */
    if (s->n_plans == s->cap_plans) {
        s->cap_plans = s->cap_plans ? s->cap_plans * 2 : 8;
        s->plans = realloc(s->plans, (size_t)s->cap_plans * sizeof *s->plans);
        PST_ASSERT(s->plans != NULL);
    }
    s->plans[s->n_plans++] = p;
    if (s->n_state < nn) {
        s->state = realloc(s->state, (size_t)nn * sizeof(void *));
        PST_ASSERT(s->state != NULL);
        memset(s->state + s->n_state, 0, (size_t)(nn - s->n_state) * sizeof(void *));
        s->n_state = nn;
    }
    pthread_mutex_unlock(&s->mu);
    return p;
}

typedef struct slot {
    pst_tensor *t;
    pst_var *var;
} slot;

static int check_feed(const pst_feed *f, pst_status *st) {
    char a[128], b[128], name[256];
    pst_output o = f->output;
    pst_output_name(o, name, sizeof name);
    if (f->value == NULL)
        return pst_status_set(st, PST_E_INVALID, "feed for '%s' is NULL", name);
    if (f->value->dtype != pst_output_dtype(o))
        return pst_status_set(st, PST_E_INVALID, "cannot feed a %s tensor to '%s', which is %s",
                              pst_dtype_name(f->value->dtype), name,
                              pst_dtype_name(pst_output_dtype(o)));
    pst_shape want = pst_output_shape(o);
    if (!pst_shape_compatible(&want, &f->value->shape))
        return pst_status_set(st, PST_E_INVALID,
                              "cannot feed a value of shape %s to '%s', which has shape %s",
                              pst_shape_str(&f->value->shape, a, sizeof a), name,
                              pst_shape_str(&want, b, sizeof b));
    return 0;
}

/* What every thread running one step's nodes shares. */
typedef struct run_ctx {
    pst_session *s;
    plan *p;
    const pst_feed *feeds;
    int n_feeds;
    int64_t step;
    slot *slots;
    atomic_int *left; /* per slot: consumers still to run */
} run_ctx;

static void release_input(run_ctx *x, int idx) {
    if (atomic_fetch_sub(&x->left[idx], 1) == 1) {
        pst_tensor_unref(x->slots[idx].t);
        x->slots[idx].t = NULL;
    }
}

#define IO_STACK 64

int pst__session_call_kernel(pst_session *s, pst_node *n, pst_tensor *const *ins,
                              pst_var *const *invs, pst_tensor **outs, pst_var **outvs,
                              int64_t step, pst_status *st) {
    const pst_op_def *op = n->op;
    pst_status kst = {0};
    pst_kernel_ctx ctx = {.node_name = n->name,
                          .op = op,
                          .attrs = n->attrs,
                          .n_attrs = n->n_attrs,
                          .n_inputs = n->n_inputs,
                          .inputs = ins,
                          .input_vars = invs,
                          .n_outputs = n->n_outputs,
                          .outputs = outs,
                          .output_vars = outvs,
                          .out_dtypes = n->out_dtypes,
                          .state = &s->state[n->id],
                          .vars = s->vars,
                          .exec = s->exec,
                          .files_confined = s->files_confined,
                          .file_root = s->file_root,
                          .graph = n->graph,
                          .step_id = step,
                          .status = &kst};
    int krc;
    if (op->kernel == NULL) {
        krc = pst_status_set(&kst, PST_E_UNIMPLEMENTED, "op %s has no CPU kernel", op->name);
    } else if (op->state_free) {
        pthread_mutex_lock(&s->state_mu);
        krc = op->kernel(&ctx);
        pthread_mutex_unlock(&s->state_mu);
    } else if (s->profile) {
        double t0 = pst_clock_now();
        krc = op->kernel(&ctx);
        prof_add(s, op->name, pst_clock_now() - t0);
    } else {
        krc = op->kernel(&ctx);
    }
    if (krc == 0) {
        for (int i = 0; i < n->n_outputs; i++)
            if (outs[i] == NULL && outvs[i] == NULL) {
                krc = pst_status_set(&kst, PST_E_INTERNAL, "kernel produced no output %d", i);
                break;
            }
    }
    if (krc < 0)
        pst_status_set(st, krc, "node '%s' (%s): %s", n->name, op->name,
                       kst.msg[0] ? kst.msg : pst_strerror(krc));
    return krc;
}

void pst__session_ensure_state(pst_session *s) {
    int nn = pst_graph_num_nodes(s->g);
    pthread_mutex_lock(&s->mu);
    if (s->n_state < nn) {
        s->state = realloc(s->state, (size_t)nn * sizeof(void *));
        PST_ASSERT(s->state != NULL);
        memset(s->state + s->n_state, 0, (size_t)(nn - s->n_state) * sizeof(void *));
        s->n_state = nn;
    }
    pthread_mutex_unlock(&s->mu);
}

int64_t pst__session_next_step(pst_session *s, int64_t step_id) {
    pthread_mutex_lock(&s->mu);
    int64_t step = step_id >= 0 ? step_id : s->next_step++;
    pthread_mutex_unlock(&s->mu);
    return step;
}

pst_var_store *pst__session_vars(pst_session *s) { return s->vars; }

/* Runs the node at run index r: gathers its inputs, calls the kernel, stores its outputs and
 * releases inputs nobody else needs. Errors name the node. */
static int exec_node(run_ctx *x, int r, pst_status *st) {
    pst_session *s = x->s;
    plan *p = x->p;
    pst_node *n = pst_graph_node(s->g, p->run[r]);
    const pst_op_def *op = n->op;
    char name[256];
    int rc = 0;
    pst_tensor *in_buf[IO_STACK], **ins = in_buf;
    pst_var *inv_buf[IO_STACK], **invs = inv_buf;
    pst_tensor *out_buf[IO_STACK], **outs = out_buf;
    pst_var *outv_buf[IO_STACK], **outvs = outv_buf;
    char tmp_buf[IO_STACK], *tmp_ref = tmp_buf;
    if (n->n_inputs > IO_STACK || n->n_outputs > IO_STACK) {
        int m = n->n_inputs > n->n_outputs ? n->n_inputs : n->n_outputs;
        tmp_ref = malloc((size_t)m);
        ins = malloc((size_t)m * sizeof *ins);
        invs = malloc((size_t)m * sizeof *invs);
        outs = malloc((size_t)m * sizeof *outs);
        outvs = malloc((size_t)m * sizeof *outvs);
        PST_ASSERT(tmp_ref && ins && invs && outs && outvs);
    }
    int base = p->out_base[n->id];
    memset(tmp_ref, 0, (size_t)n->n_inputs);
    for (int i = 0; i < n->n_inputs; i++) {
        pst_output in = n->inputs[i];
        slot *sl = &x->slots[p->out_base[in.node->id] + in.index];
        invs[i] = NULL;
        ins[i] = sl->t;
        if (i < 32 && ((pst_op_ref_mask(op) >> i) & 1) && sl->var) {
            invs[i] = sl->var;
            ins[i] = NULL;
        } else if (sl->t == NULL && sl->var) {
            /* Reading a variable through a non-ref op: a snapshot for this consumer only,
             * released right after it runs, so later in-place updates need not copy. */
            ins[i] = pst_var_read(sl->var);
            tmp_ref[i] = 1;
            if (ins[i] == NULL) {
                pst_var_uninit_error(sl->var->name, st);
                pst_status_prefix(st, "node '%s' (%s): ", n->name, op->name);
                rc = PST_E_PRECONDITION;
                break;
            }
        } else if (sl->t == NULL) {
            rc = pst_status_set(st, PST_E_INTERNAL, "node '%s' (%s): input %d ('%s') has no value",
                                n->name, op->name, i, pst_output_name(in, name, sizeof name));
            break;
        }
    }
    if (rc == 0) {
        for (int i = 0; i < n->n_outputs; i++) {
            outs[i] = NULL;
            outvs[i] = NULL;
        }
        int krc = pst__session_call_kernel(s, n, ins, invs, outs, outvs, x->step, st);
        if (krc < 0) rc = krc;
        for (int i = 0; i < n->n_outputs; i++) {
            if (krc < 0 || is_fed(x->feeds, x->n_feeds, n, i)) {
                pst_tensor_unref(outs[i]);
                continue;
            }
            x->slots[base + i].t = outs[i];
            x->slots[base + i].var = outvs[i];
            if (p->uses[base + i] == 0) { /* nobody reads it */
                pst_tensor_unref(x->slots[base + i].t);
                x->slots[base + i].t = NULL;
            }
        }
        for (int i = 0; i < n->n_inputs; i++)
            release_input(x, p->out_base[n->inputs[i].node->id] + n->inputs[i].index);
    }
    for (int i = 0; i < n->n_inputs; i++)
        if (tmp_ref[i]) pst_tensor_unref(ins[i]);
    if (ins != in_buf) {
        free(ins);
        free(invs);
        free(outs);
        free(outvs);
        free(tmp_ref);
    }
    return rc;
}

/* ---- Inter-op concurrency ----------------------------------------------------------------
 * The caller runs the plan in order, exactly as a sequential executor would: a node it
 * reaches waits for its producers, then runs. Helper threads (one pool per process) run pure
 * nodes whose producers are done ahead of the caller, so independent branches overlap.
 * Stateful nodes (variables, assignments, _Send/_Recv, optimizer updates) run only on the
 * caller, in order, so values, side effects and deadlock freedom are those of the sequential
 * order. When nodes fail, the step reports the failure earliest in that order, as a
 * sequential run would. */
typedef struct run_state {
    run_ctx x;
    int *pending;           /* per run index: producer edges not yet done */
    unsigned char *claimed; /* per run index: taken by the caller or a helper */
    int *ready;             /* helpable nodes whose producers are done, FIFO */
    int ready_head, ready_tail;
    int inflight;    /* nodes helpers are running */
    int max_helpers; /* helpers that may work on this step at once */
    int caller_at;   /* the index the caller claimed last */
    int failed_at;   /* the earliest failed index, or INT_MAX */
    pst_status err;  /* its error */
    pthread_cond_t cv;
    struct run_state *next;
} run_state;

static pthread_mutex_t io_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t io_cv = PTHREAD_COND_INITIALIZER;
static run_state *io_runs; /* steps helpers may take nodes from */
static int io_started, io_idle;

/* With io_mu held: r finished; its consumers' counts drop, and those now ready are queued
 * for the helpers (except the caller's next node, which it is about to take anyway). */
static void io_complete(run_state *R, int r, int by_caller) {
    plan *p = R->x.p;
    int next = -1;
    if (by_caller) {
        next = r + 1;
        while (next < p->n_run && (R->claimed[next] || p->skip[next])) next++;
    }
    int queued = 0;
    for (int e = p->succ_off[r]; e < p->succ_off[r + 1]; e++) {
        int c = p->succ[e];
        if (--R->pending[c] > 0) continue;
        if (c == R->caller_at) {
            pthread_cond_signal(&R->cv);
        } else if (!R->claimed[c] && p->helpable[c] && c != next) {
            R->ready[R->ready_tail++] = c;
            queued++;
        }
    }
    for (int i = 0; i < queued && i < io_idle; i++) pthread_cond_signal(&io_cv);
}

static void *io_helper_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&io_mu);
    for (;;) {
        run_state *R = NULL;
        int r = -1;
        for (R = io_runs; R; R = R->next) {
            if (R->failed_at != INT_MAX || R->inflight >= R->max_helpers) continue;
            while (R->ready_head < R->ready_tail && r < 0) {
                int c = R->ready[R->ready_head++];
                if (!R->claimed[c]) r = c;
            }
            if (r >= 0) break;
        }
        if (r < 0) {
            io_idle++;
            pthread_cond_wait(&io_cv, &io_mu);
            io_idle--;
            continue;
        }
        R->claimed[r] = 1;
        R->inflight++;
        pthread_mutex_unlock(&io_mu);
        pst_status kst = {0};
        int rc = exec_node(&R->x, r, &kst);
        pthread_mutex_lock(&io_mu);
        if (rc < 0) {
            if (r < R->failed_at) {
                R->failed_at = r;
                R->err = kst;
            }
        } else {
            atomic_fetch_add(&R->x.s->helper_nodes, 1);
            io_complete(R, r, 0);
        }
        R->inflight--;
        pthread_cond_signal(&R->cv);
    }
    return NULL;
}

/* Starts helpers up to n (never stops them: they sleep when there is nothing to do). */
static void io_ensure_helpers(int n) {
    while (io_started < n) {
        pthread_t th;
        if (pthread_create(&th, NULL, io_helper_main, NULL) != 0) break;
        pthread_detach(th);
        io_started++;
    }
}

static int run_concurrent(run_ctx *x, int helpers, pst_status *st) {
    plan *p = x->p;
    int nr = p->n_run;
    run_state R = {.x = *x, .max_helpers = helpers, .caller_at = -1, .failed_at = INT_MAX};
    R.pending = malloc(((size_t)nr + 1) * sizeof(int));
    R.claimed = calloc((size_t)nr + 1, 1);
    R.ready = malloc(((size_t)nr + 1) * sizeof(int));
    PST_ASSERT(R.pending && R.claimed && R.ready);
    memcpy(R.pending, p->n_deps, (size_t)nr * sizeof(int));
    pthread_cond_init(&R.cv, NULL);
    int first = 0;
    while (first < nr && p->skip[first]) first++;
    pthread_mutex_lock(&io_mu);
    io_ensure_helpers(helpers);
    for (int r = first + 1; r < nr; r++)
        if (p->helpable[r] && R.pending[r] == 0) R.ready[R.ready_tail++] = r;
    R.next = io_runs;
    io_runs = &R;
    for (int i = 0; i < R.ready_tail && i < io_idle; i++) pthread_cond_signal(&io_cv);
    for (int r = first; r < nr; r++) {
        if (R.failed_at < r) break;
        if (p->skip[r] || R.claimed[r]) continue;
        R.claimed[r] = 1;
        R.caller_at = r;
        while (R.pending[r] > 0 && R.failed_at > r) pthread_cond_wait(&R.cv, &io_mu);
        if (R.failed_at < r) break;
        pthread_mutex_unlock(&io_mu);
        pst_status kst = {0};
        int rc = exec_node(x, r, &kst);
        pthread_mutex_lock(&io_mu);
        if (rc < 0) {
            if (r < R.failed_at) {
                R.failed_at = r;
                R.err = kst;
            }
            break;
        }
        io_complete(&R, r, 1);
    }
    R.caller_at = -1;
    while (R.inflight > 0) pthread_cond_wait(&R.cv, &io_mu);
    run_state **pp = &io_runs;
    while (*pp != &R) pp = &(*pp)->next;
    *pp = R.next;
    pthread_mutex_unlock(&io_mu);
    int rc = 0;
    if (R.failed_at != INT_MAX) {
        rc = R.err.code ? R.err.code : PST_E_INTERNAL;
        if (st) *st = R.err;
    }
    pthread_cond_destroy(&R.cv);
    free(R.pending);
    free(R.claimed);
    free(R.ready);
    return rc;
}

static int run_sequential(run_ctx *x, pst_status *st) {
    for (int r = 0; r < x->p->n_run; r++) {
        if (x->p->skip[r]) continue;
        int rc = exec_node(x, r, st);
        if (rc < 0) return rc;
    }
    return 0;
}

static atomic_int default_inter_op; /* 0: not set */

void pst_session_set_default_inter_op_threads(int n) {
    atomic_store(&default_inter_op, n < 1 ? 1 : n > PST_INTER_OP_THREADS_MAX ? PST_INTER_OP_THREADS_MAX : n);
}

int pst_session_default_inter_op_threads(void) {
    int n = atomic_load(&default_inter_op);
    if (n > 0) return n;
    const char *e = getenv("PST_INTER_OP_THREADS");
    n = e && e[0] ? atoi(e) : PST_INTER_OP_THREADS_DEFAULT;
    return n < 1 ? 1 : n > PST_INTER_OP_THREADS_MAX ? PST_INTER_OP_THREADS_MAX : n;
}

int pst_session_run(pst_session *s, const pst_feed *feeds, int n_feeds, const pst_output *fetches,
                    int n_fetches, pst_node *const *targets, int n_targets, pst_tensor **out,
                    pst_status *st) {
    return pst_session_run_step(s, -1, feeds, n_feeds, fetches, n_fetches, targets, n_targets,
                                out, st);
}

int pst_session_run_step(pst_session *s, int64_t step_id, const pst_feed *feeds, int n_feeds,
                         const pst_output *fetches, int n_fetches, pst_node *const *targets,
                         int n_targets, pst_tensor **out, pst_status *st) {
    pst_graph *g = s->g;
    int rc = 0;
    char name[256];
    if (n_fetches > 0 && out == NULL)
        return pst_status_set(st, PST_E_INVALID, "%d fetches and no array to return them in",
                              n_fetches);
    for (int i = 0; i < n_fetches; i++) out[i] = NULL;
    if (pst_graph_error(g))
        return pst_status_set(st, pst_graph_error(g), "graph has a build error: %s",
                              pst_graph_status(g)->msg);
    for (int i = 0; i < n_fetches; i++)
        if (fetches[i].node == NULL || fetches[i].node->graph != g)
            return pst_status_set(st, PST_E_INVALID, "fetch %d is not an output of this graph", i);
    for (int i = 0; i < n_targets; i++)
        if (targets[i] == NULL || targets[i]->graph != g)
            return pst_status_set(st, PST_E_INVALID, "target %d is not a node of this graph", i);
    for (int i = 0; i < n_feeds; i++) {
        if (feeds[i].output.node == NULL || feeds[i].output.node->graph != g)
            return pst_status_set(st, PST_E_INVALID, "feed %d is not an output of this graph", i);
        if ((rc = check_feed(&feeds[i], st)) < 0) return rc;
    }
    if (pst_graph_has_control_flow(g)) {
        pst__session_ensure_state(s);
        return pst__frames_run(s, pst__session_next_step(s, step_id), feeds, n_feeds, fetches,
                               n_fetches, targets, n_targets, out, st);
    }
    plan *p = plan_get(s, feeds, n_feeds, fetches, n_fetches, targets, n_targets);
    slot *slots = calloc((size_t)p->n_slots + 1, sizeof *slots);
    atomic_int *left = malloc(((size_t)p->n_slots + 1) * sizeof *left);
    PST_ASSERT(slots && left);
    for (int i = 0; i < p->n_slots; i++) atomic_init(&left[i], p->uses[i]);
    for (int i = 0; i < n_feeds; i++) {
        int idx = p->out_base[feeds[i].output.node->id] + feeds[i].output.index;
        pst_tensor_unref(slots[idx].t);
        slots[idx].t = pst_tensor_ref(feeds[i].value);
    }
    pthread_mutex_lock(&s->mu);
    int64_t step = step_id >= 0 ? step_id : s->next_step++;
    pthread_mutex_unlock(&s->mu);

    run_ctx x = {.s = s, .p = p, .feeds = feeds, .n_feeds = n_feeds, .step = step,
                 .slots = slots, .left = left};
    /* Helpers pay off only when at least two pure nodes could overlap. */
    if (s->inter_op > 1 && p->n_helpable >= 2)
        rc = run_concurrent(&x, s->inter_op - 1, st);
    else
        rc = run_sequential(&x, st);
    if (rc == 0) {
        for (int i = 0; i < n_fetches; i++) {
            slot *sl = &slots[p->out_base[fetches[i].node->id] + fetches[i].index];
            if (sl->t)
                out[i] = pst_tensor_ref(sl->t);
            else if (sl->var) {
                out[i] = pst_var_read(sl->var);
                if (out[i] == NULL) {
                    rc = pst_var_uninit_error(sl->var->name, st);
                    break;
                }
            } else {
                rc = pst_status_set(st, PST_E_INVALID, "fetch '%s' produced no value",
                                    pst_output_name(fetches[i], name, sizeof name));
                break;
            }
        }
        if (rc)
            for (int i = 0; i < n_fetches; i++) {
                pst_tensor_unref(out[i]);
                out[i] = NULL;
            }
    }
    for (int i = 0; i < p->n_slots; i++) pst_tensor_unref(slots[i].t);
    free(slots);
    free(left);
    return rc;
}

pst_tensor *pst_session_run1(pst_session *s, pst_output fetch, pst_status *st) {
    pst_tensor *t = NULL;
    if (pst_session_run(s, NULL, 0, &fetch, 1, NULL, 0, &t, st) < 0) return NULL;
    return t;
}

int pst_session_run_target(pst_session *s, pst_node *target, pst_status *st) {
    return pst_session_run(s, NULL, 0, NULL, 0, &target, 1, NULL, st);
}
