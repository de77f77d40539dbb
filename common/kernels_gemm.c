#include "kernels_gemm.h"

#include <cblas.h>

#include "parallel.h"

typedef struct gemm_job {
    int ta, tb, dbl;
    int64_t m, n, k;
    const void *a, *b;
    void *c;
    int64_t parts;
    int by_cols;
} gemm_job;

/* Part p computes rows (or columns) [p*m/parts, (p+1)*m/parts) of c. */
static void gemm_part(void *ctx, int64_t p0, int64_t p1) {
    gemm_job *j = ctx;
    int64_t lda = j->ta ? j->m : j->k, ldb = j->tb ? j->k : j->n, extent = j->by_cols ? j->n : j->m;
    size_t es = j->dbl ? sizeof(double) : sizeof(float);
    for (int64_t p = p0; p < p1; p++) {
        int64_t b = extent * p / j->parts, e = extent * (p + 1) / j->parts;
        if (e == b)
            continue;
        const char *a = j->a, *bb = j->b;
        char *c = j->c;
        int64_t m = j->m, n = j->n;
        if (j->by_cols) {
            /* Columns [b, e) of op(b): a column offset, or a row offset when transposed. */
            bb += (j->tb ? b * ldb : b) * (int64_t)es;
            c += b * (int64_t)es;
            n = e - b;
        } else {
            /* Rows [b, e) of op(a): a row offset, or a column offset when transposed. */
            a += (j->ta ? b : b * lda) * (int64_t)es;
            c += b * j->n * (int64_t)es;
            m = e - b;
        }
        enum CBLAS_TRANSPOSE oa = j->ta ? CblasTrans : CblasNoTrans;
        enum CBLAS_TRANSPOSE ob = j->tb ? CblasTrans : CblasNoTrans;
        if (j->dbl)
            cblas_dgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)j->k, 1.0, (const double *)a,
                        (int)lda, (const double *)bb, (int)ldb, 0.0, (double *)c, (int)j->n);
        else
            cblas_sgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)j->k, 1.0f, (const float *)a,
                        (int)lda, (const float *)bb, (int)ldb, 0.0f, (float *)c, (int)j->n);
    }
}

/* Parts of at least 16 rows or columns and about 2^18 multiply-adds: smaller products run in
 * one call, where a hand-off would cost more than it saves. */
static void gemm_run(gemm_job *j) {
    int64_t extent = j->by_cols ? j->n : j->m, work = j->m * j->n * j->k;
    int64_t parts = pst_parallel_threads();
    if (parts > extent / 16)
        parts = extent / 16;
    if (parts > work / (1 << 18))
        parts = work / (1 << 18);
    j->parts = parts < 1 ? 1 : parts;
    pst_parallel_for(j->parts, 1, gemm_part, j);
}

static void gemm(int dbl, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a,
                 const void *b, void *c) {
    if (m <= 0 || n <= 0)
        return;
    gemm_job j = {.ta = ta,
                  .tb = tb,
                  .dbl = dbl,
                  .m = m,
                  .n = n,
                  .k = k,
                  .a = a,
                  .b = b,
                  .c = c,
                  .by_cols = n > m};
    gemm_run(&j);
}

void pst_gemm_f32(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                  float *c) {
    gemm(0, ta, tb, m, n, k, a, b, c);
}

void pst_gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                  double *c) {
    gemm(1, ta, tb, m, n, k, a, b, c);
}
