#include "optimizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedding.h"
#include "gradients.h"
#include "init.h"
#include "ops.h"

pst_optimizer_opts pst_optimizer_defaults(pst_opt_kind kind, float lr) {
    pst_optimizer_opts o = {.kind = kind,
                            .lr = lr,
                            .momentum = kind == PST_OPT_MOMENTUM ? 0.9f : 0.0f,
                            .beta1 = 0.9f,
                            .beta2 = 0.999f,
                            .epsilon = 1e-8f,
                            .initial_accumulator = 0.1f,
                            .rho = 0.9f,
                            .rms_epsilon = 1e-10f};
    return o;
}

int pst_optimizer_kind_parse(const char *s) {
    static const char *names[] = {"sgd", "momentum", "adam", "adagrad", "rmsprop"};
    for (int i = 0; i < PST_OPT_COUNT; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *pst_optimizer_name(pst_opt_kind kind) {
    static const char *names[] = {"GradientDescent", "Momentum", "Adam", "Adagrad", "RMSProp"};
    return (kind >= 0 && kind < PST_OPT_COUNT) ? names[kind] : "Optimizer";
}

/* 1 when the variable's value (its read) feeds `consumer` and nothing else, so a gradient
 * through that op is the variable's whole gradient. */
static int read_only_by(const pst_graph *g, pst_output var, const pst_node *consumer) {
    pst_node *rd = pst_variable_value(var).node;
    int other = 0, mine = 0;
    for (int i = 0; i < pst_graph_num_nodes(g); i++) {
        const pst_node *n = pst_graph_node(g, i);
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k].node == rd) {
                if (n == consumer)
                    mine++;
                else
                    other++;
            }
    }
    return mine > 0 && other == 0;
}

int pst_optimizer_compute_gradients(pst_graph *g, pst_output loss, int n_vars,
                                    const pst_output *vars, pst_grad_var **out, pst_status *st) {
    if (vars == NULL) vars = pst_graph_collection(g, PST_TRAINABLE_VARIABLES, &n_vars);
    *out = NULL;
    if (n_vars == 0)
        return pst_status_set(st, PST_E_INVALID, "no variables to optimize");
    pst_output *dx = calloc((size_t)n_vars, sizeof *dx), *xs = calloc((size_t)n_vars, sizeof *xs);
    pst_grad_var *gv = calloc((size_t)n_vars, sizeof *gv);
    PST_ASSERT(dx && gv && xs);
    for (int i = 0; i < n_vars; i++) {
        /* A part read only by an embedding lookup: differentiate w.r.t. the gathered rows. */
        pst_output rows, ids;
        xs[i] = vars[i];
        gv[i].var = vars[i];
        if (pst_embedding_sparse_read(g, vars[i], &rows, &ids) &&
            read_only_by(g, vars[i], rows.node)) {
            xs[i] = rows;
            gv[i].sparse_ids = ids;
        }
    }
    int rc = pst_gradients(g, 1, &loss, NULL, n_vars, xs, dx, NULL, st);
    if (rc < 0) {
        free(dx);
        free(xs);
        free(gv);
        return rc;
    }
    for (int i = 0; i < n_vars; i++) gv[i].grad = dx[i];
    free(dx);
    free(xs);
    *out = gv;
    return n_vars;
}

/* The dense gradient of a part from the gradient of its gathered rows. */
static pst_output densify(pst_graph *g, pst_output rows_grad, pst_output ids, pst_output var) {
    pst_node_builder *b = pst_nb_new(g, "PstGatherGrad", "densify");
    pst_nb_input(b, rows_grad);
    pst_nb_input(b, ids);
    pst_nb_input(b, pst_variable_value(var));
    pst_nb_input(b, pst_const_i32(g, 0, "axis"));
    return pst_nb_finish_out(b);
}

/* A slot variable `<var>/<suffix>` on the variable's device, filled with `value`. */
static pst_output slot(pst_graph *g, pst_output var, const char *suffix, double value) {
    char name[512];
    snprintf(name, sizeof name, "%s/%s", var.node->name, suffix);
    /* Zero slots as TensorFlow's create_zeros_slot makes them (a "zeros" Fill). */
    pst_initializer init = value == 0 ? pst_init_zeros() : pst_init_constant(value);
    pst_variable_opts o = {.name = name,
                           .dtype = pst_output_dtype(var),
                           .shape = pst_output_shape(var),
                           .init_fn = pst_init_fn_of,
                           .init_ctx = &init,
                           .device = var.node->device};
    pst_graph_push_name_scope_abs(g, "");
    pst_output s = pst_variable_ex(g, &o);
    pst_graph_pop_name_scope(g);
    /* The slot of a part of a partitioned variable is the same part of the full slot, saved
     * as a slice of `<full name>/<suffix>` (as TensorFlow does), so it re-slices on restore. */
    const char *full = pst_node_attr_s(var.node, "_save_slice_full_name", NULL);
    if (s.node && full) {
        char fname[600];
        snprintf(fname, sizeof fname, "%s/%s", full, suffix);
        const char *keys[3] = {"_save_slice_full_shape", "_save_slice_var_offset",
                               "_save_slice_var_shape"};
        pst_node *n = s.node;
        n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 4) * sizeof *n->attrs);
        PST_ASSERT(n->attrs != NULL);
        pst_attr fa = {.name = "_save_slice_full_name", .kind = PST_ATTR_STRING};
        fa.v.s = fname;
        pst_attr_copy(&n->attrs[n->n_attrs++], &fa, NULL);
        for (int k = 0; k < 3; k++) {
            const pst_attr *a = pst_node_attr(var.node, keys[k]);
            if (a) pst_attr_copy(&n->attrs[n->n_attrs++], a, NULL);
        }
    }
    return s;
}

static pst_output non_slot(pst_graph *g, const char *name, pst_output colocate, double value) {
    pst_graph_push_name_scope_abs(g, "");
    pst_variable_opts o = {.name = name,
                           .initial_value = pst_const_scalar(g, pst_output_dtype(colocate), value,
                                                             NULL),
                           .device = colocate.node->device};
    pst_output v = pst_variable_ex(g, &o);
    pst_graph_pop_name_scope(g);
    return v;
}

/* The synchronous form of one variable's update (see pst_sync_apply): the same inputs as the
 * asynchronous apply op plus the replica's step. */
static pst_output sync_update(pst_graph *g, const pst_optimizer_opts *o, pst_output v,
                              pst_output lr, pst_output gr, pst_output local_step,
                              pst_output b1p, pst_output b2p) {
    pst_dtype dt = pst_output_dtype(v);
    int R = o->sync_replicas, T = o->sync_total > R ? o->sync_total : R;
    switch (o->kind) {
    case PST_OPT_SGD: {
        pst_output in[3] = {v, lr, gr};
        return pst_sync_apply(g, "ApplyGradientDescent", 3, in, local_step, R, T, 0, o->sync_last_step,
                              "SyncApplyGradientDescent");
    }
    case PST_OPT_MOMENTUM: {
        pst_output in[5] = {v, slot(g, v, "Momentum", 0), lr, gr,
                            pst_const_scalar(g, dt, o->momentum, "momentum")};
        return pst_sync_apply(g, "ApplyMomentum", 5, in, local_step, R, T, o->use_nesterov, o->sync_last_step,
                              "SyncApplyMomentum");
    }
    case PST_OPT_ADAM: {
        pst_output in[10] = {v, slot(g, v, "Adam", 0), slot(g, v, "Adam_1", 0),
                             pst_variable_value(b1p), pst_variable_value(b2p), lr,
                             pst_const_scalar(g, dt, o->beta1, "beta1"),
                             pst_const_scalar(g, dt, o->beta2, "beta2"),
                             pst_const_scalar(g, dt, o->epsilon, "epsilon"), gr};
        return pst_sync_apply(g, "ApplyAdam", 10, in, local_step, R, T, 0, o->sync_last_step,
                              "SyncApplyAdam");
    }
    case PST_OPT_ADAGRAD: {
        pst_output in[4] = {v, slot(g, v, "Adagrad", o->initial_accumulator), lr, gr};
        return pst_sync_apply(g, "ApplyAdagrad", 4, in, local_step, R, T, 0, o->sync_last_step,
                              "SyncApplyAdagrad");
    }
    case PST_OPT_RMSPROP: {
        pst_output in[8] = {v, slot(g, v, "RMSProp", 1.0), slot(g, v, "RMSProp_1", 0), lr,
                            pst_const_scalar(g, dt, o->rho, "decay"),
                            pst_const_scalar(g, dt, o->momentum, "momentum"),
                            pst_const_scalar(g, dt, o->rms_epsilon, "epsilon"), gr};
        return pst_sync_apply(g, "ApplyRMSProp", 8, in, local_step, R, T, 0, o->sync_last_step,
                              "SyncApplyRMSProp");
    }
    default:
        pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "synchronous replicas: optimizer %s",
                            pst_optimizer_name(o->kind));
        return pst_out(NULL, 0);
    }
}

pst_node *pst_optimizer_apply_gradients(pst_graph *g, const pst_optimizer_opts *o, int n,
                                        const pst_grad_var *gv, pst_output global_step,
                                        const char *name) {
    if (pst_graph_error(g)) return NULL;
    const char *opt = pst_optimizer_name(o->kind);
    pst_node **updates = calloc((size_t)n + 2, sizeof *updates);
    PST_ASSERT(updates != NULL);
    int nu = 0;
    pst_output first = pst_out(NULL, 0);
    for (int i = 0; i < n; i++)
        if (gv[i].grad.node) {
            first = gv[i].var;
            break;
        }
    if (first.node == NULL) {
        pst_graph_set_error(g, PST_E_INVALID, "%s: no gradients provided for any variable", opt);
        free(updates);
        return NULL;
    }
    pst_output local_step = pst_out(NULL, 0);
    if (o->sync_replicas > 0) {
        if (!global_step.node) {
            pst_graph_set_error(g, PST_E_INVALID, "%s: synchronous replicas need a global step",
                                opt);
            free(updates);
            return NULL;
        }
        /* The step this replica computes its gradients for: global_step as read at the start
         * of the step (on its PS, before any update of the step). */
        pst_graph_push_device(g, global_step.node->device);
        if (o->sync_elastic) {
            /* Elastic: the round's tag (its step and members) instead of the bare step. */
            int64_t me[2] = {o->sync_member, (int64_t)o->sync_incarnation};
            pst_tensor *mv = pst_tensor_from_i64(pst_shape_1d(2), me);
            pst_output m = pst_const(g, mv, "sync_member");
            pst_tensor_unref(mv);
            local_step = pst_sync_round(g, global_step, m, o->sync_lr_scale_base,
                                        "sync_local_step");
        } else {
            local_step = pst_identity(g, pst_variable_value(global_step), "sync_local_step");
        }
        pst_graph_pop_device(g);
    }
    pst_output b1p = pst_out(NULL, 0), b2p = pst_out(NULL, 0);
    if (o->kind == PST_OPT_ADAM) {
        b1p = non_slot(g, "beta1_power", first, o->beta1);
        b2p = non_slot(g, "beta2_power", first, o->beta2);
    }
    pst_graph_push_name_scope(g, name ? name : opt, 0);
    for (int i = 0; i < n && !pst_graph_error(g); i++) {
        pst_output v = gv[i].var, gr = gv[i].grad;
        if (gr.node == NULL) continue;
        pst_dtype dt = pst_output_dtype(v);
        pst_graph_push_device(g, v.node->device);
        pst_output lr = o->lr_tensor.node ? o->lr_tensor : pst_const_scalar(g, dt, o->lr, "learning_rate");
        if (o->lr_tensor.node && dt != pst_output_dtype(lr)) lr = pst_cast(g, lr, dt, NULL);
        char uname[512];
        snprintf(uname, sizeof uname, "update_%s", v.node->name);
        pst_graph_push_name_scope(g, uname, 0);
        pst_output u = pst_out(NULL, 0);
        if (gv[i].sparse_ids.node && o->kind == PST_OPT_SGD && o->sync_replicas <= 0) {
            /* Sparse SGD: only the looked-up rows change, by lr times their gradient. */
            u = pst_scatter_sub(g, v, gv[i].sparse_ids, pst_mul(g, gr, lr, NULL),
                                "SparseApplyGradientDescent");
        } else if (gv[i].sparse_ids.node) {
            gr = densify(g, gr, gv[i].sparse_ids, v);
        }
        if (u.node) {
        } else if (o->sync_replicas > 0) {
            u = sync_update(g, o, v, lr, gr, local_step, b1p, b2p);
        } else switch (o->kind) {
        case PST_OPT_SGD: u = pst_apply_gradient_descent(g, v, lr, gr, "ApplyGradientDescent"); break;
        case PST_OPT_MOMENTUM:
            u = pst_apply_momentum(g, v, slot(g, v, "Momentum", 0), lr, gr,
                                   pst_const_scalar(g, dt, o->momentum, "momentum"),
                                   o->use_nesterov, "ApplyMomentum");
            break;
        case PST_OPT_ADAM:
            u = pst_apply_adam(g, v, slot(g, v, "Adam", 0), slot(g, v, "Adam_1", 0),
                               pst_variable_value(b1p), pst_variable_value(b2p), lr,
                               pst_const_scalar(g, dt, o->beta1, "beta1"),
                               pst_const_scalar(g, dt, o->beta2, "beta2"),
                               pst_const_scalar(g, dt, o->epsilon, "epsilon"), gr, "ApplyAdam");
            break;
        case PST_OPT_ADAGRAD:
            u = pst_apply_adagrad(g, v, slot(g, v, "Adagrad", o->initial_accumulator), lr, gr,
                                  "ApplyAdagrad");
            break;
        case PST_OPT_RMSPROP:
            u = pst_apply_rms_prop(g, v, slot(g, v, "RMSProp", 1.0), slot(g, v, "RMSProp_1", 0),
                                   lr, pst_const_scalar(g, dt, o->rho, "decay"),
                                   pst_const_scalar(g, dt, o->momentum, "momentum"),
                                   pst_const_scalar(g, dt, o->rms_epsilon, "epsilon"), gr,
                                   "ApplyRMSProp");
            break;
        default: pst_graph_set_error(g, PST_E_INVALID, "unknown optimizer kind %d", (int)o->kind);
        }
        pst_graph_pop_name_scope(g);
        pst_graph_pop_device(g);
        if (u.node) updates[nu++] = u.node;
    }
    pst_node *result = NULL;
    if (!pst_graph_error(g)) {
        if (o->kind == PST_OPT_ADAM) {
            /* The bias-correction powers advance after every variable has been updated. */
            pst_graph_push_control_deps(g, nu, updates);
            pst_graph_push_device(g, b1p.node->device);
            pst_output dt1 = pst_const_scalar(g, pst_output_dtype(b1p), o->beta1, NULL);
            pst_output dt2 = pst_const_scalar(g, pst_output_dtype(b2p), o->beta2, NULL);
            pst_output v1 = pst_mul(g, pst_variable_value(b1p), dt1, NULL);
            pst_output v2 = pst_mul(g, pst_variable_value(b2p), dt2, NULL);
            /* Synchronous replicas advance them once per step, not once per replica. */
            pst_output a1 = o->sync_replicas > 0
                                ? pst_sync_assign_once(g, b1p, v1, local_step, "Assign")
                                : pst_assign(g, b1p, v1, "Assign");
            pst_output a2 = o->sync_replicas > 0
                                ? pst_sync_assign_once(g, b2p, v2, local_step, "Assign_1")
                                : pst_assign(g, b2p, v2, "Assign_1");
            pst_graph_pop_device(g);
            pst_graph_pop_control_deps(g);
            updates[nu++] = a1.node;
            updates[nu++] = a2.node;
        }
        if (global_step.node) {
            pst_graph_push_control_deps(g, nu, updates);
            pst_graph_push_device(g, global_step.node->device);
            pst_output inc = o->sync_replicas > 0
                                 ? pst_sync_step_advance(g, global_step, local_step,
                                                         "increment_global_step")
                                 : pst_assign_add(g, global_step,
                                                  pst_const_scalar(g, pst_output_dtype(global_step),
                                                                   1, NULL),
                                                  "increment_global_step");
            pst_graph_pop_device(g);
            pst_graph_pop_control_deps(g);
            result = pst_group(g, 1, &inc.node, "update");
        } else {
            result = pst_group(g, nu, updates, "update");
        }
    }
    pst_graph_pop_name_scope(g);
    free(updates);
    return pst_graph_error(g) ? NULL : result;
}

pst_node *pst_optimizer_minimize(pst_graph *g, const pst_optimizer_opts *o, pst_output loss,
                                 int n_vars, const pst_output *vars, pst_output global_step,
                                 const char *name) {
    pst_grad_var *gv = NULL;
    pst_status st = {0};
    int n = pst_optimizer_compute_gradients(g, loss, n_vars, vars, &gv, &st);
    if (n < 0) {
        pst_graph_set_error(g, st.code, "minimize: %s", st.msg);
        return NULL;
    }
    pst_node *op = pst_optimizer_apply_gradients(g, o, n, gv, global_step, name);
    free(gv);
    return op;
}

pst_output pst_clip_by_global_norm(pst_graph *g, int n, const pst_output *grads, float clip_norm,
                                   pst_output *clipped) {
    pst_graph_push_name_scope(g, "clip_by_global_norm", 0);
    pst_output *sq = calloc((size_t)n + 1, sizeof *sq);
    PST_ASSERT(sq != NULL);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (grads[i].node) sq[k++] = pst_l2_loss(g, grads[i], NULL);
    pst_output norm = pst_out(NULL, 0);
    if (k > 0) {
        pst_output sum = pst_add_n(g, k, sq, NULL);
        norm = pst_sqrt(g, pst_mul(g, sum, pst_const_f32(g, 2.0f, NULL), NULL), "global_norm");
        /* scale = clip_norm / max(norm, clip_norm) */
        pst_output c = pst_const_f32(g, clip_norm, "clip_norm");
        pst_output scale = pst_real_div(g, c, pst_maximum(g, norm, c, NULL), "scale");
        for (int i = 0; i < n; i++)
            clipped[i] = grads[i].node ? pst_mul(g, grads[i], scale, NULL) : grads[i];
    } else {
        for (int i = 0; i < n; i++) clipped[i] = grads[i];
    }
    free(sq);
    pst_graph_pop_name_scope(g);
    return norm;
}

pst_output pst_train_global_step(pst_graph *g) {
    int n;
    const pst_output *gs = pst_graph_collection(g, "global_step", &n);
    if (n > 0) return gs[0];
    pst_graph_push_name_scope_abs(g, "");
    const char *cols[] = {"global_step", NULL};
    pst_variable_opts o = {.name = "global_step",
                           .initial_value = pst_const_i64(g, 0, "global_step/Initializer/zeros"),
                           .collections = cols};
    pst_output v = pst_variable_ex(g, &o);
    pst_graph_pop_name_scope(g);
    return v;
}

pst_output pst_create_train_op(pst_graph *g, pst_output total_loss, const pst_optimizer_opts *o,
                               pst_output global_step, float clip_norm, pst_node **train_op) {
    *train_op = NULL;
    int nu;
    const pst_output *ups = pst_graph_collection(g, PST_UPDATE_OPS, &nu);
    if (nu > 0) {
        pst_node **deps = calloc((size_t)nu, sizeof *deps);
        PST_ASSERT(deps != NULL);
        for (int i = 0; i < nu; i++) deps[i] = ups[i].node;
        total_loss = pst_with_dependencies(g, nu, deps, total_loss, "total_loss_after_updates");
        free(deps);
    }
    pst_grad_var *gv = NULL;
    pst_status st = {0};
    int n = pst_optimizer_compute_gradients(g, total_loss, 0, NULL, &gv, &st);
    if (n < 0) {
        pst_graph_set_error(g, st.code, "create_train_op: %s", st.msg);
        return pst_out(NULL, 0);
    }
    if (o->transform_grads) o->transform_grads(o->transform_ctx, g, n, gv);
    if (clip_norm > 0) {
        pst_output *grads = calloc((size_t)n, sizeof *grads), *clipped = calloc((size_t)n, sizeof *clipped);
        PST_ASSERT(grads && clipped);
        for (int i = 0; i < n; i++) grads[i] = gv[i].grad;
        pst_clip_by_global_norm(g, n, grads, clip_norm, clipped);
        for (int i = 0; i < n; i++) gv[i].grad = clipped[i];
        free(grads);
        free(clipped);
    }
    pst_node *apply = pst_optimizer_apply_gradients(g, o, n, gv, global_step, NULL);
    free(gv);
    if (apply == NULL) return pst_out(NULL, 0);
    pst_output out = pst_with_dependencies(g, 1, &apply, total_loss, "train_op");
    if (out.node) {
        *train_op = out.node;
        pst_graph_add_to_collection(g, PST_TRAIN_OP, out);
    }
    return out;
}
