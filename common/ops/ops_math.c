/* Elementwise arithmetic, activations, comparisons, casts, select (see ops_math.h).
 * Reductions live in ops_reduce.c. */
#include "ops_math.h"

#include <math.h>
#include <string.h>

#include "kernels_ew.h"
#include "op.h"
#include "ops.h"
#include "parallel.h"

/* ---- Binary elementwise ---------------------------------------------------------------- */

enum bin_code {
    B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_POW,
    B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_AND, B_OR,
    B_RELU_GRAD, B_RELU6_GRAD, B_LRELU_GRAD, B_ELU_GRAD, B_SIGMOID_GRAD, B_TANH_GRAD,
    B_SQRT_GRAD, B_RSQRT_GRAD,
    B_FLOORDIV, B_FLOORMOD, B_TDIV, B_RECIP_GRAD,
    B_SQDIFF, B_DIVNONAN, B_TRUNCDIV, B_ATAN2, B_SOFTPLUS_GRAD, B_SOFTSIGN_GRAD, B_SELU_GRAD, B_MOD,
};

/* tf.nn.selu's constants. */
#define SELU_SCALE 1.0507009873554804934193349852946
#define SELU_ALPHA 1.6732632423543772848170429916717

typedef struct math_op {
    pst_op_def def;
    int code;
} math_op;

static int is_compare(int c) { return c >= B_EQ && c <= B_OR; }

/* TF's float FloorMod: fmod moved to the divisor's sign (NaN for a divisor of 0). */
static double float_floor_mod(double x, double y) {
    double r = fmod(x, y);
    return r != 0 && ((y < 0) != (r < 0)) ? r + y : r;
}

static float float_floor_modf(float x, float y) {
    float r = fmodf(x, y);
    return r != 0 && ((y < 0) != (r < 0)) ? r + y : r;
}

static int is_int_division(int c) {
    return c == B_FLOORDIV || c == B_FLOORMOD || c == B_TDIV || c == B_TRUNCDIV || c == B_MOD;
}

/* Integer division ops in exact 64-bit arithmetic; y is never 0 here (the kernel checks first).
 * x / -1 is computed as a negation that wraps, as the hardware division would trap. */
static int64_t int_division(int code, int64_t x, int64_t y) {
    if (y == -1) {
        int64_t neg = (int64_t)(0 - (uint64_t)x);
        return code == B_FLOORMOD || code == B_MOD ? 0 : neg;
    }
    int64_t q = x / y, r = x % y;
    switch (code) {
    case B_FLOORDIV: return r != 0 && ((r < 0) != (y < 0)) ? q - 1 : q;
    case B_FLOORMOD: return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
    case B_MOD: return r;
    default: return q; /* B_TDIV, B_TRUNCDIV */
    }
}

static void set_int(pst_tensor *t, int64_t i, int64_t v) {
    if (t->dtype == PST_INT64)
        pst_tensor_i64(t)[i] = v;
    else if (t->dtype == PST_INT32)
        pst_tensor_i32(t)[i] = (int32_t)v;
    else
        pst_tensor_set_f64(t, i, (double)v);
}

static double bin_scalar(int code, double x, double y, double alpha) {
    switch (code) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_MAX: return x > y ? x : y;
    case B_MIN: return x < y ? x : y;
    case B_POW: return pow(x, y);
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    case B_GE: return x >= y;
    case B_AND: return (x != 0) && (y != 0);
    case B_OR: return (x != 0) || (y != 0);
    case B_RELU_GRAD: return y > 0 ? x : 0;
    case B_RELU6_GRAD: return (y > 0 && y < 6) ? x : 0;
    case B_LRELU_GRAD: return y > 0 ? x : x * alpha;
    case B_ELU_GRAD: return y < 0 ? x * (y + 1) : x;
    case B_SIGMOID_GRAD: return y * x * (1 - x);
    case B_TANH_GRAD: return y * (1 - x * x);
    case B_SQRT_GRAD: return y * 0.5 / x;
    case B_RSQRT_GRAD: return y * -0.5 * x * x * x;
    case B_FLOORDIV: return floor(x / y);
    case B_FLOORMOD: return float_floor_mod(x, y);
    case B_TDIV: return trunc(x / y); /* Div of integers; floats take B_DIV */
    case B_RECIP_GRAD: return -y * x * x;
    case B_SQDIFF: return (x - y) * (x - y);
    case B_DIVNONAN: return y == 0 ? 0 : x / y;
    case B_TRUNCDIV: return trunc(x / y);
    case B_ATAN2: return atan2(x, y);
    case B_SOFTPLUS_GRAD: return x / (1 + exp(-y));
    case B_SOFTSIGN_GRAD: return x / ((1 + fabs(y)) * (1 + fabs(y)));
    case B_SELU_GRAD: return y < 0 ? x * (y + SELU_SCALE * SELU_ALPHA) : x * SELU_SCALE;
    case B_MOD: return fmod(x, y); /* truncated: the sign of x, as TF's Mod; NaN for y = 0 */
    default: return 0;
    }
}

/* Float loops: x from a, y from b; the grad codes follow TF's argument order
 * (ReluGrad(gradients, features): x = gradient, y = feature; SigmoidGrad(y, dy): x = y). */
#define F_LOOP(BODY)                                                                              \
    do {                                                                                          \
        if (sa == 1 && sb == 1)                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                     \
                float x = a[i], y = b[i];                                                         \
                o[i] = BODY;                                                                      \
            }                                                                                     \
        else if (sa == 1) {                                                                       \
            float y = b[0];                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                     \
                float x = a[i];                                                                   \
                o[i] = BODY;                                                                      \
            }                                                                                     \
        } else if (sb == 1) {                                                                     \
            float x = a[0];                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                     \
                float y = b[i];                                                                   \
                o[i] = BODY;                                                                      \
            }                                                                                     \
        } else {                                                                                  \
            float x = a[0], y = b[0];                                                             \
            for (int64_t i = 0; i < n; i++) o[i] = BODY;                                          \
        }                                                                                         \
    } while (0)

typedef struct bin_ctx {
    int code;
    float alpha;
    const pst_tensor *a, *b;
    pst_tensor *out;
} bin_ctx;

static void bin_run_f32(void *vctx, int64_t oo, int64_t ao, int64_t bo, int64_t n, int64_t sa,
                        int64_t sb) {
    bin_ctx *c = vctx;
    const float *a = pst_tensor_f32(c->a) + ao, *b = pst_tensor_f32(c->b) + bo;
    float *o = pst_tensor_f32(c->out) + oo;
    float alpha = c->alpha;
    switch (c->code) {
    case B_ADD: F_LOOP(x + y); break;
    case B_SUB: F_LOOP(x - y); break;
    case B_MUL: F_LOOP(x * y); break;
    case B_DIV: F_LOOP(x / y); break;
    case B_MAX: F_LOOP(x > y ? x : y); break;
    case B_MIN: F_LOOP(x < y ? x : y); break;
    case B_POW: F_LOOP(powf(x, y)); break;
    case B_RELU_GRAD: F_LOOP(y > 0 ? x : 0.0f); break;
    case B_RELU6_GRAD: F_LOOP((y > 0 && y < 6) ? x : 0.0f); break;
    case B_LRELU_GRAD: F_LOOP(y > 0 ? x : x * alpha); break;
    case B_ELU_GRAD: F_LOOP(y < 0 ? x * (y + 1) : x); break;
    case B_SIGMOID_GRAD: F_LOOP(y * x * (1 - x)); break;
    case B_TANH_GRAD: F_LOOP(y * (1 - x * x)); break;
    case B_SQRT_GRAD: F_LOOP(y * 0.5f / x); break;
    case B_RSQRT_GRAD: F_LOOP(y * -0.5f * x * x * x); break;
    case B_FLOORDIV: F_LOOP(floorf(x / y)); break;
    case B_FLOORMOD: F_LOOP(float_floor_modf(x, y)); break;
    case B_TDIV: F_LOOP(x / y); break;
    case B_RECIP_GRAD: F_LOOP(-y * x * x); break;
    case B_SQDIFF: F_LOOP((x - y) * (x - y)); break;
    case B_DIVNONAN: F_LOOP(y == 0 ? 0.0f : x / y); break;
    case B_TRUNCDIV: F_LOOP(truncf(x / y)); break;
    case B_ATAN2: F_LOOP(atan2f(x, y)); break;
    case B_SOFTPLUS_GRAD: F_LOOP(x / (1 + expf(-y))); break;
    case B_SOFTSIGN_GRAD: F_LOOP(x / ((1 + fabsf(y)) * (1 + fabsf(y)))); break;
    case B_MOD: F_LOOP(fmodf(x, y)); break;
    case B_SELU_GRAD: F_LOOP(y < 0 ? x * (y + (float)(SELU_SCALE * SELU_ALPHA)) : x * (float)SELU_SCALE); break;
    default: break;
    }
}

static void bin_run_generic(void *vctx, int64_t oo, int64_t ao, int64_t bo, int64_t n, int64_t sa,
                            int64_t sb) {
    bin_ctx *c = vctx;
    int code = c->code == B_TDIV && pst_dtype_is_float(c->a->dtype) ? B_DIV : c->code;
    if (is_int_division(code) && !pst_dtype_is_float(c->a->dtype)) {
        for (int64_t i = 0; i < n; i++)
            set_int(c->out, oo + i,
                               int_division(code, pst_tensor_get_i64(c->a, ao + i * sa),
                                            pst_tensor_get_i64(c->b, bo + i * sb)));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        pst_tensor_set_f64(c->out, oo + i,
                           bin_scalar(code, pst_tensor_get_f64(c->a, ao + i * sa),
                                      pst_tensor_get_f64(c->b, bo + i * sb), c->alpha));
}

/* Flat runs of same-shape (or scalar) operands, split across the pool's threads. */
typedef struct bin_par_ctx {
    bin_ctx bc;
    int64_t sa, sb;
} bin_par_ctx;

static void bin_par_range(void *vctx, int64_t b, int64_t e) {
    bin_par_ctx *p = vctx;
    bin_run_f32(&p->bc, b, b * p->sa, b * p->sb, e - b, p->sa, p->sb);
}

static int binary_kernel(pst_kernel_ctx *c) {
    int code = ((const math_op *)c->op)->code;
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    pst_bcast p;
    char sa[128], sb[128];
    if (pst_bcast_plan(&a->shape, &b->shape, &p) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "shapes %s and %s cannot be broadcast",
                              pst_shape_str(&a->shape, sa, sizeof sa),
                              pst_shape_str(&b->shape, sb, sizeof sb));
    if (is_int_division(code) && !pst_dtype_is_float(a->dtype))
        for (int64_t i = 0; i < b->n; i++)
            if (pst_tensor_get_i64(b, i) == 0)
                return pst_kctx_error(c, PST_E_INVALID, "Integer division by zero");
    pst_shape os = pst_shape_make(p.rank, p.dims);
    /* Same-shape results may reuse an input buffer the executor is about to free; we keep it
     * simple and allocate. */
    pst_tensor *o = pst_kctx_alloc_output(c, 0, is_compare(code) ? PST_BOOL : a->dtype, os);
    if (o == NULL) return c->status->code;
    bin_ctx bc = {code, pst_kctx_attr_f(c, "alpha", 0.2f), a, b, o};
    if (a->dtype == PST_FLOAT && !is_compare(code) && o->n >= (1 << 16) &&
        (a->n == o->n || a->n == 1) && (b->n == o->n || b->n == 1)) {
        bin_par_ctx pc = {bc, a->n == 1 ? 0 : 1, b->n == 1 ? 0 : 1};
        pst_parallel_for(o->n, 1 << 14, bin_par_range, &pc);
    } else if (a->dtype == PST_FLOAT && !is_compare(code))
        pst_bcast_for_each(&p, bin_run_f32, &bc);
    else
        pst_bcast_for_each(&p, bin_run_generic, &bc);
    return 0;
}

static int binary_shape(pst_node *n, pst_status *st) {
    int code = ((const math_op *)n->op)->code;
    if (pst_shape_broadcast_binary(n, st) < 0) return PST_E_INVALID;
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if ((code == B_AND || code == B_OR) && dt != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "logical ops take bool inputs, got %s",
                              pst_dtype_name(dt));
    if (dt == PST_BOOL && !(code == B_AND || code == B_OR || code == B_EQ || code == B_NE))
        return pst_status_set(st, PST_E_INVALID, "op %s does not take bool inputs", n->op->name);
    if (is_compare(code)) n->out_dtypes[0] = PST_BOOL;
    return 0;
}

/* ---- Unary elementwise ----------------------------------------------------------------- */

enum un_code {
    U_NEG, U_SQUARE, U_SQRT, U_RSQRT, U_EXP, U_LOG, U_ABS, U_FLOOR, U_COS, U_SIN, U_SIGN,
    U_RELU, U_RELU6, U_ELU, U_SIGMOID, U_TANH, U_LRELU, U_NOT, U_RECIP, U_ATAN,
    U_LOG1P, U_EXPM1, U_SOFTPLUS, U_SOFTSIGN, U_SELU, U_ERF, U_ROUND, U_CEIL,
    U_SINH, U_COSH, U_TAN, U_ASIN, U_ACOS,
};

/* log(1 + e^x) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

static double un_scalar(int code, double x, double alpha) {
    switch (code) {
    case U_NEG: return -x;
    case U_SQUARE: return x * x;
    case U_SQRT: return sqrt(x);
    case U_RSQRT: return 1 / sqrt(x);
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_ABS: return fabs(x);
    case U_FLOOR: return floor(x);
    case U_COS: return cos(x);
    case U_SIN: return sin(x);
    case U_SIGN: return (x > 0) - (x < 0);
    case U_RELU: return x > 0 ? x : 0;
    case U_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case U_ELU: return x < 0 ? exp(x) - 1 : x;
    case U_SIGMOID: return 1 / (1 + exp(-x));
    case U_TANH: return tanh(x);
    case U_LRELU: return x > 0 ? x : x * alpha;
    case U_NOT: return x == 0;
    case U_RECIP: return 1 / x;
    case U_ATAN: return atan(x);
    case U_LOG1P: return log1p(x);
    case U_EXPM1: return expm1(x);
    case U_SOFTPLUS: return softplus(x);
    case U_SOFTSIGN: return x / (1 + fabs(x));
    case U_SELU: return x > 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * expm1(x);
    case U_ERF: return erf(x);
    case U_ROUND: return nearbyint(x); /* half to even, as TF's Round */
    case U_CEIL: return ceil(x);
    case U_SINH: return sinh(x);
    case U_COSH: return cosh(x);
    case U_TAN: return tan(x);
    case U_ASIN: return asin(x);
    case U_ACOS: return acos(x);
    default: return 0;
    }
}

#define U_LOOP(BODY)                                                                              \
    for (int64_t i = 0; i < n; i++) {                                                             \
        float x = a[i];                                                                           \
        o[i] = BODY;                                                                              \
    }

typedef struct un_ctx {
    int code;
    float alpha;
    const float *a;
    float *o;
} un_ctx;

static void unary_f32_range(void *vctx, int64_t b, int64_t e) {
    un_ctx *u = vctx;
    const float *a = u->a + b;
    float *o = u->o + b;
    float alpha = u->alpha;
    int64_t n = e - b;
    switch (u->code) {
        case U_NEG: U_LOOP(-x); break;
        case U_SQUARE: U_LOOP(x * x); break;
        case U_SQRT: U_LOOP(sqrtf(x)); break;
        case U_RSQRT: U_LOOP(1.0f / sqrtf(x)); break;
        case U_EXP: U_LOOP(expf(x)); break;
        case U_LOG: U_LOOP(logf(x)); break;
        case U_ABS: U_LOOP(fabsf(x)); break;
        case U_FLOOR: U_LOOP(floorf(x)); break;
        case U_COS: U_LOOP(cosf(x)); break;
        case U_SIN: U_LOOP(sinf(x)); break;
        case U_SIGN: U_LOOP((float)((x > 0) - (x < 0))); break;
        case U_RELU: U_LOOP(x > 0 ? x : 0.0f); break;
        case U_RELU6: U_LOOP(x < 0 ? 0.0f : x > 6 ? 6.0f : x); break;
        case U_ELU: U_LOOP(x < 0 ? expf(x) - 1 : x); break;
        case U_SIGMOID: U_LOOP(1.0f / (1.0f + expf(-x))); break;
        case U_TANH: U_LOOP(tanhf(x)); break;
        case U_LRELU: U_LOOP(x > 0 ? x : x * alpha); break;
        case U_RECIP: U_LOOP(1.0f / x); break;
        case U_ATAN: U_LOOP(atanf(x)); break;
        case U_LOG1P: U_LOOP(log1pf(x)); break;
        case U_EXPM1: U_LOOP(expm1f(x)); break;
        case U_SOFTPLUS: U_LOOP((float)softplus(x)); break;
        case U_SOFTSIGN: U_LOOP(x / (1 + fabsf(x))); break;
        case U_SELU: U_LOOP(x > 0 ? (float)SELU_SCALE * x : (float)(SELU_SCALE * SELU_ALPHA) * expm1f(x)); break;
        case U_ERF: U_LOOP(erff(x)); break;
        case U_ROUND: U_LOOP(nearbyintf(x)); break;
        case U_CEIL: U_LOOP(ceilf(x)); break;
        case U_SINH: U_LOOP(sinhf(x)); break;
        case U_COSH: U_LOOP(coshf(x)); break;
        case U_TAN: U_LOOP(tanf(x)); break;
        case U_ASIN: U_LOOP(asinf(x)); break;
        case U_ACOS: U_LOOP(acosf(x)); break;
        default: break;
    }
}

static int unary_kernel(pst_kernel_ctx *c) {
    int code = ((const math_op *)c->op)->code;
    const pst_tensor *in = c->inputs[0];
    pst_tensor *out = pst_kctx_alloc_output(c, 0, in->dtype, in->shape);
    if (out == NULL) return c->status->code;
    float alpha = pst_kctx_attr_f(c, "alpha", 0.2f);
    int64_t n = in->n;
    if (in->dtype == PST_FLOAT) {
        un_ctx u = {code, alpha, pst_tensor_f32(in), pst_tensor_f32(out)};
        pst_parallel_for(n, 1 << 14, unary_f32_range, &u);
    } else {
        for (int64_t i = 0; i < n; i++)
            pst_tensor_set_f64(out, i, un_scalar(code, pst_tensor_get_f64(in, i), alpha));
    }
    return 0;
}

static int unary_shape(pst_node *n, pst_status *st) {
    int code = ((const math_op *)n->op)->code;
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (code == U_NOT ? dt != PST_BOOL : (dt == PST_BOOL))
        return pst_status_set(st, PST_E_INVALID, "op %s does not take %s input", n->op->name,
                              pst_dtype_name(dt));
    if (((code >= U_SQRT && code <= U_SIN && code != U_ABS) || code >= U_LOG1P) &&
        !pst_dtype_is_float(dt))
        return pst_status_set(st, PST_E_INVALID, "op %s needs a float input, got %s",
                              n->op->name, pst_dtype_name(dt));
    return pst_shape_same_as_input0(n, st);
}

/* ---- Builders -------------------------------------------------------------------------- */

static pst_output build_binary(pst_graph *g, const char *op, pst_output a, pst_output b,
                               const char *name) {
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    return pst_nb_finish_out(nb);
}

static pst_output build_unary(pst_graph *g, const char *op, pst_output x, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    return pst_nb_finish_out(nb);
}

#define BIN_BUILDER(fn, op)                                                                       \
    pst_output fn(pst_graph *g, pst_output a, pst_output b, const char *name) {                   \
        return build_binary(g, op, a, b, name);                                                   \
    }
BIN_BUILDER(pst_add, "Add")
BIN_BUILDER(pst_sub, "Sub")
BIN_BUILDER(pst_mul, "Mul")
BIN_BUILDER(pst_real_div, "RealDiv")
BIN_BUILDER(pst_maximum, "Maximum")
BIN_BUILDER(pst_minimum, "Minimum")
BIN_BUILDER(pst_pow, "Pow")
BIN_BUILDER(pst_equal, "Equal")
BIN_BUILDER(pst_not_equal, "NotEqual")
BIN_BUILDER(pst_less, "Less")
BIN_BUILDER(pst_less_equal, "LessEqual")
BIN_BUILDER(pst_greater, "Greater")
BIN_BUILDER(pst_greater_equal, "GreaterEqual")
BIN_BUILDER(pst_logical_and, "LogicalAnd")
BIN_BUILDER(pst_logical_or, "LogicalOr")

#define UN_BUILDER(fn, op)                                                                        \
    pst_output fn(pst_graph *g, pst_output x, const char *name) {                                 \
        return build_unary(g, op, x, name);                                                       \
    }
UN_BUILDER(pst_neg, "Neg")
UN_BUILDER(pst_square, "Square")
UN_BUILDER(pst_sqrt, "Sqrt")
UN_BUILDER(pst_rsqrt, "Rsqrt")
UN_BUILDER(pst_exp, "Exp")
UN_BUILDER(pst_log, "Log")
UN_BUILDER(pst_abs, "Abs")
UN_BUILDER(pst_floor, "Floor")
UN_BUILDER(pst_cos, "Cos")
UN_BUILDER(pst_sin, "Sin")
UN_BUILDER(pst_relu, "Relu")
UN_BUILDER(pst_relu6, "Relu6")
UN_BUILDER(pst_elu, "Elu")
UN_BUILDER(pst_sigmoid, "Sigmoid")
UN_BUILDER(pst_tanh, "Tanh")
UN_BUILDER(pst_logical_not, "LogicalNot")

static pst_output pst_sign(pst_graph *g, pst_output x, const char *name) {
    return build_unary(g, "Sign", x, name);
}

pst_output pst_leaky_relu(pst_graph *g, pst_output x, float alpha, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "LeakyRelu", name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_f(nb, "alpha", alpha);
    return pst_nb_finish_out(nb);
}

/* ---- Gradients ------------------------------------------------------------------------- */

/* dy summed back to x's shape (dy itself when their static shapes already agree). */
static pst_output reduce_like(pst_graph *g, pst_output dy, pst_output x) {
    return pst_reduce_to_shape_of(g, dy, x, NULL);
}

static int binary_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int code = ((const math_op *)n->op)->code;
    pst_output a = n->inputs[0], b = n->inputs[1], d = dy[0];
    switch (code) {
    case B_ADD:
        dx[0] = reduce_like(g, d, a);
        dx[1] = reduce_like(g, d, b);
        break;
    case B_SUB:
        dx[0] = reduce_like(g, d, a);
        dx[1] = reduce_like(g, pst_neg(g, d, NULL), b);
        break;
    case B_MUL:
        dx[0] = reduce_like(g, pst_mul(g, d, b, NULL), a);
        dx[1] = reduce_like(g, pst_mul(g, a, d, NULL), b);
        break;
    case B_DIV:
        dx[0] = reduce_like(g, pst_real_div(g, d, b, NULL), a);
        dx[1] = reduce_like(
            g, pst_neg(g, pst_real_div(g, pst_mul(g, d, a, NULL), pst_square(g, b, NULL), NULL), NULL),
            b);
        break;
    case B_MAX:
    case B_MIN: {
        pst_output mask = code == B_MAX ? pst_greater_equal(g, a, b, NULL) : pst_less_equal(g, a, b, NULL);
        pst_output zeros = pst_zeros_like(g, pst_out(n, 0), NULL);
        pst_output dfull = pst_add(g, d, zeros, NULL); /* d broadcast to the output shape */
        dx[0] = reduce_like(g, pst_select(g, mask, dfull, zeros, NULL), a);
        dx[1] = reduce_like(g, pst_select(g, mask, zeros, dfull, NULL), b);
        break;
    }
    case B_TDIV:
        if (!pst_dtype_is_float(pst_output_dtype(a))) break; /* integer Div: no gradient */
        dx[0] = reduce_like(g, pst_real_div(g, d, b, NULL), a);
        dx[1] = reduce_like(
            g, pst_neg(g, pst_real_div(g, pst_mul(g, d, a, NULL), pst_square(g, b, NULL), NULL), NULL),
            b);
        break;
    case B_FLOORMOD: /* x - floor(x / y) * y */
        dx[0] = reduce_like(g, d, a);
        dx[1] = reduce_like(g, pst_mul(g, pst_neg(g, d, NULL),
                                       build_binary(g, "FloorDiv", a, b, NULL), NULL), b);
        break;
    case B_SQDIFF: { /* 2 (a - b) dy */
        pst_output t = pst_mul(g, pst_const_scalar(g, pst_output_dtype(a), 2, NULL),
                               pst_mul(g, d, pst_sub(g, a, b, NULL), NULL), NULL);
        dx[0] = reduce_like(g, t, a);
        dx[1] = reduce_like(g, pst_neg(g, t, NULL), b);
        break;
    }
    case B_DIVNONAN: /* dy / b and dy (-a / b) / b, each 0 where b is 0 */
        dx[0] = reduce_like(g, build_binary(g, "DivNoNan", d, b, NULL), a);
        dx[1] = reduce_like(g, pst_mul(g, d, build_binary(g, "DivNoNan", build_binary(g, "DivNoNan",
                                                       pst_neg(g, a, NULL), b, NULL), b, NULL), NULL), b);
        break;
    case B_ATAN2: { /* atan2(a, b): dy b / (a^2 + b^2), -dy a / (a^2 + b^2) */
        pst_output den = pst_add(g, pst_square(g, a, NULL), pst_square(g, b, NULL), NULL);
        dx[0] = reduce_like(g, pst_real_div(g, pst_mul(g, d, b, NULL), den, NULL), a);
        dx[1] = reduce_like(g, pst_neg(g, pst_real_div(g, pst_mul(g, d, a, NULL), den, NULL), NULL), b);
        break;
    }
    case B_POW: {
        pst_dtype dt = pst_output_dtype(a);
        pst_output one = pst_const_scalar(g, dt, 1, NULL);
        dx[0] = reduce_like(
            g, pst_mul(g, d, pst_mul(g, b, pst_pow(g, a, pst_sub(g, b, one, NULL), NULL), NULL), NULL),
            a);
        /* log(a) where a > 0, else 0 (TF's convention). */
        pst_output pos = pst_greater(g, a, pst_const_scalar(g, dt, 0, NULL), NULL);
        pst_output safe = pst_select(g, pos, a, pst_ones_like(g, a, NULL), NULL);
        pst_output loga = pst_select(g, pos, pst_log(g, safe, NULL), pst_zeros_like(g, a, NULL), NULL);
        dx[1] = reduce_like(g, pst_mul(g, d, pst_mul(g, pst_out(n, 0), loga, NULL), NULL), b);
        break;
    }
    default: break;
    }
    return 0;
}

static pst_output grad_op(pst_graph *g, const char *op, pst_output x, pst_output y, float alpha) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, x);
    pst_nb_input(nb, y);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    if (strcmp(op, "LeakyReluGrad") == 0) pst_nb_attr_f(nb, "alpha", alpha);
    return pst_nb_finish_out(nb);
}

static int unary_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int code = ((const math_op *)n->op)->code;
    pst_output x = n->inputs[0], y = pst_out(n, 0), d = dy[0];
    pst_dtype dt = pst_output_dtype(x);
    switch (code) {
    case U_NEG: dx[0] = pst_neg(g, d, NULL); break;
    case U_SQUARE:
        dx[0] = pst_mul(g, d, pst_mul(g, x, pst_const_scalar(g, dt, 2, NULL), NULL), NULL);
        break;
    case U_SQRT: dx[0] = grad_op(g, "SqrtGrad", y, d, 0); break;
    case U_RSQRT: dx[0] = grad_op(g, "RsqrtGrad", y, d, 0); break;
    case U_EXP: dx[0] = pst_mul(g, d, y, NULL); break;
    case U_LOG: dx[0] = pst_real_div(g, d, x, NULL); break;
    case U_ABS: dx[0] = pst_mul(g, d, pst_sign(g, x, NULL), NULL); break;
    case U_COS: dx[0] = pst_neg(g, pst_mul(g, d, pst_sin(g, x, NULL), NULL), NULL); break;
    case U_SIN: dx[0] = pst_mul(g, d, pst_cos(g, x, NULL), NULL); break;
    case U_RELU: dx[0] = grad_op(g, "ReluGrad", d, x, 0); break;
    case U_RELU6: dx[0] = grad_op(g, "Relu6Grad", d, x, 0); break;
    case U_ELU: dx[0] = grad_op(g, "EluGrad", d, y, 0); break;
    case U_SIGMOID: dx[0] = grad_op(g, "SigmoidGrad", y, d, 0); break;
    case U_TANH: dx[0] = grad_op(g, "TanhGrad", y, d, 0); break;
    case U_LRELU:
        dx[0] = grad_op(g, "LeakyReluGrad", d, x, pst_node_attr_f(n, "alpha", 0.2f));
        break;
    case U_RECIP: dx[0] = grad_op(g, strcmp(n->op->name, "Inv") == 0 ? "InvGrad" : "ReciprocalGrad", y, d, 0); break;
    case U_LOG1P: dx[0] = pst_real_div(g, d, pst_add(g, pst_const_scalar(g, dt, 1, NULL), x, NULL), NULL); break;
    case U_EXPM1: dx[0] = pst_mul(g, d, pst_exp(g, x, NULL), NULL); break;
    case U_SOFTPLUS: dx[0] = grad_op(g, "SoftplusGrad", d, x, 0); break;
    case U_SOFTSIGN: dx[0] = grad_op(g, "SoftsignGrad", d, x, 0); break;
    case U_SELU: dx[0] = grad_op(g, "SeluGrad", d, y, 0); break;
    case U_ERF: /* dy 2 / sqrt(pi) exp(-x^2) */
        dx[0] = pst_mul(g, d, pst_mul(g, pst_const_scalar(g, dt, 1.1283791670955126, NULL),
                                      pst_exp(g, pst_neg(g, pst_square(g, x, NULL), NULL), NULL), NULL), NULL);
        break;
    case U_SINH: dx[0] = pst_mul(g, d, build_unary(g, "Cosh", x, NULL), NULL); break;
    case U_COSH: dx[0] = pst_mul(g, d, build_unary(g, "Sinh", x, NULL), NULL); break;
    case U_TAN: /* dy (1 + tan^2) */
        dx[0] = pst_mul(g, d, pst_add(g, pst_const_scalar(g, dt, 1, NULL), pst_square(g, y, NULL), NULL), NULL);
        break;
    case U_ASIN:
    case U_ACOS: { /* +-dy / sqrt(1 - x^2) */
        pst_output r = pst_real_div(g, d, pst_sqrt(g, pst_sub(g, pst_const_scalar(g, dt, 1, NULL),
                                                             pst_square(g, x, NULL), NULL), NULL), NULL);
        dx[0] = code == U_ASIN ? r : pst_neg(g, r, NULL);
        break;
    }
    case U_ATAN: /* dy / (1 + x^2) */
        dx[0] = pst_real_div(g, d, pst_add(g, pst_const_scalar(g, dt, 1, NULL), pst_square(g, x, NULL), NULL), NULL);
        break;
    default: break;
    }
    return 0;
}

/* ---- Cast, Select, L2Loss ---------------------------------------------------------------- */

static int cast_shape(pst_node *n, pst_status *st) {
    pst_dtype dst = pst_node_attr_type(n, "DstT", PST_DT_INVALID);
    if (!pst_dtype_valid(dst)) return pst_status_set(st, PST_E_INVALID, "bad DstT");
    pst_node_set_output(n, 0, dst, pst_node_in_shape(n, 0));
    return 0;
}

static int cast_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    pst_dtype dst = c->out_dtypes[0];
    if (dst == in->dtype) {
        pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
        return 0;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dst, in->shape);
    if (o == NULL) return c->status->code;
    if (in->dtype == PST_FLOAT && dst == PST_DOUBLE)
        for (int64_t i = 0; i < in->n; i++) pst_tensor_f64(o)[i] = pst_tensor_f32(in)[i];
    else if (in->dtype == PST_UINT8 && dst == PST_FLOAT)
        for (int64_t i = 0; i < in->n; i++) pst_tensor_f32(o)[i] = pst_tensor_u8(in)[i];
    else if (in->dtype == PST_BOOL && dst == PST_FLOAT)
        for (int64_t i = 0; i < in->n; i++) pst_tensor_f32(o)[i] = pst_tensor_u8(in)[i];
    else if (in->dtype == PST_INT64 || dst == PST_INT64)
        for (int64_t i = 0; i < in->n; i++) {
            if (dst == PST_INT64)
                pst_tensor_i64(o)[i] = in->dtype == PST_FLOAT || in->dtype == PST_DOUBLE
                                           ? (int64_t)pst_tensor_get_f64(in, i)
                                           : pst_tensor_get_i64(in, i);
            else
                pst_tensor_set_f64(o, i, (double)pst_tensor_i64(in)[i]);
        }
    else
        for (int64_t i = 0; i < in->n; i++) pst_tensor_set_f64(o, i, pst_tensor_get_f64(in, i));
    return 0;
}

static int cast_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_dtype src = pst_node_in_dtype(n, 0);
    if (pst_dtype_is_float(src) && pst_dtype_is_float(n->out_dtypes[0]))
        dx[0] = pst_cast(g, dy[0], src, NULL);
    return 0;
}

pst_output pst_cast(pst_graph *g, pst_output x, pst_dtype dst, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Cast", name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "SrcT", pst_output_dtype(x));
    pst_nb_attr_type(nb, "DstT", dst);
    return pst_nb_finish_out(nb);
}

static int select_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "condition must be bool, got %s",
                              pst_dtype_name(pst_node_in_dtype(n, 0)));
    if (pst_shape_check_same_dtype(n, 1, 2, st) < 0) return PST_E_INVALID;
    pst_shape c = pst_node_in_shape(n, 0), t = pst_node_in_shape(n, 1), e = pst_node_in_shape(n, 2);
    char a[128], b[128];
    if (!pst_shape_compatible(&t, &e))
        return pst_status_set(st, PST_E_INVALID, "then %s and else %s shapes differ",
                              pst_shape_str(&t, a, sizeof a), pst_shape_str(&e, b, sizeof b));
    if (c.rank != 0 && !pst_shape_compatible(&c, &t) && !(c.rank == 1 && t.rank >= 1))
        return pst_status_set(st, PST_E_INVALID, "condition %s does not match %s",
                              pst_shape_str(&c, a, sizeof a), pst_shape_str(&t, b, sizeof b));
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), t.rank >= 0 ? t : e);
    return 0;
}

static int select_kernel(pst_kernel_ctx *c) {
    const pst_tensor *cond = c->inputs[0], *t = c->inputs[1], *e = c->inputs[2];
    if (!pst_shape_equal(&t->shape, &e->shape))
        return pst_kctx_error(c, PST_E_INVALID, "then and else shapes differ");
    int64_t per = 0; /* elements per condition value */
    if (cond->n == 1)
        per = t->n;
    else if (cond->n == t->n)
        per = 1;
    else if (cond->shape.rank == 1 && t->shape.rank >= 1 && cond->n == t->shape.dims[0])
        per = t->shape.dims[0] ? t->n / t->shape.dims[0] : 0;
    else
        return pst_kctx_error(c, PST_E_INVALID, "condition has %lld elements for %lld values",
                              (long long)cond->n, (long long)t->n);
    if (cond->n == 1) {
        pst_kctx_set_output(c, 0, pst_tensor_ref(pst_tensor_u8(cond)[0] ? c->inputs[1] : c->inputs[2]));
        return 0;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, t->dtype, t->shape);
    if (o == NULL) return c->status->code;
    size_t es = pst_dtype_size(t->dtype);
    const uint8_t *cv = pst_tensor_u8(cond);
    if (per == 1 && t->dtype == PST_FLOAT) {
        const float *a = pst_tensor_f32(t), *b = pst_tensor_f32(e);
        float *y = pst_tensor_f32(o);
        for (int64_t i = 0; i < t->n; i++) y[i] = cv[i] ? a[i] : b[i];
    } else {
        for (int64_t k = 0; k < cond->n; k++)
            memcpy((char *)o->data + (size_t)(k * per) * es,
                   (const char *)(cv[k] ? t : e)->data + (size_t)(k * per) * es, (size_t)per * es);
    }
    return 0;
}

static int select_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output zeros = pst_zeros_like(g, dy[0], NULL);
    dx[1] = pst_select(g, n->inputs[0], dy[0], zeros, NULL);
    dx[2] = pst_select(g, n->inputs[0], zeros, dy[0], NULL);
    return 0;
}

pst_output pst_select(pst_graph *g, pst_output cond, pst_output t, pst_output e, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Select", name);
    pst_nb_input(nb, cond);
    pst_nb_input(nb, t);
    pst_nb_input(nb, e);
    if (t.node) pst_nb_attr_type(nb, "T", pst_output_dtype(t));
    return pst_nb_finish_out(nb);
}

static int l2loss_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "L2Loss needs a float input");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_scalar());
    return 0;
}

static int l2loss_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_scalar());
    if (o == NULL) return c->status->code;
    double s = 0;
    if (x->dtype == PST_FLOAT) {
        const float *a = pst_tensor_f32(x);
        float acc = 0;
        for (int64_t i = 0; i < x->n; i++) acc += a[i] * a[i];
        s = acc;
    } else {
        for (int64_t i = 0; i < x->n; i++) s += pst_tensor_get_f64(x, i) * pst_tensor_get_f64(x, i);
    }
    pst_tensor_set_f64(o, 0, s / 2);
    return 0;
}

static int l2loss_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_mul(g, n->inputs[0], dy[0], NULL);
    return 0;
}

pst_output pst_l2_loss(pst_graph *g, pst_output x, const char *name) {
    return build_unary(g, "L2Loss", x, name);
}

/* ---- Registration ---------------------------------------------------------------------- */

static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec alpha_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"alpha", PST_ATTR_FLOAT, 0}, {0}};

#define BIN(nm, code, G, F)                                                                       \
    {{.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = t_attrs,             \
      .shape = binary_shape, .kernel = binary_kernel, .grad = G, .flags = F},                     \
     code}
#define UN(nm, code, G, F)                                                                        \
    {{.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,             \
      .shape = unary_shape, .kernel = unary_kernel, .grad = G, .flags = F},                       \
     code}

static const math_op math_ops[] = {
    BIN("Add", B_ADD, binary_grad, 0),
    BIN("AddV2", B_ADD, binary_grad, 0),
    BIN("Sub", B_SUB, binary_grad, 0),
    BIN("Mul", B_MUL, binary_grad, 0),
    BIN("RealDiv", B_DIV, binary_grad, 0),
    BIN("Maximum", B_MAX, binary_grad, 0),
    BIN("Minimum", B_MIN, binary_grad, 0),
    BIN("Pow", B_POW, binary_grad, 0),
    BIN("Equal", B_EQ, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("NotEqual", B_NE, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("Less", B_LT, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("LessEqual", B_LE, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("Greater", B_GT, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("GreaterEqual", B_GE, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("LogicalAnd", B_AND, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("LogicalOr", B_OR, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("ReluGrad", B_RELU_GRAD, NULL, 0),
    BIN("Relu6Grad", B_RELU6_GRAD, NULL, 0),
    {{.name = "LeakyReluGrad", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
      .attrs = alpha_attrs, .shape = binary_shape, .kernel = binary_kernel},
     B_LRELU_GRAD},
    BIN("EluGrad", B_ELU_GRAD, NULL, 0),
    BIN("SigmoidGrad", B_SIGMOID_GRAD, NULL, 0),
    BIN("TanhGrad", B_TANH_GRAD, NULL, 0),
    BIN("SqrtGrad", B_SQRT_GRAD, NULL, 0),
    BIN("RsqrtGrad", B_RSQRT_GRAD, NULL, 0),
    BIN("FloorDiv", B_FLOORDIV, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("FloorMod", B_FLOORMOD, binary_grad, 0),
    BIN("Div", B_TDIV, binary_grad, 0),
    BIN("ReciprocalGrad", B_RECIP_GRAD, NULL, 0),
    BIN("InvGrad", B_RECIP_GRAD, NULL, 0),
    BIN("SquaredDifference", B_SQDIFF, binary_grad, 0),
    BIN("DivNoNan", B_DIVNONAN, binary_grad, 0),
    BIN("TruncateDiv", B_TRUNCDIV, NULL, PST_OP_NOT_DIFFERENTIABLE),
    BIN("Atan2", B_ATAN2, binary_grad, 0),
    BIN("SoftplusGrad", B_SOFTPLUS_GRAD, NULL, 0),
    BIN("SoftsignGrad", B_SOFTSIGN_GRAD, NULL, 0),
    BIN("SeluGrad", B_SELU_GRAD, NULL, 0),
    UN("Log1p", U_LOG1P, unary_grad, 0),
    UN("Expm1", U_EXPM1, unary_grad, 0),
    UN("Softplus", U_SOFTPLUS, unary_grad, 0),
    UN("Softsign", U_SOFTSIGN, unary_grad, 0),
    UN("Selu", U_SELU, unary_grad, 0),
    UN("Erf", U_ERF, unary_grad, 0),
    UN("Round", U_ROUND, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Rint", U_ROUND, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Ceil", U_CEIL, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Sinh", U_SINH, unary_grad, 0),
    UN("Cosh", U_COSH, unary_grad, 0),
    UN("Tan", U_TAN, unary_grad, 0),
    UN("Asin", U_ASIN, unary_grad, 0),
    UN("Acos", U_ACOS, unary_grad, 0),
    BIN("Mod", B_MOD, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Reciprocal", U_RECIP, unary_grad, 0),
    UN("Inv", U_RECIP, unary_grad, 0),
    UN("Atan", U_ATAN, unary_grad, 0),
    UN("Neg", U_NEG, unary_grad, 0),
    UN("Square", U_SQUARE, unary_grad, 0),
    UN("Sqrt", U_SQRT, unary_grad, 0),
    UN("Rsqrt", U_RSQRT, unary_grad, 0),
    UN("Exp", U_EXP, unary_grad, 0),
    UN("Log", U_LOG, unary_grad, 0),
    UN("Abs", U_ABS, unary_grad, 0),
    UN("Floor", U_FLOOR, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Sign", U_SIGN, NULL, PST_OP_NOT_DIFFERENTIABLE),
    UN("Cos", U_COS, unary_grad, 0),
    UN("Sin", U_SIN, unary_grad, 0),
    UN("Relu", U_RELU, unary_grad, 0),
    UN("Relu6", U_RELU6, unary_grad, 0),
    UN("Elu", U_ELU, unary_grad, 0),
    UN("Sigmoid", U_SIGMOID, unary_grad, 0),
    UN("Tanh", U_TANH, unary_grad, 0),
    {{.name = "LeakyRelu", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = alpha_attrs,
      .shape = unary_shape, .kernel = unary_kernel, .grad = unary_grad},
     U_LRELU},
    UN("LogicalNot", U_NOT, NULL, PST_OP_NOT_DIFFERENTIABLE),
};

static const pst_attr_spec cast_attrs[] = {
    {"SrcT", PST_ATTR_TYPE, 0}, {"DstT", PST_ATTR_TYPE, 1}, {"Truncate", PST_ATTR_BOOL, 0}, {0}};
static const pst_op_def cast_op = {.name = "Cast", .min_inputs = 1, .max_inputs = 1,
                                   .n_outputs = 1, .attrs = cast_attrs, .shape = cast_shape,
                                   .kernel = cast_kernel, .grad = cast_grad};
static const pst_op_def select_op = {.name = "Select", .min_inputs = 3, .max_inputs = 3,
                                     .n_outputs = 1, .attrs = t_attrs, .shape = select_shape,
                                     .kernel = select_kernel, .grad = select_grad};
static const pst_op_def l2loss_op = {.name = "L2Loss", .min_inputs = 1, .max_inputs = 1,
                                     .n_outputs = 1, .attrs = t_attrs, .shape = l2loss_shape,
                                     .kernel = l2loss_kernel, .grad = l2loss_grad};

void pst__register_reduce_ops(void);

void pst__register_math_ops(void) {
    for (size_t i = 0; i < sizeof math_ops / sizeof math_ops[0]; i++)
        pst_op_register(&math_ops[i].def);
    pst_op_register(&cast_op);
    pst_op_register(&select_op);
    pst_op_register(&l2loss_op);
    pst__register_reduce_ops();
}
