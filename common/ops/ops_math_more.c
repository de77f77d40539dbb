/* More elementwise ops of TF 1.x graphs (issue 17): Xdivy, Xlogy, MulNoNan, TruncateMod,
 * ApproximateEqual, Erfc, Acosh, Asinh, Atanh, the special functions (Lgamma, Digamma,
 * Polygamma, Zeta, Igamma, Igammac, IgammaGradA, RandomGammaGrad, Betainc, BesselI0e,
 * BesselI1e), NextAfter, and the bitwise ops Invert, LeftShift, RightShift, BitwiseAnd/Or/Xor,
 * PopulationCount. Semantics as TF 1.15's kernels:
 *   Xdivy(x, y) = 0 where x == 0, else x / y;  Xlogy(x, y) = 0 where x == 0, else x log y;
 *   MulNoNan(x, y) = 0 where y == 0 (even for an infinite or NaN x), else x y;
 *   TruncateMod = C's fmod / % (the sign of x); an integer divisor of 0 is an error;
 *   shifts clamp the shift count to [0, bits - 1]; RightShift is arithmetic for signed types;
 *   ApproximateEqual(x, y) = |x - y| < tolerance on same-shape inputs (no broadcasting).
 * Gradients where TF has them, built from the same ops TF's math_grad.py uses. */
#include <math.h>
#include <string.h>

#include "kernels_ew.h"
#include "op.h"
#include "ops.h"

/* Float-only ops first, then TruncateMod (both), then the integer-only ones. */
enum more_code {
    M_XDIVY, M_XLOGY, M_MULNONAN, M_ERFC, M_ACOSH, M_ASINH, M_ATANH, M_LGAMMA, M_DIGAMMA, M_POLYGAMMA,
    M_ZETA, M_IGAMMA, M_IGAMMAC, M_IGAMMA_GRAD_A, M_GAMMA_GRAD, M_NEXTAFTER, M_I0E, M_I1E,
    M_TRUNCMOD,
    M_LSHIFT, M_RSHIFT, M_BAND, M_BOR, M_BXOR, M_INVERT, M_POPCOUNT,
};

typedef struct more_op {
    pst_op_def def;
    int code;
} more_op;

static int code_of(const pst_op_def *op) { return ((const more_op *)op)->code; }
static int float_only(int code) { return code < M_TRUNCMOD; }
static int int_only(int code) { return code > M_TRUNCMOD; }

static double get_d(const pst_tensor *t, int64_t i) {
    return t->dtype == PST_FLOAT ? pst_tensor_f32(t)[i] : pst_tensor_f64(t)[i];
}

static void set_d(pst_tensor *t, int64_t i, double v) {
    if (t->dtype == PST_FLOAT)
        pst_tensor_f32(t)[i] = (float)v;
    else
        pst_tensor_f64(t)[i] = v;
}

static int64_t get_i(const pst_tensor *t, int64_t i) {
    switch (t->dtype) {
    case PST_INT32: return pst_tensor_i32(t)[i];
    case PST_UINT8: return pst_tensor_u8(t)[i];
    default: return pst_tensor_i64(t)[i];
    }
}

/* Stores v wrapped to t's width (two's complement), as a C cast to the narrower type. */
static void set_i(pst_tensor *t, int64_t i, int64_t v) {
    switch (t->dtype) {
    case PST_INT32: pst_tensor_i32(t)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case PST_UINT8: pst_tensor_u8(t)[i] = (uint8_t)(uint64_t)v; break;
    default: pst_tensor_i64(t)[i] = v; break;
    }
}

static int bits_of(pst_dtype dt) { return (int)pst_dtype_size(dt) * 8; }

/* ---- Special functions (Lgamma, Digamma, Polygamma, Zeta) --------------------------------
 * digamma: reflection below 0 (+inf at the poles), recurrence up to 10, then the asymptotic
 * series; Hurwitz zeta by Euler-Maclaurin summation (x = 1: +inf; x < 1: NaN; q a
 * non-positive integer: +inf for an even integer x, else NaN, as Eigen's);
 * polygamma(n, x) = (-1)^(n+1) n! zeta(n+1, x), digamma for n = 0, NaN for a non-integer n. */
static const double bern2[12] = {1.0 / 6,        -1.0 / 30,        1.0 / 42,          -1.0 / 30,
                                 5.0 / 66,       -691.0 / 2730,    7.0 / 6,           -3617.0 / 510,
                                 43867.0 / 798,  -174611.0 / 330,  854513.0 / 138,    -236364091.0 / 2730};

static double digamma(double x) {
    const double pi = 3.14159265358979323846;
    if (isnan(x)) return x;
    if (x <= 0) {
        if (x == floor(x)) return INFINITY;
        return digamma(1 - x) - pi / tan(pi * x);
    }
    double r = 0;
    while (x < 10) r -= 1 / x, x += 1;
    double x2 = 1 / (x * x), t = 0, p = x2;
    for (int k = 0; k < 6; k++, p *= x2) t += bern2[k] / (2.0 * (k + 1)) * p;
    return r + log(x) - 0.5 / x - t;
}

static double zeta(double x, double q) {
    if (isnan(x) || isnan(q)) return NAN;
    if (x == 1) return INFINITY;
    if (x < 1) return NAN;
    if (q <= 0) {
        if (q == floor(q)) return x == floor(x) && fmod(x, 2) == 0 ? INFINITY : NAN; /* Eigen's poles */
        if (x != floor(x)) return NAN; /* q^-x undefined */
    }
    double s = 0;
    int n = 0;
    for (; n < 9 || q + n <= 9; n++) s += pow(q + n, -x);
    double a = q + n, b = pow(a, -x);
    s += a * b / (x - 1) + 0.5 * b;
    double rising = x, fact = 2, ap = b / a; /* x (x+1)...(x+2j-2), (2j)!, a^(-x-2j+1) */
    for (int j = 1; j <= 12; j++) {
        double term = bern2[j - 1] / fact * rising * ap;
        s += term;
        if (fabs(term) < 1e-17 * fabs(s)) break;
        rising *= (x + 2 * j - 1) * (x + 2 * j);
        fact *= (2.0 * j + 1) * (2.0 * j + 2);
        ap /= a * a;
    }
    return s;
}

/* ---- Incomplete gamma and beta, scaled Bessel functions ----------------------------------
 * P(a, x) (Igamma) by its power series below x = a + 1, Q(a, x) = 1 - P (Igammac) by its
 * continued fraction above (modified Lentz); NaN for a <= 0 or x < 0, as Eigen's.
 * dP/da (IgammaGradA) differentiates the series term by term:
 *   P = sum_n e^-x x^(a+n) / Gamma(a+n+1), d/da of a term = term (log x - digamma(a+n+1)).
 * RandomGammaGrad(a, x) = dx/da of a gamma sample at fixed CDF = -(dP/da) / (dP/dx).
 * Betainc: I_x(a, b) by its continued fraction, using the symmetry I_x(a,b) = 1 - I_1-x(b,a)
 * where that converges faster. BesselI0e/I1e: exp(-|x|) I_nu(x) by the power series up to
 * |x| = 40 and the asymptotic series beyond. */
#define SPECIAL_EPS 1e-16
#define SPECIAL_ITERS 100000

static double gamma_front(double a, double x) { return exp(a * log(x) - x - lgamma(a)); }

static double igamma_series(double a, double x) {
    double term = 1 / a, sum = term;
    for (int n = 1; n < SPECIAL_ITERS && fabs(term) > fabs(sum) * SPECIAL_EPS; n++) {
        term *= x / (a + n);
        sum += term;
    }
    return sum * gamma_front(a, x);
}

/* Modified Lentz evaluation of a continued fraction b0 + a1/(b1 + a2/(b2 + ...)) whose terms
 * come from next(k, &ak, &bk, ctx); returns the value without b0. */
static double lentz(void (*next)(int k, double *ak, double *bk, const double *p), const double *p) {
    const double tiny = 1e-300;
    double f = tiny, c = f, d = 0;
    for (int k = 1; k < SPECIAL_ITERS; k++) {
        double ak, bk;
        next(k, &ak, &bk, p);
        d = bk + ak * d;
        d = fabs(d) < tiny ? 1 / tiny : 1 / d;
        c = bk + ak / c;
        if (fabs(c) < tiny) c = tiny;
        double delta = c * d;
        f *= delta;
        if (fabs(delta - 1) < SPECIAL_EPS) break;
    }
    return f;
}

/* Q(a, x) = front / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / (x + 5 - a - ...))). */
static void igammac_terms(int k, double *ak, double *bk, const double *p) {
    double a = p[0], x = p[1];
    *ak = k == 1 ? 1 : -(k - 1) * (k - 1 - a);
    *bk = x + 2 * k - 1 - a;
}

static double igamma_p(double a, double x, int upper) {
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0) return upper ? 1 : 0;
    if (isinf(x)) return upper ? 0 : 1;
    if (x < a + 1) {
        double pv = igamma_series(a, x);
        return upper ? 1 - pv : pv;
    }
    double q = gamma_front(a, x) * lentz(igammac_terms, (double[]){a, x});
    return upper ? q : 1 - q;
}

static double igamma_grad_a(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0 || isinf(x)) return 0;
    double lx = log(x), term = exp(a * lx - x - lgamma(a + 1)), psi = digamma(a + 1);
    double sum = term * (lx - psi), mass = term;
    for (int n = 1; n < SPECIAL_ITERS; n++) {
        psi += 1 / (a + n);
        term *= x / (a + n);
        mass += term;
        sum += term * (lx - psi);
        if (term < mass * SPECIAL_EPS && a + n > x) break;
    }
    return sum;
}

static double gamma_sample_grad(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0) return 0;
    double pdf = exp((a - 1) * log(x) - x - lgamma(a));
    return pdf > 0 ? -igamma_grad_a(a, x) / pdf : 0;
}

/* I_x(a, b) = front / a * 1 / (1 + d1 / (1 + d2 / (1 + ...))), d_2m+1 = -(a+m)(a+b+m)x /
 * ((a+2m)(a+2m+1)), d_2m = m(b-m)x / ((a+2m-1)(a+2m)). */
static void betainc_terms(int k, double *ak, double *bk, const double *p) {
    double a = p[0], b = p[1], x = p[2];
    *bk = 1;
    if (k == 1) {
        *ak = 1;
        return;
    }
    int j = k - 1, m = j / 2;
    *ak = j % 2 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
}

static double betainc(double a, double b, double x) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0 || x < 0 || x > 1) return NAN;
    if (x == 0 || x == 1) return x;
    double front = exp(a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b)));
    if (x < (a + 1) / (a + b + 2)) return front * lentz(betainc_terms, (double[]){a, b, x}) / a;
    return 1 - front * lentz(betainc_terms, (double[]){b, a, 1 - x}) / b;
}

static double bessel_ie(int nu, double x) {
    double ax = fabs(x), s;
    if (isnan(x)) return x;
    if (ax <= 40) { /* sum_k (ax/2)^(2k+nu) / (k! (k+nu)!), scaled by e^-ax from the start */
        double t = (nu ? ax / 2 : 1) * exp(-ax), q = ax * ax / 4;
        s = t;
        for (int k = 1; k < 500 && t > s * SPECIAL_EPS; k++) {
            t *= q / ((double)k * (k + nu));
            s += t;
        }
    } else { /* 1/sqrt(2 pi ax) sum_k (-1)^k prod_j (4nu^2 - (2j-1)^2) / (k! (8 ax)^k) */
        double t = 1, mu = 4.0 * nu * nu;
        s = 1;
        for (int k = 1; k < 30; k++) {
            t *= -(mu - (2.0 * k - 1) * (2.0 * k - 1)) / (k * 8 * ax);
            s += t;
            if (fabs(t) < SPECIAL_EPS) break;
        }
        s /= sqrt(2 * 3.14159265358979323846 * ax);
    }
    return nu && x < 0 ? -s : s;
}

static double polygamma(double n, double x) {
    if (n != floor(n) || n < 0) return NAN;
    if (n == 0) return digamma(x);
    return (fmod(n, 2) == 0 ? -1 : 1) * exp(lgamma(n + 1)) * zeta(n + 1, x);
}

static double bin_f(int code, double x, double y) {
    switch (code) {
    case M_POLYGAMMA: return polygamma(x, y);
    case M_ZETA: return zeta(x, y);
    case M_XDIVY: return x == 0 ? 0 : x / y;
    case M_XLOGY: return x == 0 ? 0 : x * log(y);
    case M_MULNONAN: return y == 0 ? 0 : x * y;
    case M_IGAMMA: return igamma_p(x, y, 0);
    case M_IGAMMAC: return igamma_p(x, y, 1);
    case M_IGAMMA_GRAD_A: return igamma_grad_a(x, y);
    case M_GAMMA_GRAD: return gamma_sample_grad(x, y);
    case M_NEXTAFTER: return nextafter(x, y);
    default: return fmod(x, y); /* M_TRUNCMOD */
    }
}

/* Integer ops on values already read at the tensor's width; *bad set for a zero divisor. */
static int64_t bin_i(int code, int64_t x, int64_t y, pst_dtype dt, int *bad) {
    int bits = bits_of(dt);
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    int64_t s = y < 0 ? 0 : y > bits - 1 ? bits - 1 : y;
    switch (code) {
    case M_TRUNCMOD:
        if (y == 0) {
            *bad = 1;
            return 0;
        }
        return y == -1 ? 0 : x % y; /* INT_MIN % -1 would trap */
    case M_LSHIFT: return (int64_t)(((uint64_t)x & mask) << s);
    case M_RSHIFT: return x >> s; /* x is sign-extended for signed types, zero for uint8 */
    case M_BAND: return x & y;
    case M_BOR: return x | y;
    default: return x ^ y; /* M_BXOR */
    }
}

typedef struct more_bin_ctx {
    int code, bad;
    const pst_tensor *a, *b;
    pst_tensor *o;
} more_bin_ctx;

static void more_bin_run(void *vctx, int64_t oo, int64_t ao, int64_t bo, int64_t n, int64_t sa,
                         int64_t sb) {
    more_bin_ctx *c = vctx;
    int is_f = pst_dtype_is_float(c->a->dtype);
    for (int64_t i = 0; i < n; i++) {
        if (c->code == M_NEXTAFTER && c->a->dtype == PST_FLOAT) /* the next float, not double */
            pst_tensor_f32(c->o)[oo + i] = nextafterf(pst_tensor_f32(c->a)[ao + i * sa],
                                                      pst_tensor_f32(c->b)[bo + i * sb]);
        else if (is_f)
            set_d(c->o, oo + i, bin_f(c->code, get_d(c->a, ao + i * sa), get_d(c->b, bo + i * sb)));
        else
            set_i(c->o, oo + i,
                  bin_i(c->code, get_i(c->a, ao + i * sa), get_i(c->b, bo + i * sb), c->a->dtype, &c->bad));
    }
}

static int more_bin_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    pst_bcast p;
    char sa[128], sb[128];
    if (pst_bcast_plan(&a->shape, &b->shape, &p) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "shapes %s and %s cannot be broadcast",
                              pst_shape_str(&a->shape, sa, sizeof sa),
                              pst_shape_str(&b->shape, sb, sizeof sb));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, pst_shape_make(p.rank, p.dims));
    if (o == NULL) return c->status->code;
    more_bin_ctx bc = {code_of(c->op), 0, a, b, o};
    pst_bcast_for_each(&p, more_bin_run, &bc);
    if (bc.bad) return pst_kctx_error(c, PST_E_INVALID, "Integer division by zero");
    return 0;
}

/* The dtypes each op takes: float ops float/double; bitwise ops integers; TruncateMod
 * int32, int64, float and double. */
static int check_dtype(const pst_node *n, pst_dtype dt, pst_status *st) {
    int code = code_of(n->op);
    int ok = dt == PST_INT32 || dt == PST_INT64 || pst_dtype_is_float(dt);
    if (float_only(code)) ok = pst_dtype_is_float(dt);
    if (int_only(code)) ok = pst_dtype_is_int(dt);
    if (!ok)
        return pst_status_set(st, PST_E_INVALID, "op %s does not take %s inputs", n->op->name,
                              pst_dtype_name(dt));
    return 0;
}

static int more_bin_shape(pst_node *n, pst_status *st) {
    if (pst_shape_broadcast_binary(n, st) < 0) return PST_E_INVALID;
    return check_dtype(n, pst_node_in_dtype(n, 0), st);
}

static double un_f(int code, double x) {
    switch (code) {
    case M_ERFC: return erfc(x);
    case M_ACOSH: return acosh(x);
    case M_ASINH: return asinh(x);
    case M_LGAMMA: return lgamma(x);
    case M_DIGAMMA: return digamma(x);
    case M_I0E: return bessel_ie(0, x);
    case M_I1E: return bessel_ie(1, x);
    default: return atanh(x); /* M_ATANH */
    }
}

static int more_un_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int code = code_of(c->op);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, code == M_POPCOUNT ? PST_UINT8 : x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int bits = bits_of(x->dtype);
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    for (int64_t i = 0; i < x->n; i++) {
        if (code == M_INVERT)
            set_i(o, i, ~get_i(x, i));
        else if (code == M_POPCOUNT)
            pst_tensor_u8(o)[i] = (uint8_t)__builtin_popcountll((uint64_t)get_i(x, i) & mask);
        else
            set_d(o, i, un_f(code, get_d(x, i)));
    }
    return 0;
}

static int more_un_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (check_dtype(n, dt, st) < 0) return PST_E_INVALID;
    pst_node_set_output(n, 0, code_of(n->op) == M_POPCOUNT ? PST_UINT8 : dt, pst_node_in_shape(n, 0));
    return 0;
}

/* ---- ApproximateEqual(x, y): |x - y| < tolerance, same shapes --------------------------- */
static int approx_eq_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt == PST_BOOL || dt == PST_STRING || dt == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "ApproximateEqual does not take %s inputs",
                              pst_dtype_name(dt));
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1);
    char sa[128], sb[128];
    if (!pst_shape_compatible(&a, &b))
        return pst_status_set(st, PST_E_INVALID, "x and y must be of the same shape, got %s and %s",
                              pst_shape_str(&a, sa, sizeof sa), pst_shape_str(&b, sb, sizeof sb));
    pst_node_set_output(n, 0, PST_BOOL, a.rank >= 0 ? a : b);
    return 0;
}

static int approx_eq_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    char sa[128], sb[128];
    if (!pst_shape_equal(&a->shape, &b->shape))
        return pst_kctx_error(c, PST_E_INVALID, "x and y must be of the same shape, got %s and %s",
                              pst_shape_str(&a->shape, sa, sizeof sa),
                              pst_shape_str(&b->shape, sb, sizeof sb));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, a->shape);
    if (o == NULL) return c->status->code;
    /* TF converts the tolerance to T: an integer tolerance is truncated (1e-5 becomes 0). */
    int is_f = pst_dtype_is_float(a->dtype);
    double tol = pst_kctx_attr_f(c, "tolerance", 1e-5f);
    if (!is_f) tol = trunc(tol);
    for (int64_t i = 0; i < a->n; i++) {
        double d = a->dtype == PST_FLOAT ? fabsf(pst_tensor_f32(a)[i] - pst_tensor_f32(b)[i])
                   : is_f ? fabs(get_d(a, i) - get_d(b, i))
                          : fabs((double)get_i(a, i) - (double)get_i(b, i));
        pst_tensor_u8(o)[i] = d < tol;
    }
    return 0;
}

/* ---- Cross(a, b): 3-vector cross products over the last dim (tf.cross) ------------------ */
static int cross_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1);
    char sa[128], sb[128];
    if (!pst_shape_compatible(&a, &b) || (a.rank >= 0 && (a.rank < 1 || (a.dims[a.rank - 1] >= 0 && a.dims[a.rank - 1] != 3))))
        return pst_status_set(st, PST_E_INVALID, "a %s and b %s must be of one shape with an innermost dim of 3",
                              pst_shape_str(&a, sa, sizeof sa), pst_shape_str(&b, sb, sizeof sb));
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt == PST_BOOL || dt == PST_STRING || dt == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "Cross takes numbers, got %s", pst_dtype_name(dt));
    pst_node_set_output(n, 0, dt, a.rank >= 0 ? a : b);
    return 0;
}

static int cross_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    char sa[128], sb[128];
    if (!pst_shape_equal(&a->shape, &b->shape) || a->shape.rank < 1 || a->shape.dims[a->shape.rank - 1] != 3)
        return pst_kctx_error(c, PST_E_INVALID, "a %s and b %s must be of one shape with an innermost dim of 3",
                              pst_shape_str(&a->shape, sa, sizeof sa), pst_shape_str(&b->shape, sb, sizeof sb));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, a->shape);
    if (o == NULL) return c->status->code;
    int is_f = pst_dtype_is_float(a->dtype);
    for (int64_t v = 0; v < a->n; v += 3)
        for (int k = 0; k < 3; k++) {
            int p = (k + 1) % 3, q = (k + 2) % 3;
            if (is_f)
                set_d(o, v + k, get_d(a, v + p) * get_d(b, v + q) - get_d(a, v + q) * get_d(b, v + p));
            else
                set_i(o, v + k, (int64_t)((uint64_t)get_i(a, v + p) * (uint64_t)get_i(b, v + q) -
                                          (uint64_t)get_i(a, v + q) * (uint64_t)get_i(b, v + p)));
        }
    return 0;
}

/* ---- Betainc(a, b, x): each input x's shape or a scalar (TF broadcasts no further) ------- */
static int betainc_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 2, st) < 0) return PST_E_INVALID;
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "Betainc takes float or double, got %s",
                              pst_dtype_name(pst_node_in_dtype(n, 0)));
    pst_shape out = pst_shape_scalar();
    for (int i = 0; i < 3; i++) {
        pst_shape s = pst_node_in_shape(n, i);
        char a[128], b[128];
        if (s.rank == 0) continue;
        if (out.rank != 0 && !pst_shape_compatible(&s, &out))
            return pst_status_set(st, PST_E_INVALID, "a, b and x must be scalars or of one shape, "
                                  "got %s and %s", pst_shape_str(&out, a, sizeof a),
                                  pst_shape_str(&s, b, sizeof b));
        if (out.rank != 0 && out.rank >= 0) continue;
        out = s;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int betainc_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in[3] = {c->inputs[0], c->inputs[1], c->inputs[2]};
    const pst_tensor *big = in[0];
    for (int i = 0; i < 3; i++)
        if (in[i]->shape.rank > 0) big = in[i];
    char a[128], b[128];
    for (int i = 0; i < 3; i++)
        if (in[i]->shape.rank > 0 && !pst_shape_equal(&in[i]->shape, &big->shape))
            return pst_kctx_error(c, PST_E_INVALID, "a, b and x must be scalars or of one shape, "
                                  "got %s and %s", pst_shape_str(&in[i]->shape, a, sizeof a),
                                  pst_shape_str(&big->shape, b, sizeof b));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, big->dtype, big->shape);
    if (o == NULL) return c->status->code;
    for (int64_t k = 0; k < o->n; k++) {
        double v[3];
        for (int i = 0; i < 3; i++) v[i] = get_d(in[i], in[i]->shape.rank > 0 ? k : 0);
        set_d(o, k, betainc(v[0], v[1], v[2]));
    }
    return 0;
}

/* TF's: d a = cross(b, dy), d b = cross(dy, a). */
static int cross_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);

/* ---- Gradients ------------------------------------------------------------------------- */
static pst_output op2(pst_graph *g, const char *op, pst_output a, pst_output b) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    return pst_nb_finish_out(nb);
}

static pst_output op1(pst_graph *g, const char *op, pst_output a) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, a);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    return pst_nb_finish_out(nb);
}

static int more_bin_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], y = n->inputs[1], d = dy[0];
    pst_dtype dt = pst_output_dtype(x);
    switch (code_of(n->op)) {
    case M_XDIVY:
    case M_XLOGY: {
        /* d/dx: op(x != 0, y); d/dy: Xdivy(-x, y^2) (Xdivy) or Xdivy(x, y) (Xlogy) */
        int xdivy = code_of(n->op) == M_XDIVY;
        pst_output nz = pst_cast(g, pst_not_equal(g, x, pst_const_scalar(g, dt, 0, NULL), NULL), dt, NULL);
        pst_output px = op2(g, n->op->name, nz, y);
        pst_output py = xdivy ? op2(g, "Xdivy", pst_neg(g, x, NULL), pst_square(g, y, NULL))
                              : op2(g, "Xdivy", x, y);
        dx[0] = pst_reduce_to_shape_of(g, pst_mul(g, px, d, NULL), x, NULL);
        dx[1] = pst_reduce_to_shape_of(g, pst_mul(g, py, d, NULL), y, NULL);
        break;
    }
    case M_MULNONAN:
        dx[0] = pst_reduce_to_shape_of(g, op2(g, "MulNoNan", d, y), x, NULL);
        dx[1] = pst_reduce_to_shape_of(g, op2(g, "MulNoNan", x, d), y, NULL);
        break;
    case M_POLYGAMMA: /* d/dx polygamma(a, x) = polygamma(a + 1, x); none for a */
        dx[1] = pst_reduce_to_shape_of(
            g, pst_mul(g, d, op2(g, "Polygamma", pst_add(g, x, pst_const_scalar(g, dt, 1, NULL), NULL), y), NULL), y, NULL);
        break;
    case M_IGAMMA:
    case M_IGAMMAC: { /* d/da: IgammaGradA; d/dx: x^(a-1) e^-x / Gamma(a); negated for Igammac */
        pst_output one = pst_const_scalar(g, dt, 1, NULL);
        pst_output px = pst_exp(
            g,
            pst_sub(g,
                    pst_sub(g, pst_mul(g, pst_sub(g, x, one, NULL), pst_log(g, y, NULL), NULL), y,
                            NULL),
                    op1(g, "Lgamma", x), NULL),
            NULL);
        pst_output pa = op2(g, "IgammaGradA", x, y);
        if (code_of(n->op) == M_IGAMMAC) {
            px = pst_neg(g, px, NULL);
            pa = pst_neg(g, pa, NULL);
        }
        dx[0] = pst_reduce_to_shape_of(g, pst_mul(g, pa, d, NULL), x, NULL);
        dx[1] = pst_reduce_to_shape_of(g, pst_mul(g, px, d, NULL), y, NULL);
        break;
    }
    case M_ZETA: /* d/dq zeta(x, q) = -x zeta(x + 1, q); none for x */
        dx[1] = pst_reduce_to_shape_of(
            g, pst_mul(g, d, pst_neg(g, pst_mul(g, x, op2(g, "Zeta", pst_add(g, x, pst_const_scalar(g, dt, 1, NULL), NULL), y), NULL), NULL), NULL),
            y, NULL);
        break;
    default: break;
    }
    return 0;
}

static int more_un_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], y = pst_out(n, 0), d = dy[0];
    pst_dtype dt = pst_output_dtype(x);
    switch (code_of(n->op)) {
    case M_ERFC: /* -dy 2 / sqrt(pi) exp(-x^2) */
        dx[0] = pst_mul(g, d, pst_mul(g, pst_const_scalar(g, dt, -1.1283791670955126, NULL),
                                      pst_exp(g, pst_neg(g, pst_square(g, x, NULL), NULL), NULL), NULL),
                        NULL);
        break;
    case M_ACOSH: dx[0] = pst_real_div(g, d, op1(g, "Sinh", y), NULL); break;
    case M_LGAMMA: dx[0] = pst_mul(g, d, op1(g, "Digamma", x), NULL); break;
    case M_DIGAMMA: dx[0] = pst_mul(g, d, op2(g, "Polygamma", pst_const_scalar(g, dt, 1, NULL), x), NULL); break;
    case M_ASINH: dx[0] = pst_real_div(g, d, op1(g, "Cosh", y), NULL); break;
    case M_I0E: /* I1e(x) - sign(x) I0e(x) */
        dx[0] = pst_mul(
            g, d, pst_sub(g, op1(g, "BesselI1e", x), pst_mul(g, op1(g, "Sign", x), y, NULL), NULL),
            NULL);
        break;
    case M_I1E: { /* I0e(x) - I1e(x) (sign(x) + 1 / x), and 1/2 at x = 0 (the limit) */
        pst_output is0 = pst_equal(g, x, pst_zeros_like(g, x, NULL), NULL);
        pst_output safe = pst_select(g, is0, pst_ones_like(g, x, NULL), x, NULL);
        pst_output r = pst_sub(
            g, op1(g, "BesselI0e", safe),
            pst_mul(g, y, pst_add(g, op1(g, "Sign", safe), op1(g, "Reciprocal", safe), NULL), NULL),
            NULL);
        pst_output half =
            pst_add(g, pst_zeros_like(g, x, NULL), pst_const_scalar(g, dt, 0.5, NULL), NULL);
        dx[0] = pst_mul(g, d, pst_select(g, is0, half, r, NULL), NULL);
        break;
    }
    case M_ATANH: /* dy / (1 - x^2) */
        dx[0] = pst_real_div(g, d, pst_sub(g, pst_const_scalar(g, dt, 1, NULL), pst_square(g, x, NULL), NULL),
                             NULL);
        break;
    default: break;
    }
    return 0;
}

/* TF's: no gradient for a and b; d x = dy x^(a-1) (1-x)^(b-1) / B(a, b), summed to x's shape. */
static int betainc_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output a = n->inputs[0], b = n->inputs[1], x = n->inputs[2];
    pst_dtype dt = pst_output_dtype(x);
    pst_output one = pst_const_scalar(g, dt, 1, NULL);
    pst_output lbeta = pst_sub(g, pst_add(g, op1(g, "Lgamma", a), op1(g, "Lgamma", b), NULL),
                               op1(g, "Lgamma", pst_add(g, a, b, NULL)), NULL);
    pst_output logp =
        pst_add(g, pst_mul(g, pst_sub(g, b, one, NULL), op1(g, "Log1p", pst_neg(g, x, NULL)), NULL),
                pst_mul(g, pst_sub(g, a, one, NULL), pst_log(g, x, NULL), NULL), NULL);
    pst_output px = pst_exp(g, pst_sub(g, logp, lbeta, NULL), NULL);
    dx[2] = pst_reduce_to_shape_of(g, pst_mul(g, px, dy[0], NULL), x, NULL);
    return 0;
}

static int cross_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = op2(g, "Cross", n->inputs[1], dy[0]);
    dx[1] = op2(g, "Cross", dy[0], n->inputs[0]);
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec tol_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"tolerance", PST_ATTR_FLOAT, 0}, {0}};
#define ND PST_OP_NOT_DIFFERENTIABLE
#define MBIN(nm, code, G, F)                                                                      \
    {{.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = t_attrs,             \
      .shape = more_bin_shape, .kernel = more_bin_kernel, .grad = G, .flags = F},                 \
     code}
#define MUN(nm, code, G, F)                                                                       \
    {{.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,             \
      .shape = more_un_shape, .kernel = more_un_kernel, .grad = G, .flags = F},                   \
     code}

static const more_op more_ops[] = {
    MBIN("Xdivy", M_XDIVY, more_bin_grad, 0),
    MBIN("Xlogy", M_XLOGY, more_bin_grad, 0),
    MBIN("MulNoNan", M_MULNONAN, more_bin_grad, 0),
    MBIN("TruncateMod", M_TRUNCMOD, NULL, 0), /* TF has no gradient */
    MBIN("Polygamma", M_POLYGAMMA, more_bin_grad, 0),
    MBIN("Zeta", M_ZETA, more_bin_grad, 0),
    MUN("Lgamma", M_LGAMMA, more_un_grad, 0),
    MBIN("Igamma", M_IGAMMA, more_bin_grad, 0),
    MBIN("Igammac", M_IGAMMAC, more_bin_grad, 0),
    MBIN("IgammaGradA", M_IGAMMA_GRAD_A, NULL, 0), /* TF registers no gradient */
    MBIN("RandomGammaGrad", M_GAMMA_GRAD, NULL, 0),
    MBIN("NextAfter", M_NEXTAFTER, NULL, ND),
    MUN("BesselI0e", M_I0E, more_un_grad, 0),
    MUN("BesselI1e", M_I1E, more_un_grad, 0),
    MUN("Digamma", M_DIGAMMA, more_un_grad, 0),
    MBIN("LeftShift", M_LSHIFT, NULL, ND),
    MBIN("RightShift", M_RSHIFT, NULL, ND),
    MBIN("BitwiseAnd", M_BAND, NULL, ND),
    MBIN("BitwiseOr", M_BOR, NULL, ND),
    MBIN("BitwiseXor", M_BXOR, NULL, ND),
    MUN("Erfc", M_ERFC, more_un_grad, 0),
    MUN("Acosh", M_ACOSH, more_un_grad, 0),
    MUN("Asinh", M_ASINH, more_un_grad, 0),
    MUN("Atanh", M_ATANH, more_un_grad, 0),
    MUN("Invert", M_INVERT, NULL, ND),
    MUN("PopulationCount", M_POPCOUNT, NULL, ND),
};

static const pst_op_def approx_eq_op = {.name = "ApproximateEqual", .min_inputs = 2, .max_inputs = 2,
                                        .n_outputs = 1, .attrs = tol_attrs, .shape = approx_eq_shape,
                                        .kernel = approx_eq_kernel, .flags = ND};

static const pst_op_def cross_op = {.name = "Cross", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
                                    .attrs = t_attrs, .shape = cross_shape, .kernel = cross_kernel,
                                    .grad = cross_grad};

static const pst_op_def betainc_op = {.name = "Betainc", .min_inputs = 3, .max_inputs = 3,
                                      .n_outputs = 1, .attrs = t_attrs, .shape = betainc_shape,
                                      .kernel = betainc_kernel, .grad = betainc_grad};

void pst__register_math_more_ops(void) {
    for (size_t i = 0; i < sizeof more_ops / sizeof more_ops[0]; i++) pst_op_register(&more_ops[i].def);
    pst_op_register(&betainc_op);
    pst_op_register(&approx_eq_op);
    pst_op_register(&cross_op);
}
