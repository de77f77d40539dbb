#include "device.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int valid_ident(const char *s, size_t n) {
    if (n == 0 || n >= PST_DEVICE_NAME_MAX || !isalpha((unsigned char)s[0])) return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return 0;
    return 1;
}

/* Parses a non-negative decimal or "*" (-> -1). */
static int parse_num(const char *s, size_t n, int *out) {
    if (n == 1 && s[0] == '*') {
        *out = -1;
        return 0;
    }
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static void upper_type(char *dst, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (char)toupper((unsigned char)s[i]);
    dst[n] = '\0';
}

int pst_device_parse(const char *spec, pst_device_name *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    out->replica = out->task = out->id = -1;
    if (spec == NULL || spec[0] == '\0') return 0;
    const char *p = spec;
    if (*p != '/')
        return pst_status_set(st, PST_E_INVALID,
                              "device spec '%s' must start with '/' (e.g. /job:ps/task:0)", spec);
    while (*p) {
        if (*p != '/') goto bad;
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon == NULL) goto bad_part;
        size_t klen = (size_t)(colon - p);
        const char *v = colon + 1;
        size_t vlen = len - klen - 1;
        if (klen == 3 && strncmp(p, "job", 3) == 0) {
            if (vlen == 1 && v[0] == '*')
                out->job[0] = '\0';
            else if (!valid_ident(v, vlen))
                goto bad_part;
            else {
                memcpy(out->job, v, vlen);
                out->job[vlen] = '\0';
            }
        } else if (klen == 7 && strncmp(p, "replica", 7) == 0) {
            if (parse_num(v, vlen, &out->replica) < 0) goto bad_part;
        } else if (klen == 4 && strncmp(p, "task", 4) == 0) {
            if (parse_num(v, vlen, &out->task) < 0) goto bad_part;
        } else if (klen == 6 && strncmp(p, "device", 6) == 0) {
            /* device:TYPE:ID or device:TYPE or device:* */
            const char *c2 = memchr(v, ':', vlen);
            size_t tlen = c2 ? (size_t)(c2 - v) : vlen;
            if (tlen == 1 && v[0] == '*')
                out->type[0] = '\0';
            else if (!valid_ident(v, tlen))
                goto bad_part;
            else
                upper_type(out->type, v, tlen);
            if (c2 && parse_num(c2 + 1, vlen - tlen - 1, &out->id) < 0) goto bad_part;
        } else if ((klen == 3 && (strncasecmp(p, "cpu", 3) == 0 || strncasecmp(p, "gpu", 3) == 0))) {
            upper_type(out->type, p, 3);
            if (parse_num(v, vlen, &out->id) < 0) goto bad_part;
        } else {
            goto bad_part;
        }
        p += len;
        continue;
    bad_part:
        return pst_status_set(st, PST_E_INVALID, "device spec '%s': cannot parse part '%.*s'",
                              spec, (int)len, p);
    }
    return 0;
bad:
    return pst_status_set(st, PST_E_INVALID, "device spec '%s' is malformed", spec);
}

void pst_device_merge(pst_device_name *base, const pst_device_name *over) {
    if (over->job[0]) strcpy(base->job, over->job);
    if (over->replica >= 0) base->replica = over->replica;
    if (over->task >= 0) base->task = over->task;
    if (over->type[0]) {
        strcpy(base->type, over->type);
        base->id = over->id;
    } else if (over->id >= 0) {
        base->id = over->id;
    }
}

const char *pst_device_str(const pst_device_name *d, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
#define APPEND(...)                                                                               \
    do {                                                                                          \
        if (off < len) off += (size_t)snprintf(buf + off, len - off, __VA_ARGS__);                \
    } while (0)
    if (d->job[0]) APPEND("/job:%s", d->job);
    if (d->replica >= 0) APPEND("/replica:%d", d->replica);
    if (d->task >= 0) APPEND("/task:%d", d->task);
    if (d->type[0]) {
        if (d->id >= 0)
            APPEND("/device:%s:%d", d->type, d->id);
        else
            APPEND("/device:%s:*", d->type);
    }
#undef APPEND
    return buf;
}

const char *pst_device_full_str(const pst_device_name *d, char *buf, size_t len) {
    snprintf(buf, len, "/job:%s/replica:%d/task:%d/device:%s:%d", d->job[0] ? d->job : "localhost",
             d->replica >= 0 ? d->replica : 0, d->task >= 0 ? d->task : 0,
             d->type[0] ? d->type : "CPU", d->id >= 0 ? d->id : 0);
    return buf;
}

int pst_device_canonical(const char *spec, char *buf, size_t len, pst_status *st) {
    pst_device_name d;
    int rc = pst_device_parse(spec, &d, st);
    if (rc < 0) return rc;
    pst_device_str(&d, buf, len);
    return 0;
}

int pst_device_same_task(const pst_device_name *a, const pst_device_name *b) {
    return strcmp(a->job, b->job) == 0 && (a->replica < 0 ? 0 : a->replica) ==
               (b->replica < 0 ? 0 : b->replica) &&
           (a->task < 0 ? 0 : a->task) == (b->task < 0 ? 0 : b->task);
}

int pst_device_task(const char *device, const char *dflt, char *out, size_t len, pst_status *st) {
    pst_device_name d;
    int rc = pst_device_parse(device, &d, st);
    if (rc < 0) return rc;
    if (d.job[0] == '\0') return pst_device_task(dflt, "/job:localhost", out, len, st);
    snprintf(out, len, "/job:%s/replica:%d/task:%d", d.job, d.replica < 0 ? 0 : d.replica,
             d.task < 0 ? 0 : d.task);
    return 0;
}
