#include "kernels_softmax.h"

#include <math.h>
#include <string.h>

#include "parallel.h"

/* Lanes for the max and sum reductions: gcc vectorizes the lane loops (a plain running sum
 * may not be reordered without -ffast-math). */
#define LANES 8

static float row_max(const float *a, int64_t C) {
    float m[LANES];
    for (int l = 0; l < LANES; l++)
        m[l] = -INFINITY;
    int64_t k = 0;
    for (; k + LANES <= C; k += LANES)
        for (int l = 0; l < LANES; l++)
            m[l] = a[k + l] > m[l] ? a[k + l] : m[l];
    for (; k < C; k++)
        m[0] = a[k] > m[0] ? a[k] : m[0];
    float r = m[0];
    for (int l = 1; l < LANES; l++)
        r = m[l] > r ? m[l] : r;
    return r;
}

static float row_sum(const float *a, int64_t C) {
    float s[LANES] = {0};
    int64_t k = 0;
    for (; k + LANES <= C; k += LANES)
        for (int l = 0; l < LANES; l++)
            s[l] += a[k + l];
    for (; k < C; k++)
        s[0] += a[k];
    float r = 0;
    for (int l = 0; l < LANES; l++)
        r += s[l];
    return r;
}

/*
 * o[k] = e^(a[k] - m) for a row whose maximum is m, so every exponent is <= 0. Exponents are
 * clamped at -104, below which e^x rounds to zero in float. e^x = 2^n e^r with n = round(x /
 * ln 2) and |r| <= ln(2)/2; e^r comes from a degree-7 polynomial (Cephes' expf coefficients,
 * about 1 ulp), and 2^n is applied as two factors 2^(n/2) 2^(n - n/2), each a normal float,
 * so that results in the subnormal range come out right. Kept as two loops without calls or
 * branches so that both vectorize.
 */
static void exp_shifted(const float *a, float m, float *o, int64_t C) {
    for (int64_t k = 0; k < C; k++) {
        float d = a[k] - m;
        o[k] = d < -104.0f ? -104.0f : d; /* a NaN stays NaN */
    }
    for (int64_t k = 0; k < C; k++) {
        float x = o[k];
        /* Adding and subtracting 1.5 * 2^23 rounds to the nearest integer. */
        float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = x - n * 0.693359375f + n * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float er = p * r * r + r + 1.0f;
        /* n is NaN only when x is, and then er is NaN too: the clamp keeps the conversion
         * defined. */
        int32_t ni = (int32_t)(n > -150.0f ? n : -150.0f), n1 = ni >> 1, n2 = ni - n1;
        int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
        float s1, s2;
        memcpy(&s1, &b1, sizeof s1);
        memcpy(&s2, &b2, sizeof s2);
        o[k] = er * s1 * s2;
    }
}

typedef struct softmax_job {
    const void *x, *dense;
    const int64_t *sparse;
    void *y, *loss;
    int64_t C;
    int log_out;
} softmax_job;

static void softmax_rows_f32(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t C = j->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *a = (const float *)j->x + r * C;
        float *o = (float *)j->y + r * C;
        float m = row_max(a, C);
        exp_shifted(a, m, o, C);
        float s = row_sum(o, C);
        if (j->log_out) {
            float shift = m + logf(s);
            for (int64_t k = 0; k < C; k++)
                o[k] = a[k] - shift;
        } else {
            float inv = 1.0f / s;
            for (int64_t k = 0; k < C; k++)
                o[k] *= inv;
        }
    }
}

static void softmax_rows_f64(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t C = j->C;
    for (int64_t r = r0; r < r1; r++) {
        const double *a = (const double *)j->x + r * C;
        double *o = (double *)j->y + r * C, m = -INFINITY, s = 0;
        for (int64_t k = 0; k < C; k++)
            m = a[k] > m ? a[k] : m;
        for (int64_t k = 0; k < C; k++)
            s += exp(a[k] - m);
        double shift = m + log(s);
        for (int64_t k = 0; k < C; k++)
            o[k] = j->log_out ? a[k] - shift : exp(a[k] - shift);
    }
}

/* backprop = e^(x - m) / s - p, loss = sum_k p_k (m + log s - x_k). */
static void xent_rows_f32(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t C = j->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *a = (const float *)j->x + r * C;
        float *o = (float *)j->y + r * C;
        float m = row_max(a, C);
        exp_shifted(a, m, o, C);
        float s = row_sum(o, C), inv = 1.0f / s, shift = m + logf(s);
        for (int64_t k = 0; k < C; k++)
            o[k] *= inv;
        if (j->dense) {
            const float *p = (const float *)j->dense + r * C;
            float loss[LANES] = {0};
            int64_t k = 0;
            for (; k + LANES <= C; k += LANES)
                for (int l = 0; l < LANES; l++)
                    loss[l] += p[k + l] * (shift - a[k + l]);
            for (; k < C; k++)
                loss[0] += p[k] * (shift - a[k]);
            for (k = 0; k < C; k++)
                o[k] -= p[k];
            ((float *)j->loss)[r] = row_sum(loss, LANES);
        } else {
            int64_t lab = j->sparse[r];
            ((float *)j->loss)[r] = shift - a[lab];
            o[lab] -= 1.0f;
        }
    }
}

static void xent_rows_f64(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t C = j->C;
    for (int64_t r = r0; r < r1; r++) {
        const double *a = (const double *)j->x + r * C;
        double *o = (double *)j->y + r * C, m = -INFINITY, s = 0, loss = 0;
        for (int64_t k = 0; k < C; k++)
            m = a[k] > m ? a[k] : m;
        for (int64_t k = 0; k < C; k++)
            s += exp(a[k] - m);
        double shift = m + log(s);
        for (int64_t k = 0; k < C; k++) {
            double p =
                j->dense ? ((const double *)j->dense)[r * C + k] : (double)(j->sparse[r] == k);
            loss += p * (shift - a[k]);
            o[k] = exp(a[k] - shift) - p;
        }
        ((double *)j->loss)[r] = loss;
    }
}

/* Rows per parallel chunk: about 16K values, so small batches stay on one thread. */
static void run_rows(softmax_job *j, int64_t rows, pst_range_fn fn) {
    pst_parallel_for(rows, 1 + 16384 / (j->C > 0 ? j->C : 1), fn, j);
}

void pst_softmax_f32(const float *x, float *y, int64_t rows, int64_t C, int log_out) {
    softmax_job j = {.x = x, .y = y, .C = C, .log_out = log_out};
    run_rows(&j, rows, softmax_rows_f32);
}

void pst_softmax_f64(const double *x, double *y, int64_t rows, int64_t C, int log_out) {
    softmax_job j = {.x = x, .y = y, .C = C, .log_out = log_out};
    run_rows(&j, rows, softmax_rows_f64);
}

void pst_softmax_xent_f32(const float *x, const float *dense_labels, const int64_t *sparse_labels,
                          int64_t rows, int64_t C, float *loss, float *backprop) {
    softmax_job j = {.x = x,
                     .dense = dense_labels,
                     .sparse = sparse_labels,
                     .y = backprop,
                     .loss = loss,
                     .C = C};
    run_rows(&j, rows, xent_rows_f32);
}

void pst_softmax_xent_f64(const double *x, const double *dense_labels, const int64_t *sparse_labels,
                          int64_t rows, int64_t C, double *loss, double *backprop) {
    softmax_job j = {.x = x,
                     .dense = dense_labels,
                     .sparse = sparse_labels,
                     .y = backprop,
                     .loss = loss,
                     .C = C};
    run_rows(&j, rows, xent_rows_f64);
}
