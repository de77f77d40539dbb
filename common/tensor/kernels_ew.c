#include "kernels_ew.h"

#include <stdlib.h>
#include <string.h>

int pst_bcast_plan(const pst_shape *a, const pst_shape *b, pst_bcast *p) {
    memset(p, 0, sizeof *p);
    int r = a->rank > b->rank ? a->rank : b->rank;
    p->rank = r;
    int64_t ka = 1, kb = 1;
    for (int i = r - 1; i >= 0; i--) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) return -1;
        p->dims[i] = da > db ? da : db;
        if (da == 0 || db == 0) p->dims[i] = 0;
        p->sa[i] = (da == 1 && p->dims[i] != 1) ? 0 : ka;
        p->sb[i] = (db == 1 && p->dims[i] != 1) ? 0 : kb;
        ka *= da;
        kb *= db;
    }
    p->n = 1;
    for (int i = 0; i < r; i++) p->n *= p->dims[i];
    return 0;
}

void pst_bcast_for_each(const pst_bcast *p, pst_bcast_run_fn fn, void *ctx) {
    if (p->n == 0) return;
    if (p->rank == 0) {
        fn(ctx, 0, 0, 0, 1, 0, 0);
        return;
    }
    int r = p->rank;
    int64_t inner = p->dims[r - 1];
    int64_t idx[PST_MAX_RANK] = {0};
    int64_t o = 0, a = 0, b = 0;
    for (;;) {
        fn(ctx, o, a, b, inner, p->sa[r - 1], p->sb[r - 1]);
        o += inner;
        int d = r - 2;
        for (; d >= 0; d--) {
            idx[d]++;
            a += p->sa[d];
            b += p->sb[d];
            if (idx[d] < p->dims[d]) break;
            a -= p->sa[d] * p->dims[d];
            b -= p->sb[d] * p->dims[d];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

void pst_reduce_plan_make(const pst_shape *in, const int *reduced, pst_reduce_plan *p) {
    memset(p, 0, sizeof *p);
    p->rank = in->rank;
    int first = -1, last = -1, count = 0;
    p->out_n = 1;
    for (int d = 0; d < in->rank; d++) {
        p->dims[d] = in->dims[d];
        p->reduced[d] = reduced[d];
        if (reduced[d]) {
            if (first < 0) first = d;
            last = d;
            count++;
        } else {
            p->out_n *= in->dims[d];
        }
    }
    p->contiguous = count == 0 || count == last - first + 1;
    if (count == 0) first = last = in->rank; /* nothing reduced: r = 1 */
    p->outer = p->r = p->inner = 1;
    for (int d = 0; d < in->rank; d++) {
        if (d < first)
            p->outer *= in->dims[d];
        else if (d <= last)
            p->r *= in->dims[d];
        else
            p->inner *= in->dims[d];
    }
}

int64_t *pst_reduce_index_map(const pst_reduce_plan *p) {
    int64_t n = 1;
    for (int d = 0; d < p->rank; d++) n *= p->dims[d];
    int64_t *map = malloc((size_t)(n > 0 ? n : 1) * sizeof *map);
    if (map == NULL) return NULL;
    int64_t ostride[PST_MAX_RANK], k = 1;
    for (int d = p->rank - 1; d >= 0; d--) {
        ostride[d] = p->reduced[d] ? 0 : k;
        if (!p->reduced[d]) k *= p->dims[d];
    }
    int64_t idx[PST_MAX_RANK] = {0}, o = 0;
    for (int64_t i = 0; i < n; i++) {
        map[i] = o;
        for (int d = p->rank - 1; d >= 0; d--) {
            idx[d]++;
            o += ostride[d];
            if (idx[d] < p->dims[d]) break;
            o -= ostride[d] * p->dims[d];
            idx[d] = 0;
        }
    }
    return map;
}

void pst_shape_strides(const pst_shape *s, int64_t *strides) {
    int64_t k = 1;
    for (int d = s->rank - 1; d >= 0; d--) {
        strides[d] = k;
        k *= s->dims[d];
    }
}

void pst_strided_copy(void *dst, const int64_t *dst_strides, const void *src,
                      const int64_t *src_strides, const int64_t *dims, int rank, size_t es) {
    for (int d = 0; d < rank; d++)
        if (dims[d] == 0) return;
    if (rank == 0) {
        memcpy(dst, src, es);
        return;
    }
    int64_t idx[PST_MAX_RANK] = {0};
    char *o = dst;
    const char *i = src;
    int r = rank - 1;
    int64_t n = dims[r], so = dst_strides[r], si = src_strides[r];
    for (;;) {
        if (so == 1 && si == 1) {
            memcpy(o, i, (size_t)n * es);
        } else if (es == 4) {
            for (int64_t k = 0; k < n; k++) ((float *)o)[k * so] = ((const float *)i)[k * si];
        } else {
            for (int64_t k = 0; k < n; k++) memcpy(o + k * so * (int64_t)es, i + k * si * (int64_t)es, es);
        }
        int d = r - 1;
        for (; d >= 0; d--) {
            idx[d]++;
            o += dst_strides[d] * (int64_t)es;
            i += src_strides[d] * (int64_t)es;
            if (idx[d] < dims[d]) break;
            o -= dst_strides[d] * dims[d] * (int64_t)es;
            i -= src_strides[d] * dims[d] * (int64_t)es;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}
