/*
 * ops_random — RandomUniform, RandomStandardNormal, TruncatedNormal, RandomUniformInt.
 *
 * Seeds follow TensorFlow 1.x: with a graph seed (pst_graph_set_seed) and no op seed (-1), the
 * op seed is derived from the graph (the node count at creation), so the same program gives
 * the same numbers on every run; an op seed without a graph seed uses the default graph seed
 * 87654321; with neither, the numbers differ from run to run. Each session run of a node
 * draws new numbers (the generator state lives in the session).
 *
 *     pst_graph_set_seed(g, 42);
 *     pst_output w0 = pst_truncated_normal(g, pst_shape_2d(784, 10), PST_FLOAT, 0, 0.1f, -1, NULL);
 */
#ifndef PST_OPS_RANDOM_H
#define PST_OPS_RANDOM_H

#include "graph.h"

/* Uniform in [0, 1). */
pst_output pst_random_uniform(pst_graph *g, pst_shape shape, pst_dtype dt, int64_t seed,
                              const char *name);
/* The same with the shape given by an int32/int64 tensor (e.g. pst_shape_of(x)). */
pst_output pst_random_uniform_t(pst_graph *g, pst_output shape, pst_dtype dt, int64_t seed,
                                const char *name);
pst_output pst_random_normal(pst_graph *g, pst_shape shape, pst_dtype dt, float mean, float stddev,
                             int64_t seed, const char *name);
/* Normal values, redrawn when more than two standard deviations from the mean. */
pst_output pst_truncated_normal(pst_graph *g, pst_shape shape, pst_dtype dt, float mean,
                                float stddev, int64_t seed, const char *name);
/* Integers uniform in [lo, hi). */
pst_output pst_random_uniform_int(pst_graph *g, pst_shape shape, int64_t lo, int64_t hi,
                                  pst_dtype dt, int64_t seed, const char *name);

#endif
