/* Random ops (see ops_random.h): xoshiro256** seeded by splitmix64 from (seed, seed2). */
#include "ops_random.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "ops.h"

#define PST_DEFAULT_GRAPH_SEED 87654321

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double next_unit(rng *r) { return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

static double next_normal(rng *r) {
    double u1 = next_unit(r), u2 = next_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static atomic_ullong entropy_counter;

static rng *state_of(pst_kernel_ctx *c) {
    if (*c->state) return *c->state;
    rng *r = calloc(1, sizeof *r);
    PST_ASSERT(r != NULL);
    int64_t seed = pst_kctx_attr_i(c, "seed", 0), seed2 = pst_kctx_attr_i(c, "seed2", 0);
    uint64_t x;
    if (seed == 0 && seed2 == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)r ^
            (atomic_fetch_add(&entropy_counter, 1) * 0x9e3779b97f4a7c15ULL);
    } else {
        x = (uint64_t)seed * 0x100000001b3ULL ^ (uint64_t)seed2 * 0x9e3779b97f4a7c15ULL;
    }
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
    *c->state = r;
    return r;
}

static int read_shape(const pst_tensor *t, pst_shape *s, pst_status *st) {
    if (t->shape.rank > 1 || t->n > PST_MAX_RANK)
        return pst_status_set(st, PST_E_INVALID, "shape must be a vector of at most %d dims",
                              PST_MAX_RANK);
    s->rank = (int)t->n;
    for (int i = 0; i < s->rank; i++) {
        s->dims[i] = pst_tensor_get_i64(t, i);
        if (s->dims[i] < 0) return pst_status_set(st, PST_E_INVALID, "shape dim %d is negative", i);
    }
    return 0;
}

static int random_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (read_shape(c->inputs[0], &s, c->status) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], s);
    if (o == NULL) return c->status->code;
    rng *r = state_of(c);
    const char *op = c->op->name;
    if (strcmp(op, "RandomUniformInt") == 0) {
        int64_t lo = pst_tensor_get_i64(c->inputs[1], 0), hi = pst_tensor_get_i64(c->inputs[2], 0);
        if (hi <= lo)
            return pst_kctx_error(c, PST_E_INVALID, "minval %lld must be below maxval %lld",
                                  (long long)lo, (long long)hi);
        uint64_t range = (uint64_t)(hi - lo);
        for (int64_t i = 0; i < o->n; i++)
            pst_tensor_set_f64(o, i, (double)(lo + (int64_t)(next_u64(r) % range)));
        return 0;
    }
    int kind = strcmp(op, "RandomUniform") == 0 ? 0 : strcmp(op, "RandomStandardNormal") == 0 ? 1 : 2;
    for (int64_t i = 0; i < o->n; i++) {
        double v;
        if (kind == 0)
            v = next_unit(r);
        else
            do v = next_normal(r);
            while (kind == 2 && fabs(v) > 2.0);
        if (o->dtype == PST_FLOAT)
            pst_tensor_f32(o)[i] = (float)v;
        else
            pst_tensor_f64(o)[i] = v;
    }
    return 0;
}

static int random_shape(pst_node *n, pst_status *st) {
    int is_int = strcmp(n->op->name, "RandomUniformInt") == 0;
    pst_dtype dt = pst_node_attr_type(n, is_int ? "Tout" : "dtype", PST_FLOAT);
    if (is_int ? !pst_dtype_is_int(dt) : !pst_dtype_is_float(dt))
        return pst_status_set(st, PST_E_INVALID, "unsupported dtype %s", pst_dtype_name(dt));
    if (!pst_dtype_is_int(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "shape must be int32 or int64");
    const pst_tensor *sc = pst_node_in_const(n, 0);
    pst_shape s = pst_shape_unknown();
    if (sc && read_shape(sc, &s, st) < 0) return PST_E_INVALID;
    /* A shape computed by Shape(x) has x's static shape. */
    const pst_node *src = n->inputs[0].node;
    if (!sc && strcmp(src->op->name, "Shape") == 0) s = pst_node_in_shape(src, 0);
    pst_node_set_output(n, 0, dt, s);
    return 0;
}

static void rng_free(void *p) { free(p); }

/* Multinomial(logits [B, C], num_samples) -> [B, num_samples] class ids drawn from
 * softmax(logits) per row (tf.multinomial: RL policies, sampled text). */
static int multinomial_shape(pst_node *n, pst_status *st) {
    pst_shape l = pst_node_in_shape(n, 0);
    if (l.rank >= 0 && l.rank != 2)
        return pst_status_set(st, PST_E_INVALID, "logits must be 2-D [batch, classes]");
    const pst_tensor *k = pst_node_in_const(n, 1);
    pst_dtype dt = pst_node_attr_type(n, "output_dtype", PST_INT64);
    pst_node_set_output(n, 0, dt == PST_INT32 ? PST_INT32 : PST_INT64,
                        pst_shape_2d(l.rank == 2 ? l.dims[0] : -1, k ? pst_tensor_get_i64(k, 0) : -1));
    return 0;
}

static int multinomial_kernel(pst_kernel_ctx *c) {
    const pst_tensor *l = c->inputs[0];
    int64_t k = pst_tensor_get_i64(c->inputs[1], 0);
    if (l->shape.rank != 2 || l->shape.dims[1] < 1 || k < 0)
        return pst_kctx_error(c, PST_E_INVALID, "logits must be [batch, classes >= 1] and "
                              "num_samples >= 0");
    int64_t B = l->shape.dims[0], C = l->shape.dims[1];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], pst_shape_2d(B, k));
    if (o == NULL) return c->status->code;
    rng *r = state_of(c);
    double *cdf = malloc((size_t)C * sizeof *cdf);
    PST_ASSERT(cdf != NULL);
    for (int64_t b = 0; b < B; b++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < C; j++) mx = fmax(mx, pst_tensor_get_f64(l, b * C + j));
        for (int64_t j = 0; j < C; j++) {
            double v = pst_tensor_get_f64(l, b * C + j);
            sum += isfinite(mx) ? exp(v - mx) : (v == mx);
            cdf[j] = sum;
        }
        for (int64_t s = 0; s < k; s++) {
            double u = next_unit(r) * sum;
            int64_t j = 0;
            while (j < C - 1 && cdf[j] <= u) j++;
            pst_tensor_set_f64(o, b * k + s, (double)j);
        }
    }
    free(cdf);
    return 0;
}

static const pst_attr_spec rnd_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {"T", PST_ATTR_TYPE, 0},
                                          {"Tout", PST_ATTR_TYPE, 0},  {"seed", PST_ATTR_INT, 0},
                                          {"seed2", PST_ATTR_INT, 0},  {0}};
#define RND(nm, nin)                                                                              \
    {.name = nm, .min_inputs = nin, .max_inputs = nin, .n_outputs = 1, .attrs = rnd_attrs,        \
     .shape = random_shape, .kernel = random_kernel,                                              \
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free}
static const pst_attr_spec multinomial_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                  {"output_dtype", PST_ATTR_TYPE, 0},
                                                  {"seed", PST_ATTR_INT, 0},
                                                  {"seed2", PST_ATTR_INT, 0},
                                                  {0}};
static const pst_op_def random_ops[] = {
    RND("RandomUniform", 1), RND("RandomStandardNormal", 1), RND("TruncatedNormal", 1),
    RND("RandomUniformInt", 3),
    {.name = "Multinomial", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = multinomial_attrs, .shape = multinomial_shape, .kernel = multinomial_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free}};

void pst__register_random_ops(void) {
    for (size_t i = 0; i < sizeof random_ops / sizeof random_ops[0]; i++)
        pst_op_register(&random_ops[i]);
}

/* TF 1.x seed resolution (random_seed.get_seed). */
static void resolve_seeds(pst_graph *g, int64_t op_seed, int64_t *seed, int64_t *seed2) {
    int64_t gs = pst_graph_seed(g);
    if (gs >= 0 && op_seed >= 0) {
        *seed = gs;
        *seed2 = op_seed;
    } else if (gs >= 0) {
        *seed = gs;
        *seed2 = pst_graph_num_nodes(g);
    } else if (op_seed >= 0) {
        *seed = PST_DEFAULT_GRAPH_SEED;
        *seed2 = op_seed;
    } else {
        *seed = *seed2 = 0;
    }
    if (*seed == 0 && *seed2 == 0 && (gs >= 0 || op_seed >= 0)) *seed2 = 0x7fffffff;
}

static pst_output build(pst_graph *g, const char *op, pst_output shape, pst_dtype dt,
                        int64_t op_seed, const char *name) {
    int64_t s1, s2;
    resolve_seeds(g, op_seed, &s1, &s2);
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, shape);
    pst_nb_attr_type(b, "dtype", dt);
    if (shape.node) pst_nb_attr_type(b, "T", pst_output_dtype(shape));
    pst_nb_attr_i(b, "seed", s1);
    pst_nb_attr_i(b, "seed2", s2);
    return pst_nb_finish_out(b);
}

static pst_output shape_const(pst_graph *g, pst_shape s) {
    int32_t d[PST_MAX_RANK];
    for (int i = 0; i < s.rank; i++) d[i] = (int32_t)s.dims[i];
    return pst_const_i32_vec(g, s.rank, d, "shape");
}

pst_output pst_random_uniform(pst_graph *g, pst_shape shape, pst_dtype dt, int64_t seed,
                              const char *name) {
    return build(g, "RandomUniform", shape_const(g, shape), dt, seed, name);
}
pst_output pst_random_uniform_t(pst_graph *g, pst_output shape, pst_dtype dt, int64_t seed,
                                const char *name) {
    return build(g, "RandomUniform", shape, dt, seed, name);
}

static pst_output scale_shift(pst_graph *g, pst_output x, pst_dtype dt, float mean, float stddev) {
    if (stddev != 1.0f) x = pst_mul(g, x, pst_const_scalar(g, dt, stddev, "stddev"), NULL);
    if (mean != 0.0f) x = pst_add(g, x, pst_const_scalar(g, dt, mean, "mean"), NULL);
    return x;
}

pst_output pst_random_normal(pst_graph *g, pst_shape shape, pst_dtype dt, float mean, float stddev,
                             int64_t seed, const char *name) {
    pst_output r = build(g, "RandomStandardNormal", shape_const(g, shape), dt, seed, name);
    return scale_shift(g, r, dt, mean, stddev);
}
pst_output pst_truncated_normal(pst_graph *g, pst_shape shape, pst_dtype dt, float mean,
                                float stddev, int64_t seed, const char *name) {
    pst_output r = build(g, "TruncatedNormal", shape_const(g, shape), dt, seed, name);
    return scale_shift(g, r, dt, mean, stddev);
}
pst_output pst_random_uniform_int(pst_graph *g, pst_shape shape, int64_t lo, int64_t hi,
                                  pst_dtype dt, int64_t seed, const char *name) {
    int64_t s1, s2;
    resolve_seeds(g, seed, &s1, &s2);
    pst_output sh = shape_const(g, shape);
    pst_output a = pst_const_scalar(g, dt, (double)lo, "minval"), b = pst_const_scalar(g, dt, (double)hi, "maxval");
    pst_node_builder *nb = pst_nb_new(g, "RandomUniformInt", name);
    pst_nb_input(nb, sh);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    pst_nb_attr_type(nb, "Tout", dt);
    pst_nb_attr_type(nb, "T", PST_INT32);
    pst_nb_attr_i(nb, "seed", s1);
    pst_nb_attr_i(nb, "seed2", s2);
    return pst_nb_finish_out(nb);
}
