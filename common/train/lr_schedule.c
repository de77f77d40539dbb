#include "lr_schedule.h"

#include "ops.h"

#include <math.h>
#include <string.h>

static pst_output stepf(pst_graph *g, pst_output step) {
    return pst_output_dtype(step) == PST_FLOAT ? step : pst_cast(g, step, PST_FLOAT, NULL);
}

pst_output pst_lr_exponential_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                                    float rate, int staircase) {
    pst_graph_push_name_scope(g, "ExponentialDecay", 0);
    pst_output p = pst_real_div(g, stepf(g, step), pst_const_f32(g, (float)decay_steps, NULL), NULL);
    if (staircase) p = pst_floor(g, p, NULL);
    pst_output out = pst_mul(g, pst_const_f32(g, lr, "learning_rate"),
                             pst_pow(g, pst_const_f32(g, rate, "decay_rate"), p, NULL), "lr");
    pst_graph_pop_name_scope(g);
    return out;
}

pst_output pst_lr_piecewise_constant(pst_graph *g, pst_output step, int n, const int64_t *b,
                                     const float *values) {
    pst_graph_push_name_scope(g, "PiecewiseConstant", 0);
    pst_output s = stepf(g, step);
    pst_output out = pst_const_f32(g, values[n], NULL);
    for (int i = n - 1; i >= 0; i--) {
        pst_output le = pst_less_equal(g, s, pst_const_f32(g, (float)b[i], NULL), NULL);
        out = pst_select(g, le, pst_const_f32(g, values[i], NULL), out, NULL);
    }
    pst_graph_pop_name_scope(g);
    return out;
}

pst_output pst_lr_polynomial_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                                   float end_lr, float power, int cycle) {
    pst_graph_push_name_scope(g, "PolynomialDecay", 0);
    pst_output s = stepf(g, step), ds = pst_const_f32(g, (float)decay_steps, NULL);
    if (cycle) {
        /* decay_steps * max(1, ceil(step / decay_steps)), ceil(x) = -floor(-x) */
        pst_output c = pst_neg(g, pst_floor(g, pst_neg(g, pst_real_div(g, s, ds, NULL), NULL), NULL), NULL);
        ds = pst_mul(g, ds, pst_maximum(g, c, pst_const_f32(g, 1, NULL), NULL), NULL);
    } else {
        s = pst_minimum(g, s, ds, NULL);
    }
    pst_output frac = pst_sub(g, pst_const_f32(g, 1, NULL), pst_real_div(g, s, ds, NULL), NULL);
    pst_output out = pst_add(g, pst_mul(g, pst_const_f32(g, lr - end_lr, NULL),
                                        pst_pow(g, frac, pst_const_f32(g, power, NULL), NULL), NULL),
                             pst_const_f32(g, end_lr, NULL), "lr");
    pst_graph_pop_name_scope(g);
    return out;
}

pst_output pst_lr_cosine_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                               float alpha) {
    pst_graph_push_name_scope(g, "CosineDecay", 0);
    pst_output ds = pst_const_f32(g, (float)decay_steps, NULL);
    pst_output frac = pst_real_div(g, pst_minimum(g, stepf(g, step), ds, NULL), ds, NULL);
    pst_output cosv = pst_mul(
        g, pst_const_f32(g, 0.5f, NULL),
        pst_add(g, pst_const_f32(g, 1, NULL),
                pst_cos(g, pst_mul(g, pst_const_f32(g, 3.14159265358979f, NULL), frac, NULL), NULL),
                NULL),
        NULL);
    pst_output dec = pst_add(g, pst_mul(g, pst_const_f32(g, 1 - alpha, NULL), cosv, NULL),
                             pst_const_f32(g, alpha, NULL), NULL);
    pst_output out = pst_mul(g, pst_const_f32(g, lr, "learning_rate"), dec, "lr");
    pst_graph_pop_name_scope(g);
    return out;
}

int pst_lr_kind_parse(const char *name) {
    static const char *names[] = {"none", "exponential", "cosine", "polynomial"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

pst_output pst_lr_schedule_op(pst_graph *g, const pst_lr_schedule *s, pst_output step) {
    float alpha = s->lr > 0 ? s->end_lr / s->lr : 0;
    switch (s->kind) {
    case PST_LR_EXPONENTIAL:
        return pst_lr_exponential_decay(g, s->lr, step, s->decay_steps, s->rate, s->staircase);
    case PST_LR_COSINE: return pst_lr_cosine_decay(g, s->lr, step, s->decay_steps, alpha);
    case PST_LR_POLYNOMIAL:
        return pst_lr_polynomial_decay(g, s->lr, step, s->decay_steps, s->end_lr, 1, 0);
    default: return pst_out(NULL, 0);
    }
}

double pst_lr_schedule_at(const pst_lr_schedule *s, int64_t step) {
    double lr = s->lr, n = (double)(s->decay_steps > 0 ? s->decay_steps : 1);
    double t = step < 0 ? 0 : (double)step, frac = t < n ? t / n : 1;
    switch (s->kind) {
    case PST_LR_EXPONENTIAL: return lr * pow(s->rate, s->staircase ? floor(t / n) : t / n);
    case PST_LR_COSINE: {
        double alpha = lr > 0 ? s->end_lr / lr : 0;
        return lr * ((1 - alpha) * 0.5 * (1 + cos(3.14159265358979323846 * frac)) + alpha);
    }
    case PST_LR_POLYNOMIAL: return (lr - s->end_lr) * (1 - frac) + s->end_lr;
    default: return lr;
    }
}
