/*
 * init — variable initializers (tf.*_initializer).
 *
 * An initializer is a plain value describing how to fill a new variable; pst_init_build adds
 * the nodes computing the initial value (inside the variable's scope when used through
 * pst_variable_ex's init_fn with pst_init_fn_of). Random initializers take an op seed (-1:
 * derived from the graph seed, see ops_random.h).
 *
 *     pst_initializer he = pst_init_he_normal(-1);
 *     pst_variable_opts o = {.name = "weights", .dtype = PST_FLOAT, .shape = shape,
 *                            .init_fn = pst_init_fn_of, .init_ctx = &he, .trainable = 1};
 */
#ifndef PST_INIT_H
#define PST_INIT_H

#include "graph.h"

typedef enum pst_init_kind {
    PST_INIT_ZEROS = 0,
    PST_INIT_ONES,
    PST_INIT_CONSTANT,
    PST_INIT_RANDOM_UNIFORM,
    PST_INIT_RANDOM_NORMAL,
    PST_INIT_TRUNCATED_NORMAL,
    PST_INIT_VARIANCE_SCALING,
    PST_INIT_KIND_COUNT
} pst_init_kind;

typedef enum pst_fan_mode { PST_FAN_IN = 0, PST_FAN_OUT, PST_FAN_AVG } pst_fan_mode;
typedef enum pst_distribution {
    PST_DIST_TRUNCATED_NORMAL = 0,
    PST_DIST_NORMAL,
    PST_DIST_UNIFORM
} pst_distribution;

typedef struct pst_initializer {
    pst_init_kind kind;
    double value;           /* constant */
    double minval, maxval;  /* random_uniform */
    double mean, stddev;    /* random_normal, truncated_normal */
    double scale;           /* variance_scaling */
    pst_fan_mode mode;
    pst_distribution distribution;
    int64_t seed;           /* -1: unset */
} pst_initializer;

pst_initializer pst_init_zeros(void);
pst_initializer pst_init_ones(void);
pst_initializer pst_init_constant(double v);
pst_initializer pst_init_random_uniform(double minval, double maxval, int64_t seed);
pst_initializer pst_init_random_normal(double mean, double stddev, int64_t seed);
pst_initializer pst_init_truncated_normal(double mean, double stddev, int64_t seed);
pst_initializer pst_init_variance_scaling(double scale, pst_fan_mode mode, pst_distribution dist,
                                          int64_t seed);
/* He: scale 2, fan_in, truncated normal. Xavier/Glorot: scale 1, fan_avg, uniform or
 * (truncated) normal. */
pst_initializer pst_init_he_normal(int64_t seed);
pst_initializer pst_init_he_uniform(int64_t seed);
pst_initializer pst_init_xavier(int uniform, int64_t seed);

/* fan_in / fan_out as TensorFlow computes them: for [.., in, out] kernels the receptive field
 * (product of the leading dims) times in / out; for 1-D shapes both are the dim. */
void pst_init_fans(pst_shape shape, double *fan_in, double *fan_out);
/* Adds nodes computing the initial value; a null output (graph in error) on failure. */
pst_output pst_init_build(pst_graph *g, const pst_initializer *init, pst_dtype dt,
                          pst_shape shape);
/* Adapter for pst_variable_opts.init_fn: ctx is a const pst_initializer *. */
pst_output pst_init_fn_of(pst_graph *g, pst_dtype dt, pst_shape shape, void *ctx);

#endif
