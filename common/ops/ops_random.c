/* Random ops (see ops_random.h): xoshiro256** seeded by splitmix64 from (seed, seed2). */
#include "ops_random.h"

#include <float.h>
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

/* Stateless ops (StatelessRandomUniform...) take a seed input [2]: the same seed gives the same
 * values on every run (pstrain's generator, not TF's Philox: the values differ from TF's). */
static int is_stateless(const pst_op_def *op) { return strncmp(op->name, "Stateless", 9) == 0; }

/* The generator of a run: the node's own (seeded once from its seed attrs), or for a stateless
 * op *local seeded from its seed input seed_at; NULL on a bad seed (status set). */
static rng *rng_for(pst_kernel_ctx *c, rng *local, int seed_at) {
    if (!is_stateless(c->op)) return state_of(c);
    const pst_tensor *sd = c->inputs[seed_at];
    if (sd->shape.rank != 1 || sd->n != 2) {
        pst_kctx_error(c, PST_E_INVALID, "seed must be a vector of 2 values, got %lld values",
                       (long long)sd->n);
        return NULL;
    }
    uint64_t x = (uint64_t)pst_tensor_get_i64(sd, 0) * 0x100000001b3ULL ^
                 (uint64_t)pst_tensor_get_i64(sd, 1) * 0x9e3779b97f4a7c15ULL ^
                 0x5851f42d4c957f2dULL;
    for (int i = 0; i < 4; i++) local->s[i] = splitmix(&x);
    return local;
}

static int random_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (read_shape(c->inputs[0], &s, c->status) < 0) return c->status->code;
    rng local, *r = rng_for(c, &local, 1);
    if (r == NULL) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], s);
    if (o == NULL) return c->status->code;
    const char *op = c->op->name + (is_stateless(c->op) ? 9 : 0);
    int lo_at = is_stateless(c->op) ? 2 : 1;
    if (strcmp(op, "RandomUniformInt") == 0) {
        int64_t lo = pst_tensor_get_i64(c->inputs[lo_at], 0),
                hi = pst_tensor_get_i64(c->inputs[lo_at + 1], 0);
        if (hi <= lo)
            return pst_kctx_error(c, PST_E_INVALID, "minval %lld must be below maxval %lld",
                                  (long long)lo, (long long)hi);
        uint64_t range = (uint64_t)(hi - lo);
        for (int64_t i = 0; i < o->n; i++)
            pst_tensor_set_f64(o, i, (double)(lo + (int64_t)(next_u64(r) % range)));
        return 0;
    }
    int kind = strcmp(op, "RandomUniform") == 0                                        ? 0
               : strcmp(op, "RandomStandardNormal") == 0 || strcmp(op, "RandomNormal") == 0 ? 1
                                                                                            : 2;
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
    int is_int = strstr(n->op->name, "RandomUniformInt") != NULL;
    pst_dtype dt =
        pst_node_attr_type(n, is_int && !is_stateless(n->op) ? "Tout" : "dtype", PST_FLOAT);
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
    rng local, *r = rng_for(c, &local, 2);
    if (r == NULL) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], pst_shape_2d(B, k));
    if (o == NULL) return c->status->code;
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

/* RandomCrop(image [h, w, c], size [2]) (TF 0.x): a size[0] x size[1] window at an offset
 * uniform over the valid ones (TF's own draws differ: the offsets come from another generator). */
static int random_crop_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), o = pst_shape_make(3, (int64_t[]){-1, -1, -1});
    char s[128];
    if (x.rank >= 0 && x.rank != 3)
        return pst_status_set(st, PST_E_INVALID, "image must be 3-D [height, width, channels], got %s",
                              pst_shape_str(&x, s, sizeof s));
    if (x.rank == 3) o.dims[2] = x.dims[2];
    const pst_tensor *sz = pst_node_in_const(n, 1);
    if (sz && sz->n == 2) o.dims[0] = pst_tensor_get_i64(sz, 0), o.dims[1] = pst_tensor_get_i64(sz, 1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int random_crop_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sz = c->inputs[1];
    if (x->shape.rank != 3) return pst_kctx_error(c, PST_E_INVALID, "image must be 3-D [height, width, channels]");
    if (sz->n != 2) return pst_kctx_error(c, PST_E_INVALID, "size must have 2 elements");
    int64_t H = x->shape.dims[0], W = x->shape.dims[1], C = x->shape.dims[2];
    int64_t h = pst_tensor_get_i64(sz, 0), w = pst_tensor_get_i64(sz, 1);
    if (h < 0 || w < 0 || h > H || w > W)
        return pst_kctx_error(c, PST_E_INVALID, "width (%lld) and height (%lld) must be at least %lld and %lld",
                              (long long)W, (long long)H, (long long)w, (long long)h);
    rng *r = state_of(c);
    int64_t y0 = H == h ? 0 : (int64_t)(next_u64(r) % (uint64_t)(H - h + 1));
    int64_t x0 = W == w ? 0 : (int64_t)(next_u64(r) % (uint64_t)(W - w + 1));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_make(3, (int64_t[]){h, w, C}));
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < h; i++)
        if (pst_tensor_copy_elems(o, i * w * C, x, ((y0 + i) * W + x0) * C, w * C, c->status) < 0)
            return c->status->code;
    return 0;
}

/* ---- Candidate samplers (tf.nn.nce_loss, sampled_softmax_loss): LogUniform (Zipfian, P(k) =
 * log((k + 2) / (k + 1)) / log(range_max + 1)), Uniform, All; and ComputeAccidentalHits ------
 * With unique, draws repeat until num_sampled distinct classes; the expected counts are then
 * 1 - (1 - p)^tries (p * num_sampled when no draw was rejected), as TF's RangeSampler. The
 * draws themselves come from pstrain's generator, not TF's. */
enum { SAMPLER_LOG_UNIFORM, SAMPLER_UNIFORM, SAMPLER_ALL };

static int sampler_kind(const pst_op_def *op) {
    return !strcmp(op->name, "LogUniformCandidateSampler") ? SAMPLER_LOG_UNIFORM
           : !strcmp(op->name, "UniformCandidateSampler") ? SAMPLER_UNIFORM : SAMPLER_ALL;
}

static double sampler_prob(int kind, int64_t v, int64_t range) {
    if (kind == SAMPLER_LOG_UNIFORM) return log((v + 2.0) / (v + 1.0)) / log1p((double)range);
    return kind == SAMPLER_UNIFORM ? 1.0 / (double)range : 1.0;
}

static double expected_count(double p, int64_t n, int64_t tries) {
    if (p >= 1) return 1; /* AllCandidateSampler: every class, once */
    return tries == n ? p * (double)n : -expm1((double)tries * log1p(-p));
}

static int sampler_shape(pst_node *n, pst_status *st) {
    pst_shape t = pst_node_in_shape(n, 0);
    int64_t k = pst_node_attr_i(n, "num_sampled", 0);
    if (pst_node_in_dtype(n, 0) != PST_INT64) return pst_status_set(st, PST_E_INVALID, "true_classes must be int64");
    if (t.rank >= 0 && t.rank != 2) return pst_status_set(st, PST_E_INVALID, "true_classes must be a matrix");
    pst_node_set_output(n, 0, PST_INT64, pst_shape_1d(k));
    pst_node_set_output(n, 1, PST_FLOAT, t);
    pst_node_set_output(n, 2, PST_FLOAT, pst_shape_1d(k));
    return 0;
}

static int sampler_kernel(pst_kernel_ctx *c) {
    const pst_tensor *tc = c->inputs[0];
    int kind = sampler_kind(c->op);
    int64_t k = pst_kctx_attr_i(c, "num_sampled", 0), nt = pst_kctx_attr_i(c, "num_true", 1);
    int64_t range = kind == SAMPLER_ALL ? k : pst_kctx_attr_i(c, "range_max", 0);
    int unique = pst_kctx_attr_b(c, "unique", 0);
    if (tc->shape.rank != 2 || tc->shape.dims[1] != nt)
        return pst_kctx_error(c, PST_E_INVALID, "true_classes must be [batch, num_true = %lld]", (long long)nt);
    if (k < 1 || range < 1) return pst_kctx_error(c, PST_E_INVALID, "num_sampled and range_max must be positive");
    if (unique && k > range)
        return pst_kctx_error(c, PST_E_INVALID, "the sampler's range %lld is too small for %lld unique samples",
                              (long long)range, (long long)k);
    pst_tensor *out = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_1d(k));
    pst_tensor *te = out ? pst_kctx_alloc_output(c, 1, PST_FLOAT, tc->shape) : NULL;
    pst_tensor *se = te ? pst_kctx_alloc_output(c, 2, PST_FLOAT, pst_shape_1d(k)) : NULL;
    if (se == NULL) return c->status->code;
    int64_t *v = pst_tensor_i64(out), tries = 0;
    rng *r = kind == SAMPLER_ALL ? NULL : state_of(c);
    /* the classes drawn so far (unique): open addressing over a power of two >= 2k slots */
    uint64_t cap = 2;
    while (unique && cap < 2 * (uint64_t)k) cap *= 2;
    int64_t *seen = unique ? malloc(cap * sizeof *seen) : NULL;
    if (unique && seen == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (uint64_t i = 0; unique && i < cap; i++) seen[i] = -1;
    for (int64_t i = 0; i < k; i++) {
        int dup;
        do {
            int64_t x = kind == SAMPLER_ALL ? i
                        : kind == SAMPLER_UNIFORM ? (int64_t)(next_u64(r) % (uint64_t)range)
                                                  : (int64_t)exp(next_unit(r) * log1p((double)range)) - 1;
            if (x >= range) x = range - 1; /* exp's rounding at the top */
            if (++tries > 1000 * k + 1000000) {
                free(seen);
                return pst_kctx_error(c, PST_E_INVALID, "no %lld distinct candidates of %lld after %lld draws",
                                      (long long)k, (long long)range, (long long)(tries - 1));
            }
            dup = 0;
            if (unique) {
                uint64_t h = ((uint64_t)x * 0x9e3779b97f4a7c15ULL) & (cap - 1);
                while (seen[h] >= 0 && seen[h] != x) h = (h + 1) & (cap - 1);
                dup = seen[h] == x;
                seen[h] = x;
            }
            v[i] = x;
        } while (dup);
    }
    free(seen);
    for (int64_t i = 0; i < k; i++)
        pst_tensor_f32(se)[i] = (float)expected_count(sampler_prob(kind, v[i], range), k, tries);
    for (int64_t i = 0; i < tc->n; i++) {
        int64_t x = pst_tensor_i64(tc)[i];
        pst_tensor_f32(te)[i] = (float)expected_count(sampler_prob(kind, x, range), k, tries);
    }
    return 0;
}

static int hits_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT32, pst_shape_1d(-1));
    pst_node_set_output(n, 1, PST_INT64, pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_FLOAT, pst_shape_1d(-1));
    return 0;
}

/* For each row i and true class equal to sampled candidate j: (i, j, -FLT_MAX); a candidate
 * sampled twice counts at its last position, as TF's map. */
static int hits_kernel(pst_kernel_ctx *c) {
    const pst_tensor *tc = c->inputs[0], *sc = c->inputs[1];
    int64_t nt = pst_kctx_attr_i(c, "num_true", 1);
    if (tc->shape.rank != 2 || tc->shape.dims[1] != nt || sc->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "true_classes must be [batch, num_true = %lld] and sampled_candidates a vector",
                              (long long)nt);
    int64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        pst_tensor *o[3] = {NULL, NULL, NULL};
        if (pass) {
            o[0] = pst_kctx_alloc_output(c, 0, PST_INT32, pst_shape_1d(n));
            o[1] = o[0] ? pst_kctx_alloc_output(c, 1, PST_INT64, pst_shape_1d(n)) : NULL;
            o[2] = o[1] ? pst_kctx_alloc_output(c, 2, PST_FLOAT, pst_shape_1d(n)) : NULL;
            if (o[2] == NULL) return c->status->code;
        }
        int64_t at = 0;
        for (int64_t i = 0; i < tc->n; i++) {
            int64_t pos = -1, x = pst_tensor_i64(tc)[i];
            for (int64_t j = 0; j < sc->n; j++)
                if (pst_tensor_i64(sc)[j] == x) pos = j;
            if (pos < 0) continue;
            if (pass) {
                pst_tensor_i32(o[0])[at] = (int32_t)(i / nt);
                pst_tensor_i64(o[1])[at] = pos;
                pst_tensor_f32(o[2])[at] = -FLT_MAX;
            }
            at++;
        }
        n = at;
    }
    return 0;
}

/* ---- RandomGamma(shape, alpha), RandomPoisson(V2)(shape, rate) --------------------------
 * Output shape ++ the parameter's shape: element (i, j) is a draw for parameter j. Gamma by
 * Marsaglia and Tsang's method (alpha < 1 boosted: G(alpha + 1) U^(1/alpha)); Poisson by
 * multiplying uniforms below a rate of 10 and Hormann's transformed rejection (PTRS) above.
 * The draws are pstrain's own, not TF's. */
static double gamma_draw(rng *r, double alpha) {
    if (!(alpha > 0)) return NAN;
    double boost = 1;
    if (alpha < 1) {
        double u = next_unit(r);
        boost = pow(u > 0 ? u : DBL_MIN, 1 / alpha);
        alpha += 1;
    }
    double d = alpha - 1.0 / 3, cc = 1 / sqrt(9 * d);
    for (;;) {
        double x = next_normal(r), v = 1 + cc * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = next_unit(r);
        if (u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)))
            return d * v * boost;
    }
}

static double poisson_draw(rng *r, double lam) {
    if (!(lam >= 0)) return NAN;
    if (lam < 10) {
        double limit = exp(-lam), prod = next_unit(r);
        int64_t k = 0;
        while (prod > limit) {
            prod *= next_unit(r);
            k++;
        }
        return (double)k;
    }
    double slam = sqrt(lam), loglam = log(lam), b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double u = next_unit(r) - 0.5, v = next_unit(r), us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + lam + 0.43);
        if (us >= 0.07 && v <= vr) return k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -lam + k * loglam - lgamma(k + 1))
            return k;
    }
}

static int dist_out(const pst_node *n, pst_dtype *dt) {
    const char *op = n->op->name;
    *dt = strcmp(op, "RandomPoissonV2") == 0 ? pst_node_attr_type(n, "dtype", PST_INT64)
                                             : pst_node_in_dtype(n, 1);
    return 0;
}

static int dist_shape(pst_node *n, pst_status *st) {
    pst_dtype dt;
    dist_out(n, &dt);
    pst_dtype pt = pst_node_in_dtype(n, 1);
    if (!pst_dtype_is_int(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "shape must be int32 or int64");
    if (strcmp(n->op->name, "RandomGamma") == 0 ? !pst_dtype_is_float(pt)
                                                : pt == PST_BOOL || pt == PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "%s does not take a %s parameter", n->op->name,
                              pst_dtype_name(pt));
    const pst_tensor *sc = pst_node_in_const(n, 0);
    pst_shape s = pst_shape_unknown(), p = pst_node_in_shape(n, 1);
    if (sc && read_shape(sc, &s, st) < 0) return PST_E_INVALID;
    if (s.rank >= 0 && p.rank >= 0) {
        if (s.rank + p.rank > PST_MAX_RANK)
            return pst_status_set(st, PST_E_INVALID, "the output would have more than %d dims",
                                  PST_MAX_RANK);
        for (int i = 0; i < p.rank; i++) s.dims[s.rank + i] = p.dims[i];
        s.rank += p.rank;
    } else {
        s = pst_shape_unknown();
    }
    pst_node_set_output(n, 0, dt, s);
    return 0;
}

static int dist_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    const pst_tensor *par = c->inputs[1];
    if (read_shape(c->inputs[0], &s, c->status) < 0) return c->status->code;
    if (s.rank + par->shape.rank > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "the output would have more than %d dims",
                              PST_MAX_RANK);
    int64_t samples = 1;
    for (int i = 0; i < s.rank; i++) samples *= s.dims[i];
    for (int i = 0; i < par->shape.rank; i++) s.dims[s.rank + i] = par->shape.dims[i];
    s.rank += par->shape.rank;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], s);
    if (o == NULL) return c->status->code;
    rng *r = state_of(c);
    int gamma = strcmp(c->op->name, "RandomGamma") == 0;
    for (int64_t i = 0; i < samples; i++)
        for (int64_t j = 0; j < par->n; j++) {
            double v = pst_tensor_get_f64(par, j);
            pst_tensor_set_f64(o, i * par->n + j, gamma ? gamma_draw(r, v) : poisson_draw(r, v));
        }
    return 0;
}

/* random_grad.py's: d alpha = sum over the sample dims of dy RandomGammaGrad(alpha, sample). */
static int random_gamma_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_shape ss = pst_output_shape(n->inputs[0]);
    if (ss.rank != 1 || ss.dims[0] < 0 || ss.dims[0] > PST_MAX_RANK)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the gradient of RandomGamma '%s' needs "
                                   "a shape input of known length", n->name);
    int k = (int)ss.dims[0];
    pst_output alpha = n->inputs[1];
    for (int i = 0; i < k; i++) alpha = pst_expand_dims(g, alpha, 0, NULL);
    pst_node_builder *b = pst_nb_new(g, "RandomGammaGrad", NULL);
    pst_nb_input(b, alpha);
    pst_nb_input(b, pst_out(n, 0));
    pst_nb_attr_type(b, "T", pst_output_dtype(alpha));
    pst_output partial = pst_nb_finish_out(b);
    int32_t axes[PST_MAX_RANK];
    for (int i = 0; i < k; i++) axes[i] = i;
    pst_output prod = pst_mul(g, dy[0], partial, NULL);
    dx[1] = k ? pst_reduce_sum(g, prod, k, axes, 0, NULL) : prod;
    return 0;
}

/* ---- ParameterizedTruncatedNormal(shape, means, stdevs, minvals, maxvals) -----------------
 * shape[0] batches; each parameter a scalar or one value per batch. Draws in standard units
 * z in [a, b]: plain normal rejection for a wide interval around 0, uniform proposals for a
 * narrow one, exponential proposals (Robert's) for a tail. */
static double ptn_draw(rng *r, double a, double b) {
    if (b <= 0 && a < 0) return -ptn_draw(r, -b, -a);
    if (a <= 0) { /* the interval holds 0 */
        for (;;) {
            double z = b - a >= 2 ? next_normal(r) : a + (b - a) * next_unit(r);
            if (z < a || z > b) continue;
            if (b - a >= 2 || next_unit(r) <= exp(-0.5 * z * z)) return z;
        }
    }
    if ((b - a) * a < 2) { /* uniform proposals over [a, b] */
        for (;;) {
            double z = a + (b - a) * next_unit(r);
            if (next_unit(r) <= exp(0.5 * (a * a - z * z))) return z;
        }
    }
    double lam = 0.5 * (a + sqrt(a * a + 4));
    for (;;) {
        double u = next_unit(r), z = a - log(u > 0 ? u : DBL_MIN) / lam;
        if (z <= b && next_unit(r) <= exp(-0.5 * (z - lam) * (z - lam))) return z;
    }
}

static int ptn_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (read_shape(c->inputs[0], &s, c->status) < 0) return c->status->code;
    if (s.rank < 1)
        return pst_kctx_error(c, PST_E_INVALID, "shape must have at least one dim (the batch)");
    int64_t batch = s.dims[0], total = 1;
    for (int i = 0; i < s.rank; i++) total *= s.dims[i];
    static const char *names[4] = {"means", "stdevs", "minvals", "maxvals"};
    for (int k = 1; k <= 4; k++)
        if (c->inputs[k]->n != 1 && c->inputs[k]->n != batch)
            return pst_kctx_error(c, PST_E_INVALID, "%s has %lld values for a batch of %lld",
                                  names[k - 1], (long long)c->inputs[k]->n, (long long)batch);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], s);
    if (o == NULL) return c->status->code;
    rng *r = state_of(c);
    int64_t per = batch ? total / batch : 0;
    for (int64_t bi = 0; bi < batch; bi++) {
        double p[4];
        for (int k = 0; k < 4; k++)
            p[k] = pst_tensor_get_f64(c->inputs[k + 1], c->inputs[k + 1]->n == 1 ? 0 : bi);
        if (!(p[2] < p[3]) || !(p[1] > 0))
            return pst_kctx_error(c, PST_E_INVALID, "batch %lld: minval %g must be below maxval %g "
                                  "and stdev %g positive", (long long)bi, p[2], p[3], p[1]);
        double a = (p[2] - p[0]) / p[1], b = (p[3] - p[0]) / p[1];
        for (int64_t j = 0; j < per; j++)
            pst_tensor_set_f64(o, bi * per + j, p[0] + p[1] * ptn_draw(r, a, b));
    }
    return 0;
}

/* ---- SampleDistortedBoundingBox(V2)(image_size [3], bounding_boxes [b, n, 4][,
 * min_object_covered]) -> begin, size, bboxes [1, 1, 4] (tf.image.sample_distorted_bounding_box,
 * Inception preprocessing). Up to max_attempts crops: an aspect ratio uniform in
 * aspect_ratio_range, a height drawn between the ones giving area_range's bounds (rounded), an
 * offset uniform over the valid ones; the first crop covering at least min_object_covered of
 * some box wins, else the whole image. TF's procedure with pstrain's draws. */
static int64_t uniform_below(rng *r, int64_t n) {
    return n > 0 ? (int64_t)(next_u64(r) % (uint64_t)n) : 0;
}

/* One crop of the given aspect ratio with an area in [lo, hi] pixels; 0 when there is none. */
static int random_crop_rect(rng *r, int64_t w0, int64_t h0, double lo, double hi, double ar,
                            int64_t *out) {
    int64_t h = (int64_t)lround(sqrt(lo / ar)), hmax = (int64_t)lround(sqrt(hi / ar));
    if ((double)hmax * ar > (double)w0) hmax = (int64_t)(((double)w0 + 0.5 - 1e-7) / ar);
    if (hmax > h0) hmax = h0;
    if (h >= hmax) h = hmax;
    if (h < hmax) h += uniform_below(r, hmax - h + 1);
    int64_t w = (int64_t)lround((double)h * ar);
    double area = (double)(w * h);
    if (area < lo) {
        h += 1;
        w = (int64_t)lround((double)h * ar);
        area = (double)(w * h);
    }
    if (area > hi) {
        h -= 1;
        w = (int64_t)lround((double)h * ar);
        area = (double)(w * h);
    }
    if (area < lo || area > hi || w > w0 || h > h0 || w <= 0 || h <= 0) return 0;
    int64_t y = h >= h0 ? 0 : uniform_below(r, h0 - h), x = w >= w0 ? 0 : uniform_below(r, w0 - w);
    out[0] = y, out[1] = x, out[2] = h, out[3] = w;
    return 1;
}

static int sdbb_kernel(pst_kernel_ctx *c) {
    const pst_tensor *is = c->inputs[0], *bb = c->inputs[1];
    if (is->n != 3) return pst_kctx_error(c, PST_E_INVALID, "image_size must have 3 values");
    int64_t H = pst_tensor_get_i64(is, 0), W = pst_tensor_get_i64(is, 1);
    if (H <= 0 || W <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "image height %lld and width %lld must be positive",
                              (long long)H, (long long)W);
    if (bb->shape.rank != 3 || bb->shape.dims[2] != 4)
        return pst_kctx_error(c, PST_E_INVALID, "bounding_boxes must be [batch, N, 4]");
    double cover = c->n_inputs > 2 ? pst_tensor_get_f64(c->inputs[2], 0)
                                   : pst_kctx_attr_f(c, "min_object_covered", 0.1f);
    const pst_attr *ara = pst_kctx_attr(c, "aspect_ratio_range"),
                   *aa = pst_kctx_attr(c, "area_range");
    double ar0 = ara && ara->n == 2 ? ara->list.f[0] : 0.75,
           ar1 = ara && ara->n == 2 ? ara->list.f[1] : 1.33;
    double a0 = aa && aa->n == 2 ? aa->list.f[0] : 0.05, a1 = aa && aa->n == 2 ? aa->list.f[1] : 1;
    if (!(ar0 > 0 && ar0 <= ar1) || !(a0 > 0 && a0 <= a1 && a1 <= 1))
        return pst_kctx_error(c, PST_E_INVALID,
                              "aspect_ratio_range [%g, %g] and area_range [%g, %g] "
                              "must be positive, ordered, areas at most 1",
                              ar0, ar1, a0, a1);
    int64_t nb = bb->n / 4;
    for (int64_t i = 0; i < bb->n; i++) {
        double v = pst_tensor_get_f64(bb, i);
        if (!(v >= 0 && v <= 1))
            return pst_kctx_error(c, PST_E_INVALID,
                                  "bounding box %lld has a coordinate %g outside [0, 1]",
                                  (long long)(i / 4), v);
    }
    if (nb == 0 && !pst_kctx_attr_b(c, "use_image_if_no_bounding_boxes", 0))
        return pst_kctx_error(c, PST_E_INVALID,
                              "no bounding boxes given: set use_image_if_no_bounding_boxes "
                              "to crop without them");
    rng *r = state_of(c);
    int64_t best[4] = {0, 0, H, W}, rect[4];
    int64_t attempts = pst_kctx_attr_i(c, "max_attempts", 100);
    for (int64_t t = 0; t < attempts; t++) {
        double ar = ar0 + (ar1 - ar0) * next_unit(r);
        if (!random_crop_rect(r, W, H, a0 * (double)(H * W), a1 * (double)(H * W), ar, rect))
            continue;
        int ok = nb == 0; /* the whole image is the box */
        for (int64_t k = 0; k < nb && !ok; k++) {
            double by0 = pst_tensor_get_f64(bb, k * 4) * (double)H,
                   bx0 = pst_tensor_get_f64(bb, k * 4 + 1) * (double)W;
            double by1 = pst_tensor_get_f64(bb, k * 4 + 2) * (double)H,
                   bx1 = pst_tensor_get_f64(bb, k * 4 + 3) * (double)W;
            double barea = (by1 - by0) * (bx1 - bx0);
            double ih = fmin(by1, (double)(rect[0] + rect[2])) - fmax(by0, (double)rect[0]);
            double iw = fmin(bx1, (double)(rect[1] + rect[3])) - fmax(bx0, (double)rect[1]);
            ok = barea > 0 && ih > 0 && iw > 0 && ih * iw / barea >= cover;
        }
        if (ok) {
            memcpy(best, rect, sizeof best);
            break;
        }
    }
    pst_tensor *ob = pst_kctx_alloc_output(c, 0, is->dtype, pst_shape_1d(3));
    pst_tensor *os = ob ? pst_kctx_alloc_output(c, 1, is->dtype, pst_shape_1d(3)) : NULL;
    pst_tensor *ox =
        os ? pst_kctx_alloc_output(c, 2, PST_FLOAT, pst_shape_make(3, (int64_t[]){1, 1, 4})) : NULL;
    if (ox == NULL) return c->status->code;
    const double begin[3] = {(double)best[0], (double)best[1], 0},
                 size[3] = {(double)best[2], (double)best[3], -1};
    for (int i = 0; i < 3; i++) {
        pst_tensor_set_f64(ob, i, begin[i]);
        pst_tensor_set_f64(os, i, size[i]);
    }
    float *bx = pst_tensor_f32(ox);
    bx[0] = (float)((double)best[0] / (double)H), bx[1] = (float)((double)best[1] / (double)W);
    bx[2] = (float)((double)(best[0] + best[2]) / (double)H),
    bx[3] = (float)((double)(best[1] + best[3]) / (double)W);
    return 0;
}

static int sdbb_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_int(dt))
        return pst_status_set(st, PST_E_INVALID, "image_size must be integers, got %s",
                              pst_dtype_name(dt));
    pst_node_set_output(n, 0, dt, pst_shape_1d(3));
    pst_node_set_output(n, 1, dt, pst_shape_1d(3));
    pst_node_set_output(n, 2, PST_FLOAT, pst_shape_make(3, (int64_t[]){1, 1, 4}));
    return 0;
}

static const pst_attr_spec sdbb_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                           {"seed", PST_ATTR_INT, 0},
                                           {"seed2", PST_ATTR_INT, 0},
                                           {"min_object_covered", PST_ATTR_FLOAT, 0},
                                           {"aspect_ratio_range", PST_ATTR_LIST_FLOAT, 0},
                                           {"area_range", PST_ATTR_LIST_FLOAT, 0},
                                           {"max_attempts", PST_ATTR_INT, 0},
                                           {"use_image_if_no_bounding_boxes", PST_ATTR_BOOL, 0},
                                           {0}};

static const pst_attr_spec sampler_attrs[] = {{"num_true", PST_ATTR_INT, 1},   {"num_sampled", PST_ATTR_INT, 0},
                                              {"unique", PST_ATTR_BOOL, 0},    {"range_max", PST_ATTR_INT, 0},
                                              {"seed", PST_ATTR_INT, 0},       {"seed2", PST_ATTR_INT, 0},
                                              {0}};

static const pst_attr_spec rnd_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {"T", PST_ATTR_TYPE, 0},
                                          {"Tout", PST_ATTR_TYPE, 0},  {"seed", PST_ATTR_INT, 0},
                                          {"seed2", PST_ATTR_INT, 0},  {"Tseed", PST_ATTR_TYPE, 0},
                                          {"S", PST_ATTR_TYPE, 0},     {"R", PST_ATTR_TYPE, 0},
                                          {0}};
#define RND(nm, nin)                                                                              \
    {.name = nm, .min_inputs = nin, .max_inputs = nin, .n_outputs = 1, .attrs = rnd_attrs,        \
     .shape = random_shape, .kernel = random_kernel,                                              \
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free}
static const pst_attr_spec multinomial_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                  {"output_dtype", PST_ATTR_TYPE, 0},
                                                  {"Tseed", PST_ATTR_TYPE, 0},
                                                  {"seed", PST_ATTR_INT, 0},
                                                  {"seed2", PST_ATTR_INT, 0},
                                                  {0}};
static const pst_op_def random_ops[] = {
    RND("RandomUniform", 1), RND("RandomStandardNormal", 1), RND("TruncatedNormal", 1),
    RND("RandomUniformInt", 3),
    RND("StatelessRandomUniform", 2), RND("StatelessRandomNormal", 2),
    RND("StatelessTruncatedNormal", 2), RND("StatelessRandomUniformInt", 4),
    {.name = "StatelessMultinomial", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = multinomial_attrs, .shape = multinomial_shape, .kernel = multinomial_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "RandomGamma", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = rnd_attrs,
     .shape = dist_shape, .kernel = dist_kernel, .grad = random_gamma_grad,
     .flags = PST_OP_STATEFUL, .state_free = rng_free},
    {.name = "RandomPoisson", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = rnd_attrs,
     .shape = dist_shape, .kernel = dist_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free},
    {.name = "RandomPoissonV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = rnd_attrs, .shape = dist_shape, .kernel = dist_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free},
    {.name = "SampleDistortedBoundingBox", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3,
     .attrs = sdbb_attrs, .shape = sdbb_shape, .kernel = sdbb_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free},
    {.name = "SampleDistortedBoundingBoxV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 3,
     .attrs = sdbb_attrs, .shape = sdbb_shape, .kernel = sdbb_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free},
    {.name = "ParameterizedTruncatedNormal", .min_inputs = 5, .max_inputs = 5, .n_outputs = 1,
     .attrs = rnd_attrs, .shape = random_shape, .kernel = ptn_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE, .state_free = rng_free},
    {.name = "LogUniformCandidateSampler", .min_inputs = 1, .max_inputs = 1, .n_outputs = 3, .attrs = sampler_attrs,
     .shape = sampler_shape, .kernel = sampler_kernel, .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
     .state_free = rng_free},
    {.name = "UniformCandidateSampler", .min_inputs = 1, .max_inputs = 1, .n_outputs = 3, .attrs = sampler_attrs,
     .shape = sampler_shape, .kernel = sampler_kernel, .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
     .state_free = rng_free},
    {.name = "AllCandidateSampler", .min_inputs = 1, .max_inputs = 1, .n_outputs = 3, .attrs = sampler_attrs,
     .shape = sampler_shape, .kernel = sampler_kernel, .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
     .state_free = rng_free},
    {.name = "ComputeAccidentalHits", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3, .attrs = sampler_attrs,
     .shape = hits_shape, .kernel = hits_kernel, .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "RandomCrop", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = rnd_attrs,
     .shape = random_crop_shape, .kernel = random_crop_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS, .state_free = rng_free},
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
