#include "kernels_conv.h"

#include <cblas.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "status.h"

/* ---- Run-time ISA choice ----------------------------------------------------------------- */
/* With PST_HAVE_KERNELS_AVX2, kernels_conv_avx2.c holds this file compiled for AVX2 + FMA; the
 * generic build's public functions hand over to it when the CPU can run it. */
#if defined(PST_HAVE_KERNELS_AVX2) && !defined(PST_KERNELS_VARIANT_AVX2)
#include <stdlib.h>
void pst__conv2d_forward_avx2(const pst_conv_geom *g, const float *in, const float *filter,
                              float *out);
void pst__conv2d_backprop_input_avx2(const pst_conv_geom *g, const float *filter,
                                     const float *dy, float *din);
void pst__conv2d_backprop_filter_avx2(const pst_conv_geom *g, const float *in, const float *dy,
                                      float *dfilter);
void pst__maxpool_forward_avx2(const pst_conv_geom *g, const float *in, float *out);
void pst__maxpool_backward_avx2(const pst_conv_geom *g, const float *in, const float *y,
                                const float *dy, float *din);
void pst__avgpool_forward_avx2(const pst_conv_geom *g, const float *in, float *out);
void pst__avgpool_backward_avx2(const pst_conv_geom *g, const float *dy, float *din);

/* 1 when the AVX2 variant runs: the CPU has AVX2 and FMA and $PST_KERNELS is not "generic". */
static int use_avx2(void) {
    static atomic_int choice = -1;
    int c = atomic_load_explicit(&choice, memory_order_relaxed);
    if (c < 0) {
        const char *e = getenv("PST_KERNELS");
        __builtin_cpu_init();
        c = !(e && strcmp(e, "generic") == 0) && __builtin_cpu_supports("avx2") &&
            __builtin_cpu_supports("fma");
        atomic_store_explicit(&choice, c, memory_order_relaxed);
    }
    return c;
}
#define DISPATCH(fn, ...)                                                                         \
    do {                                                                                          \
        if (use_avx2()) {                                                                         \
            pst__##fn##_avx2(__VA_ARGS__);                                                        \
            return;                                                                               \
        }                                                                                         \
    } while (0)
#else
#define DISPATCH(fn, ...) ((void)0)
#endif

int64_t pst_conv_out_size(int64_t in, int64_t k, int64_t s, int same) {
    if (in < 0) return -1;
    return same ? (in + s - 1) / s : (in - k + s) / s;
}

int pst_conv_geom_make(pst_conv_geom *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh,
                       int64_t kw, int64_t oc, int64_t sh, int64_t sw, const char *padding) {
    int same = strcmp(padding, "SAME") == 0;
    if (!same && strcmp(padding, "VALID") != 0) return -1;
    if (sh < 1 || sw < 1 || kh < 1 || kw < 1) return -1;
    *g = (pst_conv_geom){.n = n, .h = h, .w = w, .c = c, .kh = kh, .kw = kw, .oc = oc,
                         .sh = sh, .sw = sw};
    g->oh = pst_conv_out_size(h, kh, sh, same);
    g->ow = pst_conv_out_size(w, kw, sw, same);
    if (g->oh <= 0 || g->ow <= 0) return -1;
    if (same) {
        int64_t ph = (g->oh - 1) * sh + kh - h, pw = (g->ow - 1) * sw + kw - w;
        g->pad_top = ph > 0 ? ph / 2 : 0;
        g->pad_left = pw > 0 ? pw / 2 : 0;
    }
    return 0;
}

/* Rows of the im2col matrix per chunk: whole images, about 512 KB (see below). */
static int64_t chunk_rows(const pst_conv_geom *g) {
    int64_t k = g->kh * g->kw * g->c;
    /* Small blocks (at least one image): the sgemm then reads the im2col rows it was just
     * written from the cache instead of memory (16 MB blocks ran at ~0.55 of SGEMM, 512 KB
     * blocks at ~0.7 on this machine's conv2). */
    int64_t rows = (512 << 10) / (4 * (k > 0 ? k : 1));
    int64_t per_image = g->oh * g->ow;
    if (rows < per_image) rows = per_image;
    return rows - rows % per_image; /* whole images per chunk */
}

/* Writes rows [r0, r0 + nr) of the im2col matrix (row = n*OH*OW + oh*OW + ow). */
static void im2col(const pst_conv_geom *g, const float *in, int64_t r0, int64_t nr, float *col) {
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        float *dst = col + r * K;
        int64_t iw0 = ow * g->sw - g->pad_left;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            if (ih >= 0 && ih < g->h && iw0 >= 0 && iw0 + g->kw <= g->w) {
                /* the window's row lies inside the image: kw*C contiguous floats in NHWC */
                memcpy(dst, in + ((n * g->h + ih) * g->w + iw0) * g->c,
                       (size_t)(g->kw * g->c) * sizeof(float));
                dst += g->kw * g->c;
                continue;
            }
            for (int64_t j = 0; j < g->kw; j++, dst += g->c) {
                int64_t iw = ow * g->sw - g->pad_left + j;
                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                    memset(dst, 0, (size_t)g->c * sizeof(float));
                else
                    memcpy(dst, in + ((n * g->h + ih) * g->w + iw) * g->c,
                           (size_t)g->c * sizeof(float));
            }
        }
    }
}

static void col2im_add(const pst_conv_geom *g, const float *col, int64_t r0, int64_t nr, float *din) {
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        const float *src = col + r * K;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            for (int64_t j = 0; j < g->kw; j++, src += g->c) {
                int64_t iw = ow * g->sw - g->pad_left + j;
                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                float *d = din + ((n * g->h + ih) * g->w + iw) * g->c;
                for (int64_t k = 0; k < g->c; k++) d[k] += src[k];
            }
        }
    }
}

static int is_pointwise(const pst_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 &&
           g->pad_left == 0;
}

/*
 * The convolutions split the batch across the thread pool (pst_parallel_for). Output channels
 * that are a multiple of 8 take the direct kernels below; other shapes take im2col and a
 * single-threaded sgemm per range, so BLAS threads and pool threads never compete (the runtime
 * sets OpenBLAS to one thread when the pool has more).
 */
typedef struct conv_job {
    const pst_conv_geom *g;
    const float *in, *filter, *dy;
    float *out;
    float *partials; /* backprop filter: one K x OC block per range */
    int64_t *partial_begin; /* the first image of the range that filled each block */
    atomic_int next_partial;
    /* direct kernels only: the filter packed by pack_filter, padded plane, and vectors of 8
     * channels per block (1 or 2) */
    const float *wpack;
    int64_t ph, pw;
    int nv;
    int stream; /* forward: store the output past the cache (see stream_output) */
} conv_job;

static float *col_alloc(const pst_conv_geom *g, int64_t rows) {
    float *col = malloc((size_t)rows * (size_t)(g->kh * g->kw * g->c) * sizeof(float));
    PST_ASSERT(col != NULL);
    return col;
}

/* Images per range so each im2col block stays near 512 KB. */
static int64_t images_per_chunk(const pst_conv_geom *g) {
    int64_t per = g->oh * g->ow;
    int64_t k = chunk_rows(g) / (per > 0 ? per : 1);
    return k > 0 ? k : 1;
}

/* Forward over images [b, e): im2col and sgemm in blocks of ~512 KB of im2col rows (a block
 * may end inside an image), so the block the sgemm packs is still in the cache. */
static void fwd_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    int64_t step = (512 << 10) / (4 * (K > 0 ? K : 1));
    if (step < 16) step = 16;
    int64_t r_end = e * per;
    float *col = col_alloc(g, step < r_end - b * per ? step : r_end - b * per);
    for (int64_t r0 = b * per; r0 < r_end; r0 += step) {
        int64_t nr = r_end - r0 < step ? r_end - r0 : step;
        im2col(g, j->in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)g->oc, (int)K, 1.0f,
                    col, (int)K, j->filter, (int)g->oc, 0.0f, j->out + r0 * g->oc, (int)g->oc);
    }
    free(col);
}

/*
 * Direct convolution (output channels a multiple of 8): no im2col matrix. Each image is copied
 * into a zero-padded plane, so the inner loops have no bounds checks, and register-blocked
 * micro-kernels do the arithmetic, the way a GEMM micro-kernel does: a block of up to MK_PIX
 * output pixels (forward) or filter rows (backprop filter) times 8 or 16 output channels lives in
 * up to 12 vector accumulators, and every filter or gradient vector loaded serves MK_PIX
 * broadcast inputs. The filter is first packed into blocks of 8 * nv channels ([K][8 * nv] each)
 * so the forward kernel reads it sequentially. On this project's 2-core AVX2 machine these run
 * at 0.8-0.95 of the core's SGEMM rate (bench/bench_kernels).
 */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

#define MK_PIX 6

/* Stores one vector of output; with stream set (out 32-byte aligned), bypasses the cache. The
 * vector comes by pointer: a 32-byte vector passed by value has a different ABI with and without
 * AVX, which clang flags (-Wpsabi) in the generic build. */
static inline __attribute__((always_inline)) void out_store(float *out, const v8f *v,
                                                            int stream) {
#ifdef __AVX__
    if (stream) {
        _mm256_stream_ps(out, (__m256)*v);
        return;
    }
#else
    (void)stream;
#endif
    *(v8f *)out = *v;
}

/* Forward micro-kernel: NP output pixels x 8*NV channels. x points at pixel 0's window origin
 * in the padded plane, ps floats between pixels, rs between the window's rows; the reduction
 * runs over kh rows of kwc contiguous floats (kw pixels x C channels in NHWC); w is the packed
 * filter block ([K][8*NV]); pixel p's channels go to out + p*os (streamed past the cache when
 * stream is set). */
static inline __attribute__((always_inline)) void fwd_mk(int NP, int NV, const float *x,
                                                         int64_t ps, int64_t rs, int64_t kh,
                                                         int64_t kwc, const float *w, float *out,
                                                         int64_t os, int stream) {
    v8f acc[MK_PIX][2];
    for (int p = 0; p < NP; p++)
        for (int v = 0; v < NV; v++) acc[p][v] = (v8f){0};
    for (int64_t i = 0; i < kh; i++, x += rs)
        for (int64_t t = 0; t < kwc; t++, w += 8 * NV) {
            v8f w0 = *(const v8f *)w, w1 = NV > 1 ? *(const v8f *)(w + 8) : w0;
            for (int p = 0; p < NP; p++) {
                float xv = x[p * ps + t];
                acc[p][0] += xv * w0;
                if (NV > 1) acc[p][1] += xv * w1;
            }
        }
    for (int p = 0; p < NP; p++)
        for (int v = 0; v < NV; v++) out_store(out + p * os + 8 * v, &acc[p][v], stream);
}

/* Backprop-filter micro-kernel: NK filter rows x 8*NV channels summed over one image's
 * oh_n x ow_n output pixels: dw[k] += sum over pixels of x[pixel origin + off[k]] * dy[pixel].
 * ps and rs step the window origin by one output column and one output row; ds steps dy. */
static inline __attribute__((always_inline)) void bf_mk(int NK, int NV, const float *x,
                                                        const int64_t *off, int64_t oh_n,
                                                        int64_t ow_n, int64_t ps, int64_t rs,
                                                        const float *dy, int64_t ds, float *dw,
                                                        int64_t dws) {
    v8f acc[MK_PIX][2];
    const float *xk[MK_PIX];
    for (int k = 0; k < NK; k++) {
        for (int v = 0; v < NV; v++) acc[k][v] = (v8f){0};
        xk[k] = x + off[k];
    }
    for (int64_t oh = 0; oh < oh_n; oh++) {
        for (int64_t ow = 0; ow < ow_n; ow++, dy += ds) {
            v8f d0 = *(const v8f *)dy, d1 = NV > 1 ? *(const v8f *)(dy + 8) : d0;
            int64_t o = ow * ps;
            for (int k = 0; k < NK; k++) {
                float xv = xk[k][o];
                acc[k][0] += xv * d0;
                if (NV > 1) acc[k][1] += xv * d1;
            }
        }
        for (int k = 0; k < NK; k++) xk[k] += rs;
    }
    for (int k = 0; k < NK; k++)
        for (int v = 0; v < NV; v++) *(v8f *)(dw + k * dws + 8 * v) += acc[k][v];
}

/* One specialization per block size and channel width, so the accumulators are registers. */
typedef void (*fwd_mk_fn)(const float *, int64_t, int64_t, int64_t, int64_t, const float *,
                          float *, int64_t, int);
typedef void (*bf_mk_fn)(const float *, const int64_t *, int64_t, int64_t, int64_t, int64_t,
                         const float *, int64_t, float *, int64_t);
#define MK_SPECIALIZE(N, NV)                                                                      \
    static void fwd_mk_##N##_##NV(const float *x, int64_t ps, int64_t rs, int64_t kh,            \
                                  int64_t kwc, const float *w, float *out, int64_t os,            \
                                  int stream) {                                                   \
        fwd_mk(N, NV, x, ps, rs, kh, kwc, w, out, os, stream);                                    \
    }                                                                                             \
    static void bf_mk_##N##_##NV(const float *x, const int64_t *off, int64_t oh_n, int64_t ow_n,   \
                                 int64_t ps, int64_t rs, const float *dy, int64_t ds, float *dw,  \
                                 int64_t dws) {                                                   \
        bf_mk(N, NV, x, off, oh_n, ow_n, ps, rs, dy, ds, dw, dws);                                \
    }
MK_SPECIALIZE(1, 1)
MK_SPECIALIZE(2, 1)
MK_SPECIALIZE(3, 1)
MK_SPECIALIZE(4, 1)
MK_SPECIALIZE(5, 1)
MK_SPECIALIZE(6, 1)
MK_SPECIALIZE(1, 2)
MK_SPECIALIZE(2, 2)
MK_SPECIALIZE(3, 2)
MK_SPECIALIZE(4, 2)
MK_SPECIALIZE(5, 2)
MK_SPECIALIZE(6, 2)
static const fwd_mk_fn fwd_mks[2][MK_PIX] = {
    {fwd_mk_1_1, fwd_mk_2_1, fwd_mk_3_1, fwd_mk_4_1, fwd_mk_5_1, fwd_mk_6_1},
    {fwd_mk_1_2, fwd_mk_2_2, fwd_mk_3_2, fwd_mk_4_2, fwd_mk_5_2, fwd_mk_6_2}};
static const bf_mk_fn bf_mks[2][MK_PIX] = {
    {bf_mk_1_1, bf_mk_2_1, bf_mk_3_1, bf_mk_4_1, bf_mk_5_1, bf_mk_6_1},
    {bf_mk_1_2, bf_mk_2_2, bf_mk_3_2, bf_mk_4_2, bf_mk_5_2, bf_mk_6_2}};

/* Splits n items into ceil(n / MK_PIX) blocks of nearly equal size (28 -> 6,6,6,5,5;
 * 14 -> 5,5,4): blocks of 4 or more keep 8 or more accumulators, enough to hide the FMA
 * latency. Fills size[] (caller-allocated, mk_blocks(n) entries) and returns the count. */
static int64_t mk_blocks(int64_t n) { return (n + MK_PIX - 1) / MK_PIX; }
static int64_t mk_split(int64_t n, int64_t *size) {
    int64_t nb = mk_blocks(n);
    for (int64_t b = 0; b < nb; b++) size[b] = n / nb + (b < n % nb ? 1 : 0);
    return nb;
}

static int direct_applies(const pst_conv_geom *g) { return g->oc % 8 == 0; }

/* An output of more than 8 MiB, a quarter of the L3 cache that a core complex of a current x86
 * server shares (inputs, other threads and, on a shared machine, other tenants compete for it),
 * is written with streaming stores: it will not stay cached anyway, and ordinary stores would
 * first read every line from memory. (sysconf's L3 size is the whole socket's, so it is no
 * guide.) On this project's machine that lifts the first SimpleCNN layer (10 MB of output)
 * from about 0.5 to about 0.7 of SGEMM (bench_kernels). */
#define STREAM_MIN_BYTES (8ll << 20)
static int stream_output(const float *out, int64_t bytes) {
#ifdef __AVX__
    return ((uintptr_t)out % 32) == 0 && bytes > STREAM_MIN_BYTES;
#else
    (void)out;
    (void)bytes;
    return 0;
#endif
}

static void direct_job_init(conv_job *j, const pst_conv_geom *g) {
    j->nv = g->oc % 16 == 0 ? 2 : 1;
    j->ph = (g->oh - 1) * g->sh + g->kh;
    j->pw = (g->ow - 1) * g->sw + g->kw;
}

/* Copies image n into the zero-padded ph x pw x C plane p (rows or columns of the input that
 * no window reaches, as VALID padding can leave, are dropped). */
static void pad_image(const pst_conv_geom *g, const float *in, int64_t n, int64_t ph, int64_t pw,
                      float *p) {
    int64_t C = g->c, nx = g->w;
    if (g->pad_left + nx > pw) nx = pw - g->pad_left;
    memset(p, 0, (size_t)(ph * pw * C) * sizeof(float));
    for (int64_t y = 0; y < g->h && y + g->pad_top < ph; y++)
        memcpy(p + ((y + g->pad_top) * pw + g->pad_left) * C, in + ((n * g->h + y) * g->w) * C,
               (size_t)(nx * C) * sizeof(float));
}

static float *plane_alloc(const conv_job *j) {
    float *p = malloc((size_t)(j->ph * j->pw * j->g->c) * sizeof(float));
    PST_ASSERT(p != NULL);
    return p;
}

/* Forward over images [b, e). Channel blocks are the innermost loop over an output row, so each
 * row's output is written in one pass. */
static void direct_fwd_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c, OC = g->oc, K = g->kh * g->kw * C, cb = 8 * j->nv;
    float *pl = plane_alloc(j);
    int64_t *np = malloc((size_t)mk_blocks(g->ow) * sizeof *np);
    PST_ASSERT(np != NULL);
    int64_t nb = mk_split(g->ow, np);
    for (int64_t n = b; n < e; n++) {
        pad_image(g, j->in, n, j->ph, j->pw, pl);
        for (int64_t oh = 0; oh < g->oh; oh++) {
            const float *xr = pl + oh * g->sh * j->pw * C;
            float *orow = j->out + (n * g->oh + oh) * g->ow * OC;
            for (int64_t o = 0; o < OC; o += cb)
                for (int64_t blk = 0, ow = 0; blk < nb; ow += np[blk++])
                    fwd_mks[j->nv - 1][np[blk] - 1](xr + ow * g->sw * C, g->sw * C, j->pw * C,
                                                    g->kh, g->kw * C, j->wpack + o * K,
                                                    orow + ow * OC + o, OC, j->stream);
        }
    }
#ifdef __AVX__
    if (j->stream) _mm_sfence(); /* streamed stores are visible before the range counts done */
#endif
    free(np);
    free(pl);
}

/* The partial-sum block of the range starting at image b; blocks go to ranges in the order
 * threads take them, so each records its range for the in-order sum. */
static float *claim_partial(conv_job *j, int64_t b, int64_t block) {
    int p = atomic_fetch_add(&j->next_partial, 1);
    j->partial_begin[p] = b;
    return j->partials + (int64_t)p * block;
}

/* Backprop filter over images [b, e) into this range's own partial sum. */
static void direct_bf_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c, OC = g->oc, K = g->kh * g->kw * C, cb = 8 * j->nv, kwc = g->kw * C;
    float *acc = claim_partial(j, b, K * OC);
    float *pl = plane_alloc(j);
    /* per filter row k = (i * kw + q) * C + c, its offset in the plane: row i, float q*C + c */
    int64_t *nk = malloc((size_t)mk_blocks(K) * sizeof *nk), *off = malloc((size_t)K * sizeof *off);
    PST_ASSERT(nk != NULL && off != NULL);
    int64_t nb = mk_split(K, nk);
    for (int64_t k = 0; k < K; k++) off[k] = k / kwc * j->pw * C + k % kwc;
    int64_t dy_lines = g->oh * g->ow * OC / 16, passes = (OC / cb) * nb; /* 64-byte lines */
    for (int64_t n = b; n < e; n++) {
        pad_image(g, j->in, n, j->ph, j->pw, pl);
        const float *dyn = j->dy + n * g->oh * g->ow * OC;
        /* The passes over this image's dy run from the cache; meanwhile the next image's dy is
         * prefetched a slice per pass, so the first pass over it need not wait for memory. */
        const float *next = n + 1 < e ? dyn + g->oh * g->ow * OC : NULL;
        int64_t per_pass = (dy_lines + passes - 1) / passes, line = 0;
        for (int64_t o = 0; o < OC; o += cb)
            for (int64_t blk = 0, k0 = 0; blk < nb; k0 += nk[blk++]) {
                for (int64_t l = 0; next && l < per_pass && line < dy_lines; l++, line++)
                    __builtin_prefetch(next + line * 16, 0, 2);
                bf_mks[j->nv - 1][nk[blk] - 1](pl, off + k0, g->oh, g->ow, g->sw * C,
                                               g->sh * j->pw * C, dyn + o, OC, acc + k0 * OC + o,
                                               OC);
            }
    }
    free(off);
    free(nk);
    free(pl);
}

/* Packs filter [K][OC] into blocks of cb channels, [OC / cb][K][cb] (caller frees). */
static float *pack_filter(const float *f, int64_t K, int64_t OC, int64_t cb) {
    float *p = malloc((size_t)(K * OC) * sizeof(float));
    PST_ASSERT(p != NULL);
    for (int64_t o = 0; o < OC; o += cb)
        for (int64_t k = 0; k < K; k++)
            memcpy(p + o * K + k * cb, f + k * OC + o, (size_t)cb * sizeof(float));
    return p;
}
void pst_conv2d_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out) {
    DISPATCH(conv2d_forward, g, in, filter, out);
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    conv_job j = {.g = g, .in = in, .filter = filter, .out = out};
    if (direct_applies(g)) {
        direct_job_init(&j, g);
        j.stream = stream_output(out, M * g->oc * (int64_t)sizeof(float));
        float *wp = pack_filter(filter, K, g->oc, 8 * j.nv);
        j.wpack = wp;
        pst_parallel_for(g->n, 1, direct_fwd_range, &j);
        free(wp);
        return;
    }
    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)g->oc, (int)K, 1.0f,
                    in, (int)K, filter, (int)g->oc, 0.0f, out, (int)g->oc);
        return;
    }
    pst_parallel_for(g->n, 1, fwd_range, &j);
}

static void bf_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow, step = images_per_chunk(g);
    float *acc = claim_partial(j, b, K * g->oc);
    float *col = col_alloc(g, (step < e - b ? step : e - b) * per);
    for (int64_t i = b; i < e; i += step) {
        int64_t ni = e - i < step ? e - i : step, r0 = i * per, nr = ni * per;
        im2col(g, j->in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)g->oc, (int)nr, 1.0f,
                    col, (int)K, j->dy + r0 * g->oc, (int)g->oc, 1.0f, acc, (int)g->oc);
    }
    free(col);
}

void pst_conv2d_backprop_filter(const pst_conv_geom *g, const float *in, const float *dy,
                                float *dfilter) {
    DISPATCH(conv2d_backprop_filter, g, in, dy, dfilter);
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    int direct = direct_applies(g);
    if (!direct && is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)g->oc, (int)M, 1.0f, in,
                    (int)K, dy, (int)g->oc, 0.0f, dfilter, (int)g->oc);
        return;
    }
    /* Each range sums its images into its own K x OC block; the blocks are added at the end. */
    int t = pst_parallel_threads();
    int64_t slots = (int64_t)t * PST_PARALLEL_RANGES_PER_THREAD;
    conv_job j = {.g = g, .in = in, .dy = dy};
    if (direct) direct_job_init(&j, g);
    j.partials = calloc((size_t)(slots * K * g->oc), sizeof(float));
    j.partial_begin = malloc((size_t)slots * sizeof *j.partial_begin);
    PST_ASSERT(j.partials != NULL && j.partial_begin != NULL);
    atomic_init(&j.next_partial, 0);
    pst_parallel_for(g->n, 1, direct ? direct_bf_range : bf_range, &j);
    int used = atomic_load(&j.next_partial);
    /* Added in image order, whichever thread ran which range: the same sum on every run. */
    int *order = malloc(((size_t)used + 1) * sizeof *order);
    PST_ASSERT(order != NULL);
    order[0] = 0; /* no range ran (no images): block 0 is zeros */
    for (int p = 0; p < used; p++) {
        int q = p;
        while (q > 0 && j.partial_begin[order[q - 1]] > j.partial_begin[p]) {
            order[q] = order[q - 1];
            q--;
        }
        order[q] = p;
    }
    memcpy(dfilter, j.partials + (int64_t)order[0] * K * g->oc, (size_t)(K * g->oc) * sizeof(float));
    for (int p = 1; p < used; p++) {
        const float *src = j.partials + (int64_t)order[p] * K * g->oc;
        for (int64_t i = 0; i < K * g->oc; i++) dfilter[i] += src[i];
    }
    free(order);
    free(j.partials);
    free(j.partial_begin);
}

static void bi_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow, step = images_per_chunk(g);
    memset(j->out + b * g->h * g->w * g->c, 0, (size_t)((e - b) * g->h * g->w * g->c) * sizeof(float));
    float *col = col_alloc(g, (step < e - b ? step : e - b) * per);
    for (int64_t i = b; i < e; i += step) {
        int64_t ni = e - i < step ? e - i : step, r0 = i * per, nr = ni * per;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)K, (int)g->oc, 1.0f,
                    j->dy + r0 * g->oc, (int)g->oc, j->filter, (int)g->oc, 0.0f, col, (int)K);
        col2im_add(g, col, r0, nr, j->out);
    }
    free(col);
}

void pst_conv2d_backprop_input(const pst_conv_geom *g, const float *filter, const float *dy,
                               float *din) {
    DISPATCH(conv2d_backprop_input, g, filter, dy, din);
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K, (int)g->oc, 1.0f, dy,
                    (int)g->oc, filter, (int)g->oc, 0.0f, din, (int)K);
        return;
    }
    if (g->sh == 1 && g->sw == 1) {
        /* With stride 1 the input gradient is a convolution of dy with the filter flipped and
         * its channels swapped, padded by k - 1 - pad: no col2im scatter. */
        float *flip = malloc((size_t)(g->kh * g->kw * g->c * g->oc) * sizeof(float));
        PST_ASSERT(flip != NULL);
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t q = 0; q < g->kw; q++)
                for (int64_t c = 0; c < g->c; c++)
                    for (int64_t o = 0; o < g->oc; o++)
                        flip[((i * g->kw + q) * g->oc + o) * g->c + c] =
                            filter[(((g->kh - 1 - i) * g->kw + (g->kw - 1 - q)) * g->c + c) * g->oc + o];
        pst_conv_geom t = {.n = g->n, .h = g->oh, .w = g->ow, .c = g->oc, .kh = g->kh, .kw = g->kw,
                           .oc = g->c, .sh = 1, .sw = 1, .oh = g->h, .ow = g->w,
                           .pad_top = g->kh - 1 - g->pad_top, .pad_left = g->kw - 1 - g->pad_left};
        pst_conv2d_forward(&t, dy, flip, din);
        free(flip);
        return;
    }
    conv_job j = {.g = g, .filter = filter, .dy = dy, .out = din};
    pst_parallel_for(g->n, 1, bi_range, &j);
}

/* Pooling: window (i, j) of output (oh, ow) covers input rows oh*sh - pad_top + i. */
typedef struct pool_job {
    const pst_conv_geom *g;
    const float *in, *y, *dy;
    float *out;
} pool_job;

static void maxpool_fwd_range(void *ctx, int64_t b, int64_t e) {
    pool_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c;
    for (int64_t row = b; row < e; row++) {
        int64_t n = row / g->oh, oh = row % g->oh;
        for (int64_t ow = 0; ow < g->ow; ow++) {
            float *o = j->out + ((n * g->oh + oh) * g->ow + ow) * C;
            for (int64_t k = 0; k < C; k++) o[k] = -FLT_MAX;
            for (int64_t i = 0; i < g->kh; i++) {
                int64_t ih = oh * g->sh - g->pad_top + i;
                if (ih < 0 || ih >= g->h) continue;
                for (int64_t jj = 0; jj < g->kw; jj++) {
                    int64_t iw = ow * g->sw - g->pad_left + jj;
                    if (iw < 0 || iw >= g->w) continue;
                    const float *x = j->in + ((n * g->h + ih) * g->w + iw) * C;
                    for (int64_t k = 0; k < C; k++) o[k] = x[k] > o[k] ? x[k] : o[k];
                }
            }
        }
    }
}

/* The gradient goes to the first window element equal to the window's max (TF's choice);
 * windows of one image row never share input rows with other images, and overlapping
 * windows within an image are handled by running each image on one thread. */
static void maxpool_bwd_range(void *ctx, int64_t b, int64_t e) {
    pool_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c;
    uint8_t *taken = malloc((size_t)C);
    PST_ASSERT(taken != NULL);
    for (int64_t n = b; n < e; n++) {
        memset(j->out + n * g->h * g->w * C, 0, (size_t)(g->h * g->w * C) * sizeof(float));
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t o = ((n * g->oh + oh) * g->ow + ow) * C;
                const float *yv = j->y + o, *d = j->dy + o;
                memset(taken, 0, (size_t)C);
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t jj = 0; jj < g->kw; jj++) {
                        int64_t iw = ow * g->sw - g->pad_left + jj;
                        if (iw < 0 || iw >= g->w) continue;
                        int64_t base = ((n * g->h + ih) * g->w + iw) * C;
                        const float *x = j->in + base;
                        float *dx = j->out + base;
                        for (int64_t k = 0; k < C; k++) {
                            int hit = !taken[k] && x[k] == yv[k];
                            dx[k] += hit ? d[k] : 0.0f;
                            taken[k] |= (uint8_t)hit;
                        }
                    }
                }
            }
    }
    free(taken);
}

void pst_maxpool_forward(const pst_conv_geom *g, const float *in, float *out) {
    DISPATCH(maxpool_forward, g, in, out);
    pool_job j = {g, in, NULL, NULL, out};
    pst_parallel_for(g->n * g->oh, 4, maxpool_fwd_range, &j);
}

void pst_maxpool_backward(const pst_conv_geom *g, const float *in, const float *y,
                          const float *dy, float *din) {
    DISPATCH(maxpool_backward, g, in, y, dy, din);
    pool_job j = {g, in, y, dy, din};
    pst_parallel_for(g->n, 1, maxpool_bwd_range, &j);
}

/* Window element count excluding padding (TF's AvgPool divisor). */
static int64_t window_count(const pst_conv_geom *g, int64_t oh, int64_t ow) {
    int64_t h0 = oh * g->sh - g->pad_top, w0 = ow * g->sw - g->pad_left;
    int64_t h1 = h0 + g->kh, w1 = w0 + g->kw;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > g->h) h1 = g->h;
    if (w1 > g->w) w1 = g->w;
    int64_t c = (h1 - h0) * (w1 - w0);
    return c > 0 ? c : 1;
}

void pst_avgpool_forward(const pst_conv_geom *g, const float *in, float *out) {
    DISPATCH(avgpool_forward, g, in, out);
    int64_t C = g->c;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                float *o = out + ((n * g->oh + oh) * g->ow + ow) * C;
                memset(o, 0, (size_t)C * sizeof(float));
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        const float *x = in + ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) o[k] += x[k];
                    }
                }
                float inv = 1.0f / (float)window_count(g, oh, ow);
                for (int64_t k = 0; k < C; k++) o[k] *= inv;
            }
}

void pst_avgpool_backward(const pst_conv_geom *g, const float *dy, float *din) {
    DISPATCH(avgpool_backward, g, dy, din);
    int64_t C = g->c;
    memset(din, 0, (size_t)(g->n * g->h * g->w * C) * sizeof(float));
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                const float *d = dy + ((n * g->oh + oh) * g->ow + ow) * C;
                float inv = 1.0f / (float)window_count(g, oh, ow);
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        float *x = din + ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) x[k] += d[k] * inv;
                    }
                }
            }
}

/* Double pooling: one walk over each window serves the four operations (the float32 kernels
 * above are the fast path; this one is for float64 graphs, which are small). Compiled once:
 * not in the AVX2 copy of this file. */
#ifndef PST_KERNELS_VARIANT_AVX2
void pst_pool_f64(const pst_conv_geom *g, pst_pool_mode mode, const double *in, const double *y,
                  const double *dy, double *out) {
    int64_t C = g->c;
    int fwd = mode == PST_POOL_MAX_FWD || mode == PST_POOL_AVG_FWD;
    int64_t out_n = fwd ? g->n * g->oh * g->ow * C : g->n * g->h * g->w * C;
    for (int64_t i = 0; i < out_n; i++) out[i] = mode == PST_POOL_MAX_FWD ? -DBL_MAX : 0;
    uint8_t *taken = malloc((size_t)C);
    PST_ASSERT(taken != NULL);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t o = ((n * g->oh + oh) * g->ow + ow) * C;
                double inv = 1.0 / (double)window_count(g, oh, ow);
                /* the window clipped to the image, rows [h0, h1) and columns [w0, w1) */
                int64_t h0 = oh * g->sh - g->pad_top, w0 = ow * g->sw - g->pad_left;
                int64_t h1 = h0 + g->kh < g->h ? h0 + g->kh : g->h;
                int64_t w1 = w0 + g->kw < g->w ? w0 + g->kw : g->w;
                memset(taken, 0, (size_t)C);
                for (int64_t ih = h0 < 0 ? 0 : h0; ih < h1; ih++)
                    for (int64_t iw = w0 < 0 ? 0 : w0; iw < w1; iw++) {
                        int64_t base = ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) {
                            switch (mode) {
                            case PST_POOL_MAX_FWD:
                                if (in[base + k] > out[o + k]) out[o + k] = in[base + k];
                                break;
                            case PST_POOL_AVG_FWD: out[o + k] += in[base + k] * inv; break;
                            case PST_POOL_MAX_BWD: /* the first element equal to the max */
                                if (!taken[k] && in[base + k] == y[o + k]) {
                                    out[base + k] += dy[o + k];
                                    taken[k] = 1;
                                }
                                break;
                            default: out[base + k] += dy[o + k] * inv; break;
                            }
                        }
                    }
            }
    free(taken);
}
#endif
