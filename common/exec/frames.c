/*
 * frames — the executor for graphs with TensorFlow 1.x control flow (see session_internal.h).
 *
 * Every value is tagged with a frame (the root, or one execution of a while loop's body frame,
 * itself inside a parent frame's iteration) and an iteration. A node runs in a (frame,
 * iteration) once every input and control input has arrived there; when one of them is dead
 * (it comes from the untaken output of a Switch) the node does not run and its outputs are
 * dead too, except:
 *   Switch         sends its data to output 1 (pred true) or 0, the other output dead;
 *   Merge          fires on the first live input (output 1 its index), dead when all inputs
 *                  that can arrive in this iteration arrived dead;
 *   Enter          sends its input into the child frame named by frame_name, iteration 0 (a
 *                  constant Enter to every iteration of it);
 *   NextIteration  sends its input to the next iteration of its frame (dead values stop);
 *   Exit           sends its input to the parent frame's iteration (dead values stop);
 *   ControlTrigger runs even when its control inputs are dead.
 * Nodes run one at a time in arrival order on the calling thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "session_internal.h"
#include "varstore.h"

enum { K_NORMAL, K_SWITCH, K_MERGE, K_ENTER, K_EXIT, K_NEXT, K_PASS, K_TRIGGER };

typedef struct fslot {
    pst_tensor *t;
    pst_var *var;
    unsigned char dead, arrived;
} fslot;

typedef struct iter_state {
    int *pending;          /* per node: arrivals still awaited */
    int *dead;             /* per node: dead arrivals */
    unsigned char *fired;  /* per node: ran (or was skipped as dead) in this iteration */
    fslot *in;             /* per input slot (in_base[node] + i) */
} iter_state;

typedef struct inv {
    int node, input;
    pst_tensor *t;
    pst_var *var;
} inv;

typedef struct frame {
    const char *name;
    struct frame *parent;
    int parent_iter;
    iter_state **iters;
    int n_iters;
    inv *invs; /* loop invariants: values of constant Enters, for every iteration */
    int n_inv, cap_inv;
    struct frame *next;
} frame;

typedef struct edge {
    int to, input, port; /* input -1: a control edge (port -1) */
} edge;

typedef struct item {
    frame *f;
    int iter, node;
} item;

typedef struct fx {
    pst_session *s;
    pst_graph *g;
    int nn;
    int64_t step;
    const pst_feed *feeds;
    int n_feeds;
    char *need;
    unsigned char *kind;
    int *in_base, n_slots;
    int *expect, *n_fwd, *n_back;
    int *e_off;
    edge *edges;
    frame *frames, *root;
    item *q;
    int qh, qt, qcap;
    const pst_output *fetches;
    int n_fetches;
    pst_tensor **fetch_out;
    unsigned char *fetch_got, *fetch_dead, *ran_root;
    pst_status *st;
    int rc;
} fx;

static int kind_of(const pst_node *n) {
    const char *op = n->op->name;
    if (!(n->op->flags & PST_OP_CONTROL_FLOW)) return K_NORMAL;
    if (strstr(op, "Switch")) return K_SWITCH;
    if (strstr(op, "Merge")) return K_MERGE;
    if (strstr(op, "Enter")) return K_ENTER;
    if (strstr(op, "Exit")) return K_EXIT;
    if (strstr(op, "NextIteration")) return K_NEXT;
    if (strcmp(op, "ControlTrigger") == 0) return K_TRIGGER;
    return K_PASS; /* LoopCond */
}

static int is_fed(const fx *x, const pst_node *n, int idx) {
    for (int i = 0; i < x->n_feeds; i++)
        if (x->feeds[i].output.node == n && x->feeds[i].output.index == idx) return i + 1;
    return 0;
}

/* ---- Plan: the needed nodes (a worklist: loops have back edges), slots and edges -------- */
static void build(fx *x, pst_node *const *targets, int nt) {
    int nn = x->nn;
    x->need = calloc((size_t)nn + 1, 1);
    int *work = malloc(((size_t)nn + 1) * sizeof *work), nw = 0;
    PST_ASSERT(x->need && work);
    for (int i = 0; i < x->n_fetches; i++)
        if (!is_fed(x, x->fetches[i].node, x->fetches[i].index) && !x->need[x->fetches[i].node->id])
            x->need[x->fetches[i].node->id] = 1, work[nw++] = x->fetches[i].node->id;
    for (int i = 0; i < nt; i++)
        if (!x->need[targets[i]->id]) x->need[targets[i]->id] = 1, work[nw++] = targets[i]->id;
    while (nw > 0) {
        pst_node *n = pst_graph_node(x->g, work[--nw]);
        for (int i = 0; i < n->n_inputs + n->n_control; i++) {
            pst_node *src = i < n->n_inputs ? n->inputs[i].node : n->control_inputs[i - n->n_inputs];
            if (i < n->n_inputs && is_fed(x, src, n->inputs[i].index)) continue;
            if (!x->need[src->id]) x->need[src->id] = 1, work[nw++] = src->id;
        }
    }
    free(work);
    x->kind = calloc((size_t)nn + 1, 1);
    x->in_base = calloc((size_t)nn + 1, sizeof(int));
    x->expect = calloc((size_t)nn + 1, sizeof(int));
    x->n_fwd = calloc((size_t)nn + 1, sizeof(int));
    x->n_back = calloc((size_t)nn + 1, sizeof(int));
    x->e_off = calloc((size_t)nn + 2, sizeof(int));
    PST_ASSERT(x->kind && x->in_base && x->expect && x->n_fwd && x->n_back && x->e_off);
    for (int id = 0; id < nn; id++) {
        pst_node *n = pst_graph_node(x->g, id);
        x->in_base[id] = x->n_slots;
        x->n_slots += n->n_inputs;
        if (!x->need[id]) continue;
        x->kind[id] = (unsigned char)kind_of(n);
        for (int i = 0; i < n->n_inputs; i++) {
            if (is_fed(x, n->inputs[i].node, n->inputs[i].index)) continue;
            x->expect[id]++;
            if (pst_node_input_is_back_edge(n, i)) x->n_back[id]++;
            else x->n_fwd[id]++;
            x->e_off[n->inputs[i].node->id + 1]++;
        }
        x->expect[id] += n->n_control;
        for (int i = 0; i < n->n_control; i++) x->e_off[n->control_inputs[i]->id + 1]++;
    }
    for (int id = 0; id < nn; id++) x->e_off[id + 1] += x->e_off[id];
    x->edges = malloc(((size_t)x->e_off[nn] + 1) * sizeof *x->edges);
    int *fill = malloc(((size_t)nn + 1) * sizeof *fill);
    PST_ASSERT(x->edges && fill);
    memcpy(fill, x->e_off, (size_t)nn * sizeof *fill);
    for (int id = 0; id < nn; id++) {
        if (!x->need[id]) continue;
        pst_node *n = pst_graph_node(x->g, id);
        for (int i = 0; i < n->n_inputs; i++)
            if (!is_fed(x, n->inputs[i].node, n->inputs[i].index))
                x->edges[fill[n->inputs[i].node->id]++] = (edge){id, i, n->inputs[i].index};
        for (int i = 0; i < n->n_control; i++)
            x->edges[fill[n->control_inputs[i]->id]++] = (edge){id, -1, -1};
    }
    free(fill);
}

/* ---- Frames and iterations ------------------------------------------------------------- */
static void deliver(fx *x, frame *f, int it, int c, int input, pst_tensor *t, pst_var *var,
                    int dead);

static iter_state *iteration(fx *x, frame *f, int it) {
    while (f->n_iters <= it) {
        f->iters = realloc(f->iters, (size_t)(f->n_iters + 1) * sizeof *f->iters);
        PST_ASSERT(f->iters != NULL);
        iter_state *is = calloc(1, sizeof *is);
        PST_ASSERT(is != NULL);
        is->pending = malloc(((size_t)x->nn + 1) * sizeof(int));
        is->dead = calloc((size_t)x->nn + 1, sizeof(int));
        is->fired = calloc((size_t)x->nn + 1, 1);
        is->in = calloc((size_t)x->n_slots + 1, sizeof *is->in);
        PST_ASSERT(is->pending && is->dead && is->fired && is->in);
        memcpy(is->pending, x->expect, (size_t)x->nn * sizeof(int));
        f->iters[f->n_iters++] = is;
        int k = f->n_iters - 1;
        for (int i = 0; k > 0 && i < f->n_inv; i++)
            deliver(x, f, k, f->invs[i].node, f->invs[i].input, f->invs[i].t, f->invs[i].var, 0);
    }
    return f->iters[it];
}

static frame *child_frame(fx *x, frame *parent, int it, const char *name) {
    for (frame *f = x->frames; f; f = f->next)
        if (f->parent == parent && f->parent_iter == it && strcmp(f->name, name) == 0) return f;
    frame *f = calloc(1, sizeof *f);
    PST_ASSERT(f != NULL);
    f->name = name;
    f->parent = parent;
    f->parent_iter = it;
    f->next = x->frames;
    x->frames = f;
    iteration(x, f, 0);
    return f;
}

static void enqueue(fx *x, frame *f, int it, int node) {
    if (x->qt == x->qcap) {
        if (x->qh > 0) {
            memmove(x->q, x->q + x->qh, (size_t)(x->qt - x->qh) * sizeof *x->q);
            x->qt -= x->qh;
            x->qh = 0;
        }
        if (x->qt == x->qcap) {
            x->qcap = x->qcap ? x->qcap * 2 : 256;
            x->q = realloc(x->q, (size_t)x->qcap * sizeof *x->q);
            PST_ASSERT(x->q != NULL);
        }
    }
    x->q[x->qt++] = (item){f, it, node};
}

static void emit(fx *x, frame *f, int it, int n, int port, pst_tensor *t, pst_var *var, int dead);

static void fire_merge(fx *x, frame *f, int it, int c, int input, int dead) {
    iter_state *is = f->iters[it];
    is->fired[c] = 1;
    if (dead) {
        emit(x, f, it, c, 0, NULL, NULL, 1);
        emit(x, f, it, c, 1, NULL, NULL, 1);
        emit(x, f, it, c, -1, NULL, NULL, 1);
        return;
    }
    fslot *sl = &is->in[x->in_base[c] + input];
    pst_tensor *idx = pst_tensor_scalar_i32(input);
    emit(x, f, it, c, 0, sl->t, sl->var, 0);
    emit(x, f, it, c, 1, idx, NULL, 0);
    emit(x, f, it, c, -1, NULL, NULL, 0);
    pst_tensor_unref(idx);
    pst_tensor_unref(sl->t);
    sl->t = NULL;
}

static void deliver(fx *x, frame *f, int it, int c, int input, pst_tensor *t, pst_var *var,
                    int dead) {
    iter_state *is = iteration(x, f, it);
    if (is->fired[c]) return; /* a Merge that already fired */
    if (input >= 0) {
        fslot *sl = &is->in[x->in_base[c] + input];
        pst_tensor_unref(sl->t);
        *sl = (fslot){pst_tensor_ref(t), var, (unsigned char)dead, 1};
    }
    if (x->kind[c] == K_MERGE) {
        if (input < 0) return;
        if (!dead) {
            fire_merge(x, f, it, c, input, 0);
            return;
        }
        int expected = x->n_back[c] && it > 0 ? x->n_back[c] : x->n_fwd[c];
        if (++is->dead[c] >= expected) fire_merge(x, f, it, c, input, 1);
        return;
    }
    if (dead) is->dead[c]++;
    if (--is->pending[c] == 0) enqueue(x, f, it, c);
}

/* Sends output `port` of node n (port -1: its control edges) from (f, it) to its consumers,
 * through frames as n's kind says. t is borrowed. */
static void emit(fx *x, frame *f, int it, int n, int port, pst_tensor *t, pst_var *var, int dead) {
    pst_node *node = pst_graph_node(x->g, n);
    int k = x->kind[n];
    frame *tf = f;
    int ti = it;
    if (k == K_ENTER) {
        tf = child_frame(x, f, it, pst_node_attr_s(node, "frame_name", ""));
        ti = 0;
    } else if (k == K_EXIT) {
        if (dead || f->parent == NULL) return;
        tf = f->parent;
        ti = f->parent_iter;
    } else if (k == K_NEXT) {
        if (dead) return;
        ti = it + 1;
    }
    /* A fetch is the value its node leaves in the root frame (an Exit's, after its loop). */
    if (tf == x->root && ti == 0 && port >= 0) {
        for (int i = 0; i < x->n_fetches; i++)
            if (x->fetches[i].node == node && x->fetches[i].index == port && !x->fetch_got[i]) {
                x->fetch_got[i] = 1;
                x->fetch_dead[i] = (unsigned char)dead;
                x->fetch_out[i] = t ? pst_tensor_ref(t) : (var ? pst_var_read(var) : NULL);
            }
    }
    if (port >= 0 && is_fed(x, node, port)) return;
    int constant = k == K_ENTER && !dead && port >= 0 && pst_node_attr_b(node, "is_constant", 0);
    for (int e = x->e_off[n]; e < x->e_off[n + 1] && x->rc == 0; e++) {
        edge ed = x->edges[e];
        if (ed.port != port) continue;
        if (constant) {
            if (tf->n_inv == tf->cap_inv) {
                tf->cap_inv = tf->cap_inv ? tf->cap_inv * 2 : 8;
                tf->invs = realloc(tf->invs, (size_t)tf->cap_inv * sizeof *tf->invs);
                PST_ASSERT(tf->invs != NULL);
            }
            tf->invs[tf->n_inv++] = (inv){ed.to, ed.input, pst_tensor_ref(t), var};
            for (int j = 1; j < tf->n_iters; j++) deliver(x, tf, j, ed.to, ed.input, t, var, 0);
        }
        deliver(x, tf, ti, ed.to, ed.input, t, var, dead);
    }
}

/* ---- Running one node ------------------------------------------------------------------ */
static void release_inputs(fx *x, iter_state *is, pst_node *n) {
    for (int i = 0; i < n->n_inputs; i++) {
        fslot *sl = &is->in[x->in_base[n->id] + i];
        pst_tensor_unref(sl->t);
        sl->t = NULL;
        sl->var = NULL;
    }
}

static void run_item(fx *x, item w) {
    pst_node *n = pst_graph_node(x->g, w.node);
    iter_state *is = w.f->iters[w.iter];
    fslot *in = &is->in[x->in_base[n->id]];
    int k = x->kind[n->id], dead = is->dead[n->id] > 0;
    is->fired[n->id] = 1;
    if (w.f == x->root && w.iter == 0) x->ran_root[n->id] = 1;
    /* Fed inputs of the root frame were placed when its iteration began. */
    if (k == K_TRIGGER) {
        emit(x, w.f, w.iter, n->id, -1, NULL, NULL, 0);
    } else if (dead) {
        for (int i = 0; i < n->n_outputs; i++) emit(x, w.f, w.iter, n->id, i, NULL, NULL, 1);
        emit(x, w.f, w.iter, n->id, -1, NULL, NULL, 1);
    } else if (k == K_SWITCH) {
        int pred = in[1].t && in[1].t->n > 0 && pst_tensor_u8(in[1].t)[0];
        emit(x, w.f, w.iter, n->id, pred ? 1 : 0, in[0].t, in[0].var, 0);
        emit(x, w.f, w.iter, n->id, pred ? 0 : 1, NULL, NULL, 1);
        emit(x, w.f, w.iter, n->id, -1, NULL, NULL, 0);
    } else if (k != K_NORMAL) { /* Enter, Exit, NextIteration, LoopCond */
        emit(x, w.f, w.iter, n->id, 0, in[0].t, in[0].var, 0);
        emit(x, w.f, w.iter, n->id, -1, NULL, NULL, 0);
    } else {
        int ni = n->n_inputs, no = n->n_outputs, m = (ni > no ? ni : no) + 1;
        pst_tensor **ins = calloc((size_t)m, sizeof *ins), **outs = calloc((size_t)m, sizeof *outs);
        pst_var **invs = calloc((size_t)m, sizeof *invs), **outvs = calloc((size_t)m, sizeof *outvs);
        char *tmp = calloc((size_t)m, 1);
        PST_ASSERT(ins && outs && invs && outvs && tmp);
        for (int i = 0; i < ni && x->rc == 0; i++) {
            ins[i] = in[i].t;
            if (i < 32 && ((pst_op_ref_mask(n->op) >> i) & 1) && in[i].var) {
                invs[i] = in[i].var;
                ins[i] = NULL;
            } else if (in[i].t == NULL && in[i].var) {
                ins[i] = pst_var_read(in[i].var);
                tmp[i] = 1;
                if (ins[i] == NULL) {
                    x->rc = pst_var_uninit_error(in[i].var->name, x->st);
                    pst_status_prefix(x->st, "node '%s' (%s): ", n->name, n->op->name);
                }
            } else if (in[i].t == NULL) {
                x->rc = pst_status_set(x->st, PST_E_INTERNAL, "node '%s' (%s): input %d has no "
                                       "value", n->name, n->op->name, i);
            }
        }
        if (x->rc == 0) {
            int rc = pst__session_call_kernel(x->s, n, ins, invs, outs, outvs, x->step, x->st);
            if (rc < 0) {
                x->rc = rc;
            } else {
                for (int i = 0; i < no; i++) emit(x, w.f, w.iter, n->id, i, outs[i], outvs[i], 0);
                emit(x, w.f, w.iter, n->id, -1, NULL, NULL, 0);
            }
        }
        for (int i = 0; i < ni; i++)
            if (tmp[i]) pst_tensor_unref(ins[i]);
        for (int i = 0; i < no; i++) pst_tensor_unref(outs[i]);
        free(ins), free(outs), free(invs), free(outvs), free(tmp);
    }
    release_inputs(x, is, n);
}

static void free_all(fx *x) {
    for (frame *f = x->frames, *nx; f; f = nx) {
        nx = f->next;
        for (int i = 0; i < f->n_iters; i++) {
            iter_state *is = f->iters[i];
            for (int k = 0; k < x->n_slots; k++) pst_tensor_unref(is->in[k].t);
            free(is->pending), free(is->dead), free(is->fired), free(is->in), free(is);
        }
        for (int i = 0; i < f->n_inv; i++) pst_tensor_unref(f->invs[i].t);
        free(f->iters), free(f->invs), free(f);
    }
    free(x->need), free(x->kind), free(x->in_base), free(x->expect), free(x->n_fwd);
    free(x->n_back), free(x->e_off), free(x->edges), free(x->q), free(x->fetch_got);
    free(x->fetch_dead), free(x->ran_root);
}

int pst__frames_run(pst_session *s, int64_t step, const pst_feed *feeds, int n_feeds,
                    const pst_output *fetches, int n_fetches, pst_node *const *targets,
                    int n_targets, pst_tensor **out, pst_status *st) {
    fx x = {.s = s, .g = pst_session_graph(s), .step = step, .feeds = feeds, .n_feeds = n_feeds,
            .fetches = fetches, .n_fetches = n_fetches, .fetch_out = out, .st = st};
    x.nn = pst_graph_num_nodes(x.g);
    build(&x, targets, n_targets);
    x.fetch_got = calloc((size_t)n_fetches + 1, 1);
    x.fetch_dead = calloc((size_t)n_fetches + 1, 1);
    x.ran_root = calloc((size_t)x.nn + 1, 1);
    PST_ASSERT(x.fetch_got && x.fetch_dead && x.ran_root);
    x.root = child_frame(&x, NULL, 0, "");
    iter_state *r0 = x.root->iters[0];
    for (int id = 0; id < x.nn; id++) {
        if (!x.need[id]) continue;
        pst_node *n = pst_graph_node(x.g, id);
        for (int i = 0; i < n->n_inputs; i++) {
            int f = is_fed(&x, n->inputs[i].node, n->inputs[i].index);
            if (f) r0->in[x.in_base[id] + i] = (fslot){pst_tensor_ref(feeds[f - 1].value), NULL, 0, 1};
        }
    }
    for (int i = 0; i < n_fetches; i++) {
        int f = is_fed(&x, fetches[i].node, fetches[i].index);
        if (f) {
            x.fetch_got[i] = 1;
            out[i] = pst_tensor_ref(feeds[f - 1].value);
        }
    }
    for (int id = 0; id < x.nn; id++)
        if (x.need[id] && x.expect[id] == 0 && x.kind[id] != K_MERGE) enqueue(&x, x.root, 0, id);
    while (x.qh < x.qt && x.rc == 0) run_item(&x, x.q[x.qh++]);
    char name[256];
    for (int i = 0; i < n_fetches && x.rc == 0; i++) {
        if (!x.fetch_got[i] || x.fetch_dead[i] || out[i] == NULL)
            x.rc = pst_status_set(st, PST_E_INVALID, "fetch '%s' %s", pst_output_name(fetches[i], name, sizeof name),
                                  x.fetch_dead[i] ? "is on a branch not taken (a dead tensor)"
                                                  : "was never computed (its inputs never all "
                                                    "arrived: an unfinished loop or a dead branch)");
    }
    for (int i = 0; i < n_targets && x.rc == 0; i++)
        if (!x.ran_root[targets[i]->id])
            x.rc = pst_status_set(st, PST_E_INVALID, "target '%s' never ran (its inputs never all "
                                  "arrived)", targets[i]->name);
    if (x.rc < 0)
        for (int i = 0; i < n_fetches; i++) {
            pst_tensor_unref(out[i]);
            out[i] = NULL;
        }
    free_all(&x);
    return x.rc;
}
