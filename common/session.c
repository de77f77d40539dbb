#include "session.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"

typedef struct plan {
    char *key;
    int n_graph_nodes; /* graph size the plan was made for */
    int n_run;
    int *run;          /* node ids to execute, ascending */
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
    prof_entry prof[128];
    int n_prof;
    pst_graph *g;
    pst_var_store *vars;
    int owns_vars;
    void *exec;
    pthread_mutex_t mu; /* plans and node states */
    plan **plans;
    int n_plans, cap_plans;
    void **state;
    int n_state;
    pthread_mutex_t state_mu; /* serializes stateful kernels with state */
    int64_t next_step;
};

pst_session *pst_session_new(pst_graph *g, const pst_session_opts *opts, pst_status *st) {
    (void)st;
    pst_session *s = calloc(1, sizeof *s);
    PST_ASSERT(s != NULL);
    s->g = g;
    if (opts && opts->vars) {
        s->vars = opts->vars;
    } else {
        s->vars = pst_var_store_new();
        s->owns_vars = 1;
    }
    s->exec = opts ? opts->exec : NULL;
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
    free(p->uses);
    free(p->out_base);
    free(p);
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
    free(s);
}

pst_var_store *pst_session_vars(pst_session *s) { return s->vars; }
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

static void release_input(slot *slots, int *left, int idx) {
    if (--left[idx] == 0) {
        pst_tensor_unref(slots[idx].t);
        slots[idx].t = NULL;
    }
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
    plan *p = plan_get(s, feeds, n_feeds, fetches, n_fetches, targets, n_targets);
    slot *slots = calloc((size_t)p->n_slots + 1, sizeof *slots);
    int *left = malloc(((size_t)p->n_slots + 1) * sizeof(int));
    PST_ASSERT(slots && left);
    memcpy(left, p->uses, (size_t)p->n_slots * sizeof(int));
    for (int i = 0; i < n_feeds; i++) {
        int idx = p->out_base[feeds[i].output.node->id] + feeds[i].output.index;
        pst_tensor_unref(slots[idx].t);
        slots[idx].t = pst_tensor_ref(feeds[i].value);
    }
    pthread_mutex_lock(&s->mu);
    int64_t step = step_id >= 0 ? step_id : s->next_step++;
    pthread_mutex_unlock(&s->mu);

    pst_tensor *in_buf[64], **ins = in_buf;
    pst_var *inv_buf[64], **invs = inv_buf;
    pst_tensor *out_buf[64], **outs = out_buf;
    pst_var *outv_buf[64], **outvs = outv_buf;
    char tmp_buf[64], *tmp_ref = tmp_buf;
    int max_io = 64;
    for (int r = 0; r < p->n_run && rc == 0; r++) {
        pst_node *n = pst_graph_node(g, p->run[r]);
        const pst_op_def *op = n->op;
        if (n->n_inputs > max_io || n->n_outputs > max_io) {
            int m = n->n_inputs > n->n_outputs ? n->n_inputs : n->n_outputs;
            if (ins != in_buf) {
                free(ins);
                free(invs);
                free(outs);
                free(outvs);
                free(tmp_ref);
            }
            tmp_ref = malloc((size_t)m);
            ins = malloc((size_t)m * sizeof *ins);
            invs = malloc((size_t)m * sizeof *invs);
            outs = malloc((size_t)m * sizeof *outs);
            outvs = malloc((size_t)m * sizeof *outvs);
            PST_ASSERT(ins && invs && outs && outvs);
            max_io = m;
        }
        int base = p->out_base[n->id];
        int all_fed = n->n_outputs > 0;
        for (int i = 0; i < n->n_outputs; i++)
            if (!is_fed(feeds, n_feeds, n, i)) all_fed = 0;
        if (all_fed) continue;
        memset(tmp_ref, 0, (size_t)n->n_inputs);
        for (int i = 0; i < n->n_inputs; i++) {
            pst_output in = n->inputs[i];
            slot *sl = &slots[p->out_base[in.node->id] + in.index];
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
        if (rc) {
            for (int i = 0; i < n->n_inputs; i++)
                if (tmp_ref[i]) pst_tensor_unref(ins[i]);
            break;
        }
        for (int i = 0; i < n->n_outputs; i++) {
            outs[i] = NULL;
            outvs[i] = NULL;
        }
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
            double t0 = now_sec();
            krc = op->kernel(&ctx);
            prof_add(s, op->name, now_sec() - t0);
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
        if (krc < 0) {
            rc = krc;
            pst_status_set(st, krc, "node '%s' (%s): %s", n->name, op->name,
                           kst.msg[0] ? kst.msg : pst_strerror(krc));
        }
        for (int i = 0; i < n->n_outputs; i++) {
            if (krc < 0 || is_fed(feeds, n_feeds, n, i)) {
                pst_tensor_unref(outs[i]);
                continue;
            }
            slots[base + i].t = outs[i];
            slots[base + i].var = outvs[i];
            if (p->uses[base + i] == 0) { /* nobody reads it */
                pst_tensor_unref(slots[base + i].t);
                slots[base + i].t = NULL;
            }
        }
        for (int i = 0; i < n->n_inputs; i++) {
            if (tmp_ref[i]) pst_tensor_unref(ins[i]);
            release_input(slots, left, p->out_base[n->inputs[i].node->id] + n->inputs[i].index);
        }
    }
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
    if (ins != in_buf) {
        free(ins);
        free(invs);
        free(outs);
        free(outvs);
        free(tmp_ref);
    }
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
