#include "npz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bundle.h"
#include "metagraph.h"
#include "op.h"
#include "ops.h"
#include "varstore.h"
#include "file.h"

/* ---- .npy ------------------------------------------------------------------------------- */

static const char *descr_of(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return "<f4";
    case PST_DOUBLE: return "<f8";
    case PST_INT32: return "<i4";
    case PST_INT64: return "<i8";
    case PST_UINT8: return "|u1";
    case PST_BOOL: return "|b1";
    default: return NULL;
    }
}

static pst_dtype dtype_of(const char *d) {
    static const struct {
        const char *s;
        pst_dtype dt;
    } m[] = {{"<f4", PST_FLOAT}, {"<f8", PST_DOUBLE}, {"<i4", PST_INT32}, {"<i8", PST_INT64},
             {"|u1", PST_UINT8}, {"|b1", PST_BOOL}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].s, d) == 0) return m[i].dt;
    return PST_DT_INVALID;
}

/* The .npy bytes of t (malloc'd). */
static uint8_t *npy_encode(const pst_tensor *t, size_t *len) {
    char hdr[256];
    int off = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr_of(t->dtype));
    for (int i = 0; i < t->shape.rank; i++)
        off += snprintf(hdr + off, sizeof hdr - (size_t)off, "%lld,%s", (long long)t->shape.dims[i],
                        t->shape.rank > 1 && i < t->shape.rank - 1 ? " " : "");
    off += snprintf(hdr + off, sizeof hdr - (size_t)off, "), }");
    size_t total = 10 + (size_t)off + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)off + pad + 1;
    *len = 10 + hlen + t->nbytes;
    uint8_t *b = malloc(*len);
    PST_ASSERT(b != NULL);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + 10, hdr, (size_t)off);
    memset(b + 10 + off, ' ', pad);
    b[10 + hlen - 1] = '\n';
    if (t->nbytes) memcpy(b + 10 + hlen, t->data, t->nbytes);
    return b;
}

static pst_tensor *npy_decode(const uint8_t *b, size_t len, const char *what, pst_status *st) {
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: not a .npy array", what);
        return NULL;
    }
    size_t hlen = b[6] == 1 ? (size_t)(b[8] | (b[9] << 8)) : 0, start = 10;
    if (b[6] >= 2 && len < 12) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: not a .npy array", what);
        return NULL;
    }
    if (b[6] >= 2) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        start = 12;
    }
    if (start + hlen > len || hlen > 65536) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: bad .npy header length", what);
        return NULL;
    }
    char *h = malloc(hlen + 1);
    memcpy(h, b + start, hlen);
    h[hlen] = '\0';
    char descr[16] = "";
    const char *d = strstr(h, "'descr'"), *f = strstr(h, "'fortran_order'"), *s = strstr(h, "'shape'");
    pst_shape shape = {0};
    int ok = d && f && s && sscanf(strchr(d + 7, '\'') ? strchr(d + 7, '\'') + 1 : "", "%15[^']", descr) == 1;
    if (ok && strstr(f, "True") == f + 17) ok = 0; /* Fortran order is not supported */
    const char *p = s ? strchr(s, '(') : NULL;
    if (ok && p) {
        p++;
        while (*p && *p != ')') {
            while (*p == ' ' || *p == ',') p++;
            if (*p == ')') break;
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p || v < 0 || shape.rank >= PST_MAX_RANK) {
                ok = 0;
                break;
            }
            shape.dims[shape.rank++] = v;
            p = end;
        }
    }
    free(h);
    pst_dtype dt = ok ? dtype_of(descr) : PST_DT_INVALID;
    if (!ok || dt == PST_DT_INVALID) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: unsupported .npy header (dtype '%s')", what, descr);
        return NULL;
    }
    /* The shape's size is checked against the bytes that are there before allocating. */
    int64_t elems = 1, bytes = 0;
    int fits = 1;
    for (int d = 0; d < shape.rank && fits; d++)
        fits = !pst_mul_overflow_i64(elems, shape.dims[d], &elems);
    if (fits) fits = !pst_mul_overflow_i64(elems, (int64_t)pst_dtype_size(dt), &bytes);
    if (!fits || (uint64_t)bytes != (uint64_t)(len - start - hlen)) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: %zu data bytes for a shape needing %s%lld", what,
                       len - start - hlen, fits ? "" : "more than ",
                       (long long)(fits ? bytes : INT64_MAX));
        return NULL;
    }
    pst_tensor *t = pst_tensor_new(dt, shape, st);
    if (t == NULL) return NULL;
    if (t->nbytes) memcpy(t->data, b + start + hlen, t->nbytes);
    return t;
}

/* ---- zip -------------------------------------------------------------------------------- */

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}
static unsigned get16(const uint8_t *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | ((uint32_t)get16(p + 2) << 16); }

/* Raw deflate of src (malloc'd result). */
static uint8_t *deflate_raw(const uint8_t *src, size_t n, size_t *out_len) {
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n) + 16;
    uint8_t *out = malloc(cap);
    PST_ASSERT(out != NULL);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

int pst_npz_save(const char *path, int n, const char *const *names, pst_tensor *const *tensors,
                 pst_status *st) {
    size_t cap = 1 << 16, len = 0, cdcap = 1 << 12, cdlen = 0;
    uint8_t *out = malloc(cap), *cd = malloc(cdcap);
    PST_ASSERT(out && cd);
    for (int i = 0; i < n; i++) {
        if (descr_of(tensors[i]->dtype) == NULL) {
            free(out);
            free(cd);
            return pst_status_set(st, PST_E_INVALID, "%s: tensor '%s' has an unsupported dtype", path, names[i]);
        }
        size_t raw_len, zlen;
        uint8_t *raw = npy_encode(tensors[i], &raw_len);
        uint32_t crc = (uint32_t)crc32(0, raw, (uInt)raw_len);
        uint8_t *z = deflate_raw(raw, raw_len, &zlen);
        char fname[1100];
        snprintf(fname, sizeof fname, "%s.npy", names[i]);
        size_t fl = strlen(fname), need = 30 + fl + zlen;
        while (len + need > cap) out = realloc(out, cap *= 2);
        uint8_t *h = out + len;
        put32(h, 0x04034b50);
        put16(h + 4, 20);
        put16(h + 6, 0);
        put16(h + 8, 8);
        put32(h + 10, 0);
        put32(h + 14, crc);
        put32(h + 18, (uint32_t)zlen);
        put32(h + 22, (uint32_t)raw_len);
        put16(h + 26, (unsigned)fl);
        put16(h + 28, 0);
        memcpy(h + 30, fname, fl);
        memcpy(h + 30 + fl, z, zlen);
        while (cdlen + 46 + fl > cdcap) cd = realloc(cd, cdcap *= 2);
        uint8_t *c = cd + cdlen;
        put32(c, 0x02014b50);
        put16(c + 4, 20);
        put16(c + 6, 20);
        put16(c + 8, 0);
        put16(c + 10, 8);
        put32(c + 12, 0);
        put32(c + 16, crc);
        put32(c + 20, (uint32_t)zlen);
        put32(c + 24, (uint32_t)raw_len);
        put16(c + 28, (unsigned)fl);
        memset(c + 30, 0, 12);
        put32(c + 42, (uint32_t)len);
        memcpy(c + 46, fname, fl);
        cdlen += 46 + fl;
        len += need;
        free(raw);
        free(z);
    }
    while (len + cdlen + 22 > cap) out = realloc(out, cap *= 2);
    memcpy(out + len, cd, cdlen);
    uint8_t *e = out + len + cdlen;
    put32(e, 0x06054b50);
    put16(e + 4, 0);
    put16(e + 6, 0);
    put16(e + 8, (unsigned)n);
    put16(e + 10, (unsigned)n);
    put32(e + 12, (uint32_t)cdlen);
    put32(e + 16, (uint32_t)len);
    put16(e + 20, 0);
    int rc = pst_file_write_atomic(path, out, len + cdlen + 22, st);
    free(out);
    free(cd);
    return rc;
}

int pst_npz_load(const char *path, int *n_out, char ***names_out, pst_tensor ***tensors_out,
                 pst_status *st) {
    uint8_t *buf;
    size_t len;
    *n_out = 0;
    *names_out = NULL;
    *tensors_out = NULL;
    int rc = pst_file_read(path, (size_t)1 << 30, &buf, &len, st);
    if (rc < 0) return rc;
    if (len < 22 || get32(buf + len - 22) != 0x06054b50) {
        free(buf);
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: not a zip archive (no end record)", path);
    }
    const uint8_t *e = buf + len - 22;
    unsigned n = get16(e + 10);
    uint32_t cdsize = get32(e + 12), cdoff = get32(e + 16);
    /* The directory must lie inside the archive and have room for the entries it counts. */
    if ((uint64_t)cdoff + cdsize > len - 22 || (uint64_t)n * 46 > cdsize) {
        free(buf);
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad central directory (%u entries in %u "
                              "bytes at offset %u of a %zu-byte archive)", path, n, cdsize, cdoff,
                              len);
    }
    const uint8_t *cd_end = buf + cdoff + cdsize;
    char **names = calloc(n + 1, sizeof *names);
    pst_tensor **ts = calloc(n + 1, sizeof *ts);
    const uint8_t *c = buf + cdoff;
    unsigned k = 0;
    for (; k < n && rc == 0; k++) {
        if ((size_t)(cd_end - c) < 46 || get32(c) != 0x02014b50 ||
            (size_t)(cd_end - c) - 46 < (size_t)get16(c + 28) + get16(c + 30) + get16(c + 32)) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: bad central directory entry %u", path, k);
            break;
        }
        unsigned method = get16(c + 10), fl = get16(c + 28), xl = get16(c + 30), cl = get16(c + 32);
        uint32_t crc = get32(c + 16), zlen = get32(c + 20), rlen = get32(c + 24), loff = get32(c + 42);
        char fname[1100];
        snprintf(fname, sizeof fname, "%.*s", (int)(fl < 1099 ? fl : 1099), (const char *)c + 46);
        c += 46 + fl + xl + cl;
        if ((uint64_t)loff + 30 > len || get32(buf + loff) != 0x04034b50) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry '%s' has a bad local header", path, fname);
            break;
        }
        size_t data = loff + 30 + get16(buf + loff + 26) + get16(buf + loff + 28);
        if (data > len || zlen > len - data) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry '%s' is truncated", path, fname);
            break;
        }
        if (method != 0 && method != 8) {
            rc = pst_status_set(st, PST_E_UNIMPLEMENTED, "%s: entry '%s' uses zip method %u", path,
                                fname, method);
            break;
        }
        /* The size the directory claims must fit what the compressed bytes can hold (stored:
         * the same size; deflate: at most 1032:1) before it is allocated. */
        if ((method == 0 && rlen != zlen) ||
            (method == 8 && (uint64_t)rlen > (uint64_t)zlen * 1032 + 64) || rlen > (1u << 31)) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry '%s' claims %u bytes, more than "
                                "its %u stored bytes can hold", path, fname, (unsigned)rlen,
                                (unsigned)zlen);
            break;
        }
        uint8_t *raw = malloc(rlen ? rlen : 1);
        if (raw == NULL) {
            rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory for entry '%s' (%u bytes)",
                                path, fname, (unsigned)rlen);
            break;
        }
        if (method == 0) {
            memcpy(raw, buf + data, rlen);
        } else {
            z_stream z = {0};
            inflateInit2(&z, -15);
            z.next_in = buf + data;
            z.avail_in = zlen;
            z.next_out = raw;
            z.avail_out = rlen;
            int zr = inflate(&z, Z_FINISH);
            inflateEnd(&z);
            if (zr != Z_STREAM_END || z.total_out != rlen) {
                free(raw);
                rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry '%s' does not inflate", path, fname);
                break;
            }
        }
        if ((uint32_t)crc32(0, raw, rlen) != crc) {
            free(raw);
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry '%s' fails its CRC", path, fname);
            break;
        }
        char what[2300];
        snprintf(what, sizeof what, "%s: %s", path, fname);
        ts[k] = npy_decode(raw, rlen, what, st);
        free(raw);
        if (ts[k] == NULL) {
            rc = st ? st->code : PST_E_DATA_LOSS;
            break;
        }
        size_t nl = strlen(fname);
        if (nl > 4 && strcmp(fname + nl - 4, ".npy") == 0) fname[nl - 4] = '\0';
        names[k] = strdup(fname);
    }
    free(buf);
    if (rc < 0) {
        for (unsigned i = 0; i <= k && i < n; i++) {
            free(names[i]);
            pst_tensor_unref(ts[i]);
        }
        free(names);
        free(ts);
        return rc;
    }
    *n_out = (int)n;
    *names_out = names;
    *tensors_out = ts;
    return 0;
}

int pst_npz_export_variables(pst_session *s, const pst_graph *g, const char *path, pst_status *st) {
    int n;
    const pst_output *vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    pst_tensor **ts = calloc((size_t)n + 1, sizeof *ts);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        names[i] = vars[i].node->name;
        pst_var *v = pst_var_store_find(pst_session_vars(s), names[i]);
        ts[i] = v ? pst_var_read(v) : NULL;
        if (ts[i] == NULL) rc = pst_var_uninit_error(names[i], st);
    }
    if (rc == 0) rc = pst_npz_save(path, n, names, ts, st);
    for (int i = 0; i < n; i++) pst_tensor_unref(ts[i]);
    free(names);
    free(ts);
    return rc;
}

int pst_npz_assign_variables(pst_session *s, const pst_graph *g, const char *path, pst_status *st) {
    int n;
    char **names;
    pst_tensor **ts;
    int rc = pst_npz_load(path, &n, &names, &ts, st);
    if (rc < 0) return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        pst_node *vn = pst_graph_find(g, names[i]);
        if (vn == NULL || !(vn->op->flags & PST_OP_VARIABLE)) {
            rc = pst_status_set(st, PST_E_NOT_FOUND, "%s: entry '%s' matches no variable", path, names[i]);
            break;
        }
        pst_var *v = pst_var_store_get_or_create(pst_session_vars(s), vn->name, vn->out_dtypes[0],
                                                 vn->out_shapes[0], st);
        rc = v ? pst_var_assign(v, ts[i], 1, st) : PST_E_INVALID;
        if (rc < 0) pst_status_prefix(st, "%s: ", path);
    }
    for (int i = 0; i < n; i++) {
        free(names[i]);
        pst_tensor_unref(ts[i]);
    }
    free(names);
    free(ts);
    return rc;
}
