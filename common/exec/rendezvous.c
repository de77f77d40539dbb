#include "rendezvous.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parallel.h"
#include "strmap.h"
#include "clock.h"

typedef struct local_rdv {
    pst_rendezvous base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pst_strmap *table; /* key -> pst_tensor* */
    pst_status aborted;
} local_rdv;

static int local_send(pst_rendezvous *r, const char *key, pst_tensor *t, pst_status *st) {
    local_rdv *l = (local_rdv *)r;
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    if (l->aborted.code) {
        rc = pst_status_set(st, l->aborted.code, "%s", l->aborted.msg);
    } else if (pst_strmap_has(l->table, key)) {
        rc = pst_status_set(st, PST_E_EXISTS, "tensor '%s' was sent twice", key);
    } else {
        pst_strmap_put(l->table, key, pst_tensor_ref(t));
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int local_recv(pst_rendezvous *r, const char *key, int64_t timeout_ms, pst_tensor **out,
                      pst_status *st) {
    local_rdv *l = (local_rdv *)r;
    struct timespec dl;
    pst_clock_deadline_in(&dl, timeout_ms);
    int rc = 0;
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->aborted.code) {
            rc = pst_status_set(st, l->aborted.code, "%s", l->aborted.msg);
            break;
        }
        pst_tensor *t = pst_strmap_del(l->table, key);
        if (t) {
            *out = t;
            break;
        }
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT) {
            rc = pst_status_set(st, PST_E_DEADLINE, "timed out after %lld ms waiting for '%s'",
                                (long long)timeout_ms, key);
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static void local_abort(pst_rendezvous *r, const pst_status *why) {
    local_rdv *l = (local_rdv *)r;
    pthread_mutex_lock(&l->mu);
    if (l->aborted.code == 0) l->aborted = *why;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void pst_rendezvous_local_resume(pst_rendezvous *r) {
    local_rdv *l = (local_rdv *)r;
    pthread_mutex_lock(&l->mu);
    pst_status_clear(&l->aborted);
    pthread_mutex_unlock(&l->mu);
}

static void local_free(pst_rendezvous *r) {
    local_rdv *l = (local_rdv *)r;
    void *v;
    for (size_t it = 0; pst_strmap_next(l->table, &it, NULL, &v);) pst_tensor_unref(v);
    pst_strmap_free(l->table);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

static const pst_rendezvous_ops local_ops = {local_send, local_recv, local_abort, local_free};

pst_rendezvous *pst_rendezvous_local_new(void) {
    local_rdv *l = calloc(1, sizeof *l);
    PST_ASSERT(l != NULL);
    l->base.ops = &local_ops;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->table = pst_strmap_new();
    PST_ASSERT(l->table != NULL);
    return &l->base;
}

void pst_rendezvous_free(pst_rendezvous *r) {
    if (r) r->ops->free(r);
}

size_t pst_rendezvous_local_pending(pst_rendezvous *r) {
    local_rdv *l = (local_rdv *)r;
    pthread_mutex_lock(&l->mu);
    size_t n = pst_strmap_size(l->table);
    pthread_mutex_unlock(&l->mu);
    return n;
}

const char *pst_rendezvous_key(const char *send_device, const char *recv_device,
                               const char *tensor_name, int64_t step_id, char *buf, size_t len) {
    snprintf(buf, len, "%s;%s;%s;%lld", send_device, recv_device, tensor_name, (long long)step_id);
    return buf;
}
