#include "init.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "ops.h"

pst_initializer pst_init_zeros(void) { return (pst_initializer){.kind = PST_INIT_ZEROS, .seed = -1}; }
pst_initializer pst_init_ones(void) { return (pst_initializer){.kind = PST_INIT_ONES, .seed = -1}; }
pst_initializer pst_init_constant(double v) {
    return (pst_initializer){.kind = PST_INIT_CONSTANT, .value = v, .seed = -1};
}
pst_initializer pst_init_random_uniform(double minval, double maxval, int64_t seed) {
    return (pst_initializer){
        .kind = PST_INIT_RANDOM_UNIFORM, .minval = minval, .maxval = maxval, .seed = seed};
}
pst_initializer pst_init_random_normal(double mean, double stddev, int64_t seed) {
    return (pst_initializer){
        .kind = PST_INIT_RANDOM_NORMAL, .mean = mean, .stddev = stddev, .seed = seed};
}
pst_initializer pst_init_truncated_normal(double mean, double stddev, int64_t seed) {
    return (pst_initializer){
        .kind = PST_INIT_TRUNCATED_NORMAL, .mean = mean, .stddev = stddev, .seed = seed};
}
pst_initializer pst_init_variance_scaling(double scale, pst_fan_mode mode, pst_distribution dist,
                                          int64_t seed) {
    return (pst_initializer){.kind = PST_INIT_VARIANCE_SCALING,
                             .scale = scale,
                             .mode = mode,
                             .distribution = dist,
                             .seed = seed};
}
pst_initializer pst_init_he_normal(int64_t seed) {
    return pst_init_variance_scaling(2.0, PST_FAN_IN, PST_DIST_TRUNCATED_NORMAL, seed);
}
pst_initializer pst_init_he_uniform(int64_t seed) {
    return pst_init_variance_scaling(2.0, PST_FAN_IN, PST_DIST_UNIFORM, seed);
}
pst_initializer pst_init_xavier(int uniform, int64_t seed) {
    return pst_init_variance_scaling(1.0, PST_FAN_AVG,
                                     uniform ? PST_DIST_UNIFORM : PST_DIST_TRUNCATED_NORMAL, seed);
}

void pst_init_fans(pst_shape shape, double *fan_in, double *fan_out) {
    if (shape.rank < 1) {
        *fan_in = *fan_out = 1;
    } else if (shape.rank == 1) {
        *fan_in = *fan_out = (double)shape.dims[0];
    } else {
        double rf = 1;
        for (int i = 0; i < shape.rank - 2; i++) rf *= (double)shape.dims[i];
        *fan_in = (double)shape.dims[shape.rank - 2] * rf;
        *fan_out = (double)shape.dims[shape.rank - 1] * rf;
    }
}

/* scale * x + shift, folding away the identity cases. */
static pst_output affine(pst_graph *g, pst_output x, pst_dtype dt, double scale, double shift) {
    if (scale != 1) x = pst_mul(g, x, pst_const_scalar(g, dt, scale, NULL), NULL);
    if (shift != 0) x = pst_add(g, x, pst_const_scalar(g, dt, shift, NULL), NULL);
    return x;
}

/* `name` = Fill(name/shape_as_tensor, name/Const), the nodes tf.zeros(shape) makes. */
static pst_output fill_init(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape,
                            double v) {
    int32_t dims[PST_MAX_RANK];
    for (int d = 0; d < shape.rank; d++) {
        if (shape.dims[d] > INT32_MAX) {
            pst_graph_set_error(g, PST_E_INVALID, "initializer: dimension %lld is too large",
                                (long long)shape.dims[d]);
            return pst_out(NULL, 0);
        }
        dims[d] = (int32_t)shape.dims[d];
    }
    char *full = pst_graph_unique_name(g, name);
    pst_graph_push_name_scope_abs(g, full);
    pst_output shape_t = pst_const_i32_vec(g, shape.rank, dims, "shape_as_tensor");
    pst_output value = pst_const_scalar(g, dt, v, "Const");
    pst_graph_pop_name_scope(g);
    pst_node_builder *b = pst_nb_new(g, "Fill", NULL);
    pst_nb_exact_name(b, full);
    pst_nb_input(b, shape_t);
    pst_nb_input(b, value);
    pst_nb_attr_type(b, "T", dt);
    free(full);
    return pst_nb_finish_out(b);
}

pst_output pst_init_build(pst_graph *g, const pst_initializer *init, pst_dtype dt,
                          pst_shape shape) {
    switch (init->kind) {
    case PST_INIT_ZEROS:
    case PST_INIT_ONES:
    case PST_INIT_CONSTANT: {
        double v = init->kind == PST_INIT_ZEROS ? 0 : init->kind == PST_INIT_ONES ? 1 : init->value;
        const char *name = init->kind == PST_INIT_ZEROS ? "zeros"
                           : init->kind == PST_INIT_ONES ? "ones" : "Const";
        /* As TensorFlow builds tf.zeros / tf.ones / a constant initializer: a Const when small,
         * otherwise Fill(shape, value), so a graph carries a shape rather than the values. */
        int64_t n = 1;
        for (int d = 0; d < shape.rank; d++) n *= shape.dims[d];
        if (shape.rank > 0 && pst_shape_is_known(&shape) && n >= 1000)
            return fill_init(g, name, dt, shape, v);
        pst_status st = {0};
        pst_tensor *t = pst_tensor_new(dt, shape, &st);
        if (t == NULL) {
            pst_graph_set_error(g, st.code, "initializer: %s", st.msg);
            return pst_out(NULL, 0);
        }
        for (int64_t i = 0; i < t->n; i++) pst_tensor_set_f64(t, i, v);
        pst_output o = pst_const(g, t, name);
        pst_tensor_unref(t);
        return o;
    }
    case PST_INIT_RANDOM_UNIFORM:
        return affine(g, pst_random_uniform(g, shape, dt, init->seed, NULL), dt,
                      init->maxval - init->minval, init->minval);
    case PST_INIT_RANDOM_NORMAL:
        return pst_random_normal(g, shape, dt, (float)init->mean, (float)init->stddev, init->seed,
                                 NULL);
    case PST_INIT_TRUNCATED_NORMAL:
        return pst_truncated_normal(g, shape, dt, (float)init->mean, (float)init->stddev,
                                    init->seed, NULL);
    case PST_INIT_VARIANCE_SCALING: {
        double fi, fo;
        pst_init_fans(shape, &fi, &fo);
        double n = init->mode == PST_FAN_IN ? fi : init->mode == PST_FAN_OUT ? fo : (fi + fo) / 2;
        double s = init->scale / (n > 1 ? n : 1);
        if (init->distribution == PST_DIST_UNIFORM) {
            double limit = sqrt(3.0 * s);
            return affine(g, pst_random_uniform(g, shape, dt, init->seed, NULL), dt, 2 * limit,
                          -limit);
        }
        if (init->distribution == PST_DIST_NORMAL)
            return pst_random_normal(g, shape, dt, 0.0f, (float)sqrt(s), init->seed, NULL);
        /* Truncation at two stddevs shrinks the variance; TF corrects by this constant. */
        return pst_truncated_normal(g, shape, dt, 0.0f, (float)(sqrt(s) / 0.87962566103423978),
                                    init->seed, NULL);
    }
    default: break;
    }
    pst_graph_set_error(g, PST_E_INVALID, "unknown initializer kind %d", (int)init->kind);
    return pst_out(NULL, 0);
}

pst_output pst_init_fn_of(pst_graph *g, pst_dtype dt, pst_shape shape, void *ctx) {
    return pst_init_build(g, (const pst_initializer *)ctx, dt, shape);
}
