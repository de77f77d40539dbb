/* transport: helpers shared by every transport, the call group, and the in-process transport. */
#include "transport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pst_transport_free(pst_transport *t) {
    if (t) t->ops->free(t);
}

pst_msg pst_msg_of(const void *p, size_t len) {
    pst_msg m = {0};
    if (len > 0) {
        m.n = 1;
        m.seg[0].base = p;
        m.seg[0].len = len;
    }
    return m;
}

size_t pst_iov_total(const pst_iov *v, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += v[i].len;
    return total;
}

uint8_t *pst_iov_flatten(const pst_iov *v, int n, size_t *len) {
    size_t total = pst_iov_total(v, n);
    *len = total;
    if (total == 0) return NULL;
    uint8_t *buf = malloc(total);
    if (!buf) return NULL;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(buf + off, v[i].base, v[i].len);
        off += v[i].len;
    }
    return buf;
}

/* ---- blocking calls ---- */

typedef struct sync_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    pst_status st;
    uint8_t *resp;
    size_t len;
} sync_call;

static void sync_done(void *arg, const pst_status *st, const pst_iov *resp, int n) {
    sync_call *c = arg;
    pthread_mutex_lock(&c->mu);
    if (st && st->code) {
        c->st = *st;
    } else {
        c->resp = pst_iov_flatten(resp, n, &c->len);
        if (c->len > 0 && !c->resp)
            pst_status_set(&c->st, PST_E_EXHAUSTED, "out of memory for a %zu-byte response",
                           c->len);
    }
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int pst_transport_call_sync(pst_transport *t, const char *addr, int method, pst_msg *req,
                            int64_t timeout_ms, int flags, uint8_t **resp, size_t *resp_len,
                            pst_status *st) {
    sync_call c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pst_transport_call(t, addr, method, req, timeout_ms, flags, sync_done, &c);
    pthread_mutex_lock(&c.mu);
    while (!c.done) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    if (c.st.code) {
        free(c.resp);
        if (resp) *resp = NULL;
        if (resp_len) *resp_len = 0;
        return pst_status_set(st, c.st.code, "%s", c.st.msg);
    }
    if (resp) {
        *resp = c.resp;
    } else {
        free(c.resp);
    }
    if (resp_len) *resp_len = c.len;
    return 0;
}

/* ---- call groups ---- */

struct pst_call_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    pst_status first;
    int failed; /* a call failed since the group was made (on_error ran) */
    void (*on_error)(void *arg, const pst_status *st);
    void *on_error_arg;
};

typedef struct group_call {
    pst_call_group *g;
    void (*on_resp)(void *arg, const pst_iov *resp, int n);
    void *arg;
} group_call;

pst_call_group *pst_call_group_new(void) {
    pst_call_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

void pst_call_group_on_error(pst_call_group *g, void (*on_error)(void *arg, const pst_status *st),
                             void *arg) {
    g->on_error = on_error;
    g->on_error_arg = arg;
}

/* Records a failure; the first one runs on_error (outside the lock, before pending drops). */
static void group_fail(pst_call_group *g, const pst_status *st) {
    pthread_mutex_lock(&g->mu);
    int first = !g->failed;
    g->failed = 1;
    if (!g->first.code) g->first = *st;
    pthread_mutex_unlock(&g->mu);
    if (first && g->on_error) g->on_error(g->on_error_arg, st);
}

static void group_done(void *arg, const pst_status *st, const pst_iov *resp, int n) {
    group_call *c = arg;
    pst_call_group *g = c->g;
    if ((!st || !st->code) && c->on_resp) c->on_resp(c->arg, resp, n);
    if (st && st->code) group_fail(g, st);
    pthread_mutex_lock(&g->mu);
    if (--g->pending == 0) pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void pst_call_group_start(pst_call_group *g, pst_transport *t, const char *addr, int method,
                          pst_msg *req, int64_t timeout_ms, int flags,
                          void (*on_resp)(void *arg, const pst_iov *resp, int n), void *arg) {
    group_call *c = malloc(sizeof *c);
    if (!c) {
        pst_status oom = {0};
        pst_status_set(&oom, PST_E_EXHAUSTED, "out of memory starting a call to %s", addr);
        group_fail(g, &oom);
        if (req && req->release) req->release(req->owner);
        return;
    }
    c->g = g;
    c->on_resp = on_resp;
    c->arg = arg;
    pthread_mutex_lock(&g->mu);
    g->pending++;
    pthread_mutex_unlock(&g->mu);
    pst_transport_call(t, addr, method, req, timeout_ms, flags, group_done, c);
}

int pst_call_group_wait(pst_call_group *g, pst_status *st) {
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0) pthread_cond_wait(&g->cv, &g->mu);
    pst_status first = g->first;
    memset(&g->first, 0, sizeof g->first);
    pthread_mutex_unlock(&g->mu);
    if (first.code) return pst_status_set(st, first.code, "%s", first.msg);
    return 0;
}

void pst_call_group_free(pst_call_group *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

/* ---- in-process transport ---- */

typedef struct inproc {
    pst_transport base;
    char addr[128];
    pst_handler_fn handler;
    void *arg;
    int serving;
    int outstanding; /* arrived calls not yet replied to */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} inproc;

struct pst_server_call {
    inproc *server;
    pst_call_done_fn done;
    void *arg;
};

#define INPROC_MAX 64
static pthread_mutex_t inproc_mu = PTHREAD_MUTEX_INITIALIZER;
static inproc *inproc_table[INPROC_MAX];
static int inproc_next_port = 40000;

static int inproc_serve(pst_transport *t, const char *addr, pst_handler_fn h, void *arg,
                        char *bound, size_t bound_len, pst_status *st) {
    inproc *s = (inproc *)t;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return pst_status_set(st, PST_E_INVALID, "address '%s' is not host:port", addr);
    pthread_mutex_lock(&inproc_mu);
    if (strcmp(colon + 1, "0") == 0) {
        snprintf(s->addr, sizeof s->addr, "%.*s:%d", (int)(colon - addr), addr,
                 inproc_next_port++);
    } else {
        snprintf(s->addr, sizeof s->addr, "%s", addr);
    }
    int slot = -1, rc = 0;
    for (int i = 0; i < INPROC_MAX; i++) {
        if (inproc_table[i] && strcmp(inproc_table[i]->addr, s->addr) == 0) {
            rc = pst_status_set(st, PST_E_EXISTS, "address %s is already served", s->addr);
            break;
        }
        if (!inproc_table[i] && slot < 0) slot = i;
    }
    if (!rc && slot < 0) rc = pst_status_set(st, PST_E_EXHAUSTED, "too many in-process servers");
    if (!rc) {
        s->handler = h;
        s->arg = arg;
        s->serving = 1;
        inproc_table[slot] = s;
        snprintf(bound, bound_len, "%s", s->addr);
    }
    pthread_mutex_unlock(&inproc_mu);
    return rc;
}

/* A message's segments as the receiver sees them: the sender's memory, never handed over. */
static int segments_of(const pst_msg *m, pst_iov *v) {
    int n = m ? m->n : 0;
    for (int i = 0; i < n; i++) v[i] = (pst_iov){m->seg[i].base, m->seg[i].len, NULL};
    return n;
}

static void inproc_call(pst_transport *t, const char *addr, int method, pst_msg *req,
                        int64_t timeout_ms, int flags, pst_call_done_fn done, void *arg) {
    (void)timeout_ms;
    (void)flags;
    pst_status st = {0};
    inproc *found = NULL, *s = NULL;
    pthread_mutex_lock(&inproc_mu);
    for (int i = 0; i < INPROC_MAX; i++)
        if (inproc_table[i] && strcmp(inproc_table[i]->addr, addr) == 0) found = inproc_table[i];
    if (found) {
        pthread_mutex_lock(&found->mu);
        if (found->serving) {
            found->outstanding++;
            s = found;
        }
        pthread_mutex_unlock(&found->mu);
    }
    pthread_mutex_unlock(&inproc_mu);
    pst_server_call *c = NULL;
    if (method < 0 || method >= t->n_methods) {
        pst_status_set(&st, PST_E_INVALID, "method %d is not one of this transport's", method);
    } else if (!s) {
        pst_status_set(&st, PST_E_UNAVAILABLE, "task %s is unreachable: nothing serves it", addr);
    } else if (!(c = malloc(sizeof *c))) {
        pst_status_set(&st, PST_E_EXHAUSTED, "out of memory calling task %s", addr);
    }
    if (st.code) {
        if (s) {
            pthread_mutex_lock(&s->mu);
            if (--s->outstanding == 0) pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
        if (req && req->release) req->release(req->owner);
        done(arg, &st, NULL, 0);
        return;
    }
    c->server = s;
    c->done = done;
    c->arg = arg;
    pst_iov v[PST_MSG_MAX_SEGS];
    int n = segments_of(req, v);
    s->handler(s->arg, c, method, n ? v : NULL, n);
    if (req && req->release) req->release(req->owner);
}

static void inproc_reply(pst_transport *t, pst_server_call *c, const pst_status *st,
                         pst_msg *resp) {
    (void)t;
    inproc *s = c->server;
    if (st && st->code) {
        c->done(c->arg, st, NULL, 0);
    } else {
        pst_iov v[PST_MSG_MAX_SEGS];
        int n = segments_of(resp, v);
        c->done(c->arg, NULL, n ? v : NULL, n);
    }
    if (resp && resp->release) resp->release(resp->owner);
    free(c);
    pthread_mutex_lock(&s->mu);
    if (--s->outstanding == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void inproc_stop(pst_transport *t) {
    inproc *s = (inproc *)t;
    pthread_mutex_lock(&inproc_mu);
    for (int i = 0; i < INPROC_MAX; i++)
        if (inproc_table[i] == s) inproc_table[i] = NULL;
    pthread_mutex_unlock(&inproc_mu);
    pthread_mutex_lock(&s->mu);
    s->serving = 0;
    while (s->outstanding > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void inproc_free(pst_transport *t) {
    inproc *s = (inproc *)t;
    inproc_stop(t);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static const pst_transport_ops inproc_ops = {
    .name = "inproc",
    .serve = inproc_serve,
    .call = inproc_call,
    .reply = inproc_reply,
    .stop = inproc_stop,
    .free = inproc_free,
};

pst_transport *pst_transport_inproc_new(const char *const *methods, int n_methods) {
    inproc *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.ops = &inproc_ops;
    s->base.methods = methods;
    s->base.n_methods = n_methods;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return &s->base;
}
