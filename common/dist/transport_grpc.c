/*
 * The gRPC transport (C core API). Client: one channel per peer address (created on first
 * use, kept in a map: any number of peers), calls on a completion queue polled by one thread,
 * completions delivered as callbacks.
 * Server: methods registered by path, `requests_per_method` requests kept posted per method,
 * `server_threads` threads polling the queue and running handlers.
 *
 * Large segments of an outgoing message are wrapped, not copied (grpc_slice_new_with_user_data);
 * the message's release runs once gRPC drops its last reference to them. Received messages are
 * handed to callbacks as gRPC's own slices.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "security.h"
#include "strmap.h"
#include "transport.h"

#define MAX_SERVER_THREADS 8
#define COPY_BELOW 4096 /* segments smaller than this are copied into gRPC's buffers */

enum { TAG_CLIENT = 1, TAG_REQUEST, TAG_REPLY, TAG_SHUTDOWN };

typedef struct channel {
    grpc_channel *ch;
    void **methods; /* registered call handles, one per method */
} channel;

typedef struct gtransport {
    pst_transport base;
    pst_transport_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* client: one channel per peer address, as many as there are peers */
    pst_strmap *channels; /* address -> channel */
    grpc_completion_queue *ccq;
    pthread_t cthread;
    int client_calls; /* in flight */
    /* server */
    grpc_server *server;
    grpc_completion_queue *scq;
    void **server_methods;
    pthread_t sthreads[MAX_SERVER_THREADS];
    int n_sthreads;
    pst_handler_fn handler;
    void *handler_arg;
    int server_calls; /* arrived, not yet fully answered */
    int stopping, shutdown_seen, stopped;
    int shutdown_tag;
    char bound[128];
} gtransport;

/* Releases an outgoing message once every wrapped slice is gone. */
typedef struct msg_ref {
    atomic_int refs;
    void (*release)(void *);
    void *owner;
} msg_ref;

static void msg_ref_drop(void *p) {
    msg_ref *r = p;
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        if (r->release) r->release(r->owner);
        free(r);
    }
}

/* A byte buffer over the message's segments (NULL for an empty message). Takes over the
 * message's release. */
static grpc_byte_buffer *buffer_of(pst_msg *m) {
    if (!m) return grpc_raw_byte_buffer_create(NULL, 0);
    msg_ref *r = malloc(sizeof *r);
    if (!r) {
        /* Out of memory for the bookkeeping: the segments are copied instead of wrapped. */
        grpc_slice slices[PST_MSG_MAX_SEGS];
        int n = 0;
        for (int i = 0; i < m->n && i < PST_MSG_MAX_SEGS; i++)
            if (m->seg[i].len > 0)
                slices[n++] = grpc_slice_from_copied_buffer(m->seg[i].base, m->seg[i].len);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, (size_t)n);
        for (int i = 0; i < n; i++) grpc_slice_unref(slices[i]);
        if (m->release) m->release(m->owner);
        return bb;
    }
    atomic_init(&r->refs, 1);
    r->release = m->release;
    r->owner = m->owner;
    grpc_slice slices[PST_MSG_MAX_SEGS];
    int n = 0;
    for (int i = 0; i < m->n && i < PST_MSG_MAX_SEGS; i++) {
        if (m->seg[i].len == 0) continue;
        if (m->seg[i].len < COPY_BELOW) {
            slices[n++] = grpc_slice_from_copied_buffer(m->seg[i].base, m->seg[i].len);
        } else {
            atomic_fetch_add(&r->refs, 1);
            slices[n++] = grpc_slice_new_with_user_data((void *)m->seg[i].base, m->seg[i].len,
                                                        msg_ref_drop, r);
        }
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, (size_t)n);
    for (int i = 0; i < n; i++) grpc_slice_unref(slices[i]);
    msg_ref_drop(r);
    return bb;
}

static void free_slices(grpc_slice *slices, pst_iov *iov, int n) {
    for (int i = 0; i < n; i++) grpc_slice_unref(slices[i]);
    free(slices);
    free(iov);
}

/* The slices of a received buffer as iovs; *slices must be unref'd by the caller. -1 when out
 * of memory (nothing to free then). */
static int read_buffer(grpc_byte_buffer *bb, pst_iov **iov, grpc_slice **slices) {
    *iov = NULL;
    *slices = NULL;
    if (!bb) return 0;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) return 0;
    int n = 0, cap = 0, oom = 0;
    grpc_slice s;
    while (grpc_byte_buffer_reader_next(&rd, &s)) {
        if (n == cap && !oom) {
            cap = cap ? cap * 2 : 16;
            pst_iov *ni = realloc(*iov, (size_t)cap * sizeof *ni);
            if (ni) *iov = ni;
            grpc_slice *ns = ni ? realloc(*slices, (size_t)cap * sizeof *ns) : NULL;
            if (ns) *slices = ns;
            oom = !ni || !ns;
        }
        if (oom) {
            grpc_slice_unref(s);
            continue;
        }
        (*slices)[n++] = s;
    }
    grpc_byte_buffer_reader_destroy(&rd);
    if (oom) {
        free_slices(*slices, *iov, n);
        *iov = NULL;
        *slices = NULL;
        return -1;
    }
    /* Only now: small slices keep their bytes inline, inside the slice struct itself, so the
     * pointers must be taken from the array (after its last realloc). */
    for (int i = 0; i < n; i++) {
        (*iov)[i].base = GRPC_SLICE_START_PTR((*slices)[i]);
        (*iov)[i].len = GRPC_SLICE_LENGTH((*slices)[i]);
        (*iov)[i].own = NULL; /* slices are gRPC's: never handed over */
    }
    return n;
}

static int code_to_grpc(int code) {
    switch (code) {
    case 0: return GRPC_STATUS_OK;
    case PST_E_CANCELLED: return GRPC_STATUS_CANCELLED;
    case PST_E_INVALID: return GRPC_STATUS_INVALID_ARGUMENT;
    case PST_E_DEADLINE: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case PST_E_NOT_FOUND: return GRPC_STATUS_NOT_FOUND;
    case PST_E_EXISTS: return GRPC_STATUS_ALREADY_EXISTS;
    case PST_E_PERMISSION: return GRPC_STATUS_PERMISSION_DENIED;
    case PST_E_EXHAUSTED: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case PST_E_PRECONDITION: return GRPC_STATUS_FAILED_PRECONDITION;
    case PST_E_ABORTED: return GRPC_STATUS_ABORTED;
    case PST_E_OUT_OF_RANGE: return GRPC_STATUS_OUT_OF_RANGE;
    case PST_E_UNIMPLEMENTED: return GRPC_STATUS_UNIMPLEMENTED;
    case PST_E_UNAVAILABLE: return GRPC_STATUS_UNAVAILABLE;
    case PST_E_DATA_LOSS: return GRPC_STATUS_DATA_LOSS;
    case PST_E_UNAUTHENTICATED: return GRPC_STATUS_UNAUTHENTICATED;
    default: return GRPC_STATUS_INTERNAL;
    }
}

static int code_from_grpc(grpc_status_code c) {
    static const int map[] = {
        [GRPC_STATUS_OK] = 0,
        [GRPC_STATUS_CANCELLED] = PST_E_CANCELLED,
        [GRPC_STATUS_UNKNOWN] = PST_E_UNKNOWN,
        [GRPC_STATUS_INVALID_ARGUMENT] = PST_E_INVALID,
        [GRPC_STATUS_DEADLINE_EXCEEDED] = PST_E_DEADLINE,
        [GRPC_STATUS_NOT_FOUND] = PST_E_NOT_FOUND,
        [GRPC_STATUS_ALREADY_EXISTS] = PST_E_EXISTS,
        [GRPC_STATUS_PERMISSION_DENIED] = PST_E_PERMISSION,
        [GRPC_STATUS_RESOURCE_EXHAUSTED] = PST_E_EXHAUSTED,
        [GRPC_STATUS_FAILED_PRECONDITION] = PST_E_PRECONDITION,
        [GRPC_STATUS_ABORTED] = PST_E_ABORTED,
        [GRPC_STATUS_OUT_OF_RANGE] = PST_E_OUT_OF_RANGE,
        [GRPC_STATUS_UNIMPLEMENTED] = PST_E_UNIMPLEMENTED,
        [GRPC_STATUS_INTERNAL] = PST_E_INTERNAL,
        [GRPC_STATUS_UNAVAILABLE] = PST_E_UNAVAILABLE,
        [GRPC_STATUS_DATA_LOSS] = PST_E_DATA_LOSS,
        [GRPC_STATUS_UNAUTHENTICATED] = PST_E_UNAUTHENTICATED,
    };
    if ((int)c < 0 || (size_t)c >= sizeof map / sizeof map[0]) return PST_E_UNKNOWN;
    return map[c];
}

static gpr_timespec deadline_after(int64_t ms) {
    if (ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Channel (and server) arguments: no message size limit, no proxy, keepalive, fast reconnects. */
static grpc_channel_args make_args(const pst_transport_opts *o, grpc_arg *a, int server) {
    int n = 0;
#define ARG_INT(k, v)                                                                           \
    do {                                                                                       \
        a[n].type = GRPC_ARG_INTEGER;                                                          \
        a[n].key = (char *)(k);                                                                \
        a[n].value.integer = (int)(v);                                                         \
        n++;                                                                                   \
    } while (0)
    ARG_INT(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1);
    ARG_INT(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1);
    ARG_INT(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_timeout_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    ARG_INT(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    if (server) {
        ARG_INT(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
        ARG_INT(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
        ARG_INT(GRPC_ARG_ALLOW_REUSEPORT, 0); /* a second server on a taken port must fail */
    } else {
        ARG_INT(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
        ARG_INT(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
        /* gRPC core reads this as the minimum time one connection attempt (TCP, then the TLS
         * handshake) is given: at 100 ms a loaded machine's TLS handshakes were cut off
         * ("handshaker shutdown"); attempts still start 0.1 to 1 s apart. */
        ARG_INT(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
        ARG_INT(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    }
    ARG_INT(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
    ARG_INT(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
    ARG_INT(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    ARG_INT(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10);
    ARG_INT(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 4 << 20);
    ARG_INT(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, 4 << 20);
#undef ARG_INT
    return (grpc_channel_args){.num_args = (size_t)n, .args = a};
}

/* ---- credentials ---- */

/* Client side of the job token: every call's metadata gets it (answered inline). */
static int token_get_metadata(void *state, grpc_auth_metadata_context ctx,
                              grpc_credentials_plugin_metadata_cb cb, void *user_data,
                              grpc_metadata creds_md[GRPC_METADATA_CREDENTIALS_PLUGIN_SYNC_MAX],
                              size_t *num_creds_md, grpc_status_code *status,
                              const char **error_details) {
    (void)ctx;
    (void)cb;
    (void)user_data;
    const pst_security *sec = state;
    creds_md[0].key = grpc_slice_from_static_string(PST_TOKEN_METADATA_KEY);
    creds_md[0].value = grpc_slice_from_copied_string(pst_security_token(sec));
    *num_creds_md = 1;
    *status = GRPC_STATUS_OK;
    *error_details = NULL;
    return 1;
}

static char *token_debug_string(void *state) {
    (void)state;
    return gpr_strdup("pstrain job token");
}

/* Channel credentials: TLS with this task's certificate (or cleartext), composed with the
 * token when there is one. The caller releases them. */
static grpc_channel_credentials *channel_creds(const gtransport *t) {
    const pst_security *sec = t->o.security;
    grpc_channel_credentials *chan;
    if (pst_security_tls(sec)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = pst_security_key_pem(sec),
                                           .cert_chain = pst_security_cert_pem(sec)};
        chan = grpc_ssl_credentials_create(pst_security_ca_pem(sec), &pair, NULL, NULL);
    } else {
        chan = grpc_insecure_credentials_create();
    }
    if (!pst_security_token(sec)) return chan;
    grpc_metadata_credentials_plugin plugin = {.get_metadata = token_get_metadata,
                                               .debug_string = token_debug_string,
                                               .destroy = NULL,
                                               .state = (void *)sec,
                                               .type = "pstrain_token"};
    /* Cleartext is allowed only where security.h's rule let the task start (loopback, or the
     * user's --insecure), so the token may ride a channel without privacy. */
    grpc_call_credentials *call = grpc_metadata_credentials_create_from_plugin(
        plugin, pst_security_tls(sec) ? GRPC_PRIVACY_AND_INTEGRITY : GRPC_SECURITY_NONE, NULL);
    grpc_channel_credentials *both = grpc_composite_channel_credentials_create(chan, call, NULL);
    grpc_channel_credentials_release(chan);
    grpc_call_credentials_release(call);
    return both;
}

/* Server side of the token: runs before any handler; a call without the token, or with a wrong
 * one, ends with UNAUTHENTICATED and never reaches the task. The token is consumed, so
 * handlers never see it. */
static void token_process(void *state, grpc_auth_context *ctx, const grpc_metadata *md,
                          size_t num_md, grpc_process_auth_metadata_done_cb cb, void *user_data) {
    (void)ctx;
    const pst_security *sec = state;
    for (size_t i = 0; i < num_md; i++) {
        if (!grpc_slice_str_cmp(md[i].key, PST_TOKEN_METADATA_KEY)) {
            const char *v = (const char *)GRPC_SLICE_START_PTR(md[i].value);
            if (pst_security_token_matches(sec, v, GRPC_SLICE_LENGTH(md[i].value))) {
                cb(user_data, &md[i], 1, NULL, 0, GRPC_STATUS_OK, NULL);
                return;
            }
            cb(user_data, NULL, 0, NULL, 0, GRPC_STATUS_UNAUTHENTICATED,
               "wrong job token: this task belongs to another job");
            return;
        }
    }
    cb(user_data, NULL, 0, NULL, 0, GRPC_STATUS_UNAUTHENTICATED,
       "no job token: only members of the job may call this task");
}

static grpc_server_credentials *server_creds(const gtransport *t) {
    const pst_security *sec = t->o.security;
    grpc_server_credentials *creds;
    if (pst_security_tls(sec)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = pst_security_key_pem(sec),
                                           .cert_chain = pst_security_cert_pem(sec)};
        creds = grpc_ssl_server_credentials_create_ex(
            pst_security_ca_pem(sec), &pair, 1,
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    if (pst_security_token(sec)) {
        grpc_auth_metadata_processor p = {.process = token_process, .destroy = NULL,
                                          .state = (void *)sec};
        grpc_server_credentials_set_auth_metadata_processor(creds, p);
    }
    return creds;
}

/* ---- client ---- */

typedef struct ccall {
    int kind;
    gtransport *t;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code status;
    grpc_slice details;
    pst_call_done_fn done;
    void *arg;
    int method;
    int64_t timeout_ms;
    double deadline; /* pst_clock_now() at which the call's own deadline passes (0: none) */
    char addr[128];
} ccall;

static void channel_free(channel *c) {
    if (!c) return;
    if (c->ch) grpc_channel_destroy(c->ch);
    free(c->methods);
    free(c);
}

/* The channel to addr, made on first use; channels stay until the transport is freed. */
static channel *get_channel(gtransport *t, const char *addr, pst_status *st) {
    pthread_mutex_lock(&t->mu);
    channel *c = pst_strmap_get(t->channels, addr);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c) c->methods = calloc((size_t)t->base.n_methods, sizeof *c->methods);
        if (c && c->methods) {
            grpc_arg a[24];
            grpc_channel_args args = make_args(&t->o, a, 0);
            grpc_channel_credentials *creds = channel_creds(t);
            c->ch = grpc_channel_create(addr, creds, &args);
            grpc_channel_credentials_release(creds);
            for (int m = 0; m < t->base.n_methods; m++)
                c->methods[m] = grpc_channel_register_call(c->ch, t->base.methods[m], NULL, NULL);
        }
        if (!c || !c->methods || !c->ch || pst_strmap_put(t->channels, addr, c) < 0) {
            channel_free(c);
            c = NULL;
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a channel to task %s", addr);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return c;
}

static void client_finish(ccall *c, const pst_status *err) {
    gtransport *t = c->t;
    if (err) {
        c->done(c->arg, err, NULL, 0);
    } else if (c->status != GRPC_STATUS_OK) {
        pst_status st = {0};
        char *details = grpc_slice_to_c_string(c->details);
        const char *method = c->t->base.methods[c->method];
        switch (c->status) {
        case GRPC_STATUS_UNAVAILABLE:
            pst_status_set(&st, PST_E_UNAVAILABLE, "task %s is unreachable (%s): %s", c->addr,
                           method, details);
            break;
        case GRPC_STATUS_DEADLINE_EXCEEDED:
            /* this call's deadline, or an earlier one: a wait on the peer timed out (its
             * message says which) */
            if ((c->deadline > 0 && pst_clock_now() >= c->deadline) || !details[0])
                pst_status_set(&st, PST_E_DEADLINE, "task %s did not answer %s within %lld ms",
                               c->addr, method, (long long)c->timeout_ms);
            else
                pst_status_set(&st, PST_E_DEADLINE, "task %s: %s", c->addr, details);
            break;
        default:
            pst_status_set(&st, code_from_grpc(c->status), "task %s: %s", c->addr, details);
        }
        gpr_free(details);
        c->done(c->arg, &st, NULL, 0);
    } else {
        pst_iov *iov;
        grpc_slice *slices;
        int n = read_buffer(c->recv_bb, &iov, &slices);
        if (n < 0) {
            pst_status st = {0};
            pst_status_set(&st, PST_E_EXHAUSTED, "out of memory reading the answer of task %s",
                           c->addr);
            c->done(c->arg, &st, NULL, 0);
        } else {
            c->done(c->arg, NULL, iov, n);
            free_slices(slices, iov, n);
        }
    }
    if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
    if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
    grpc_metadata_array_destroy(&c->init_md);
    grpc_metadata_array_destroy(&c->trail_md);
    grpc_slice_unref(c->details);
    if (c->call) grpc_call_unref(c->call);
    free(c);
    pthread_mutex_lock(&t->mu);
    if (--t->client_calls == 0) pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *client_loop(void *arg) {
    gtransport *t = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(t->ccq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        client_finish(ev.tag, NULL);
    }
    return NULL;
}

static void g_call(pst_transport *base, const char *addr, int method, pst_msg *req,
                   int64_t timeout_ms, int flags, pst_call_done_fn done, void *arg) {
    gtransport *t = (gtransport *)base;
    pst_status st = {0};
    ccall *c = calloc(1, sizeof *c);
    if (!c) {
        if (req && req->release) req->release(req->owner);
        pst_status_set(&st, PST_E_EXHAUSTED, "out of memory calling task %s", addr);
        done(arg, &st, NULL, 0);
        return;
    }
    c->kind = TAG_CLIENT;
    c->t = t;
    c->done = done;
    c->arg = arg;
    c->method = method;
    c->timeout_ms = timeout_ms;
    c->deadline = timeout_ms > 0 ? pst_clock_now() + (double)timeout_ms / 1000.0 : 0;
    c->details = grpc_empty_slice();
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    grpc_metadata_array_init(&c->init_md);
    grpc_metadata_array_init(&c->trail_md);
    pthread_mutex_lock(&t->mu);
    t->client_calls++;
    pthread_mutex_unlock(&t->mu);
    c->send_bb = buffer_of(req); /* takes over req's release */
    if (method < 0 || method >= base->n_methods) {
        pst_status_set(&st, PST_E_INVALID, "method %d is not one of this transport's", method);
        client_finish(c, &st);
        return;
    }
    channel *ch = get_channel(t, addr, &st);
    if (!ch) {
        client_finish(c, &st);
        return;
    }
    c->call = grpc_channel_create_registered_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, t->ccq,
                                                  ch->methods[method], deadline_after(timeout_ms),
                                                  NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = (flags & PST_CALL_WAIT_FOR_READY) ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trail_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 6, c, NULL);
    if (e != GRPC_CALL_OK) {
        pst_status_set(&st, PST_E_INTERNAL, "task %s: cannot start %s (gRPC call error %d)",
                       addr, base->methods[method], (int)e);
        client_finish(c, &st);
    }
}

/* ---- server ---- */

struct pst_server_call {
    int kind;
    int method;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    /* reply */
    grpc_byte_buffer *send_bb;
    grpc_slice details;
    int cancelled;
};

/* Keeps one more request of method posted. Out of memory, the method is served by the requests
 * still posted (fewer at once), never by none while others are posted. */
static void post_request(gtransport *t, int method) {
    pst_server_call *c = calloc(1, sizeof *c);
    if (!c) return;
    c->kind = TAG_REQUEST;
    c->method = method;
    grpc_metadata_array_init(&c->md);
    grpc_call_error e = grpc_server_request_registered_call(
        t->server, t->server_methods[method], &c->call, &c->deadline, &c->md, &c->payload, t->scq,
        t->scq, c);
    if (e != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&c->md);
        free(c);
    }
}

static void server_call_free(pst_server_call *c) {
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->send_bb) grpc_byte_buffer_destroy(c->send_bb);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call) grpc_call_unref(c->call);
    free(c);
}

static void g_reply(pst_transport *base, pst_server_call *c, const pst_status *st, pst_msg *resp);

static void *server_loop(void *arg) {
    gtransport *t = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(t->scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        if (ev.tag == &t->shutdown_tag) {
            pthread_mutex_lock(&t->mu);
            t->shutdown_seen = 1;
            pthread_cond_broadcast(&t->cv);
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        pst_server_call *c = ev.tag;
        if (c->kind == TAG_REPLY) {
            server_call_free(c);
            pthread_mutex_lock(&t->mu);
            if (--t->server_calls == 0) pthread_cond_broadcast(&t->cv);
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        /* an arrived request */
        pthread_mutex_lock(&t->mu);
        int stopping = t->stopping;
        if (ev.success) t->server_calls++;
        pthread_mutex_unlock(&t->mu);
        if (!ev.success) {
            c->details = grpc_empty_slice();
            server_call_free(c);
            continue;
        }
        if (!stopping) post_request(t, c->method);
        c->details = grpc_empty_slice();
        pst_iov *iov;
        grpc_slice *slices;
        int n = read_buffer(c->payload, &iov, &slices);
        if (n < 0) {
            pst_status st = {0};
            pst_status_set(&st, PST_E_EXHAUSTED, "%s: out of memory reading a request", t->bound);
            g_reply(&t->base, c, &st, NULL);
            continue;
        }
        t->handler(t->handler_arg, c, c->method, iov, n);
        free_slices(slices, iov, n);
    }
    return NULL;
}

static void g_peer(pst_transport *base, pst_server_call *c, char *out, size_t len) {
    (void)base;
    char *p = c->call ? grpc_call_get_peer(c->call) : NULL;
    snprintf(out, len, "%s", p ? p : "?");
    gpr_free(p);
}

static void g_reply(pst_transport *base, pst_server_call *c, const pst_status *st, pst_msg *resp) {
    gtransport *t = (gtransport *)base;
    (void)t;
    if (c->payload) {
        grpc_byte_buffer_destroy(c->payload);
        c->payload = NULL;
    }
    int ok = !st || st->code == 0;
    c->kind = TAG_REPLY;
    if (ok) {
        c->send_bb = buffer_of(resp);
    } else {
        if (resp && resp->release) resp->release(resp->owner);
        grpc_slice_unref(c->details);
        c->details = grpc_slice_from_copied_string(st->msg);
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    int n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ok) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->send_bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = ok ? GRPC_STATUS_OK : code_to_grpc(st->code);
    ops[n++].data.send_status_from_server.status_details = ok ? NULL : &c->details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, (size_t)n, c, NULL);
    if (e != GRPC_CALL_OK) {
        /* The call is unusable: nothing will complete, so account for it here. */
        server_call_free(c);
        pthread_mutex_lock(&t->mu);
        if (--t->server_calls == 0) pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
}

/* Undoes a server no thread polls (never started, or shut down with its queue drained). */
static void server_abandon(gtransport *t) {
    grpc_server_destroy(t->server);
    t->server = NULL;
    grpc_completion_queue_shutdown(t->scq);
    while (grpc_completion_queue_next(t->scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(t->scq);
    t->scq = NULL;
    free(t->server_methods);
    t->server_methods = NULL;
}

static int g_serve(pst_transport *base, const char *addr, pst_handler_fn h, void *arg,
                   char *bound, size_t bound_len, pst_status *st) {
    gtransport *t = (gtransport *)base;
    if (t->server) return pst_status_set(st, PST_E_EXISTS, "this transport already serves %s", t->bound);
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || colon[1] == 0)
        return pst_status_set(st, PST_E_INVALID, "address '%s' is not host:port", addr);
    grpc_arg a[24];
    grpc_channel_args args = make_args(&t->o, a, 1);
    t->server = grpc_server_create(&args, NULL);
    t->scq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(t->server, t->scq, NULL);
    t->server_methods = calloc((size_t)base->n_methods, sizeof *t->server_methods);
    if (!t->server_methods) {
        server_abandon(t);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory serving %s", addr);
    }
    for (int m = 0; m < base->n_methods; m++)
        t->server_methods[m] = grpc_server_register_method(
            t->server, base->methods[m], NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_server_credentials *creds = server_creds(t);
    int port = grpc_server_add_http2_port(t->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        server_abandon(t);
        return pst_status_set(st, PST_E_UNAVAILABLE,
                              "cannot listen on %s (address in use or not local?)", addr);
    }
    snprintf(t->bound, sizeof t->bound, "%.*s:%d", (int)(colon - addr), addr, port);
    t->handler = h;
    t->handler_arg = arg;
    grpc_server_start(t->server);
    for (int m = 0; m < base->n_methods; m++)
        for (int i = 0; i < t->o.requests_per_method; i++) post_request(t, m);
    t->n_sthreads = 0;
    for (int i = 0; i < t->o.server_threads; i++) {
        if (pthread_create(&t->sthreads[i], NULL, server_loop, t) != 0) break;
        t->n_sthreads++;
    }
    if (t->n_sthreads == 0) {
        /* Nobody polls the queue: stop the server here, taking back the posted requests. */
        grpc_server_shutdown_and_notify(t->server, t->scq, &t->shutdown_tag);
        grpc_server_cancel_all_calls(t->server);
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(t->scq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                       NULL);
            if (ev.type != GRPC_OP_COMPLETE) continue;
            if (ev.tag == &t->shutdown_tag) break;
            pst_server_call *c = ev.tag;
            c->details = grpc_empty_slice();
            server_call_free(c);
        }
        server_abandon(t);
        return pst_status_set(st, PST_E_EXHAUSTED, "cannot start a thread serving %s", addr);
    }
    if (bound) snprintf(bound, bound_len, "%s", t->bound);
    return 0;
}

static void g_stop(pst_transport *base) {
    gtransport *t = (gtransport *)base;
    if (!t->server || t->stopped) return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_mutex_unlock(&t->mu);
    grpc_server_shutdown_and_notify(t->server, t->scq, &t->shutdown_tag);
    grpc_server_cancel_all_calls(t->server);
    pthread_mutex_lock(&t->mu);
    while (!t->shutdown_seen || t->server_calls > 0) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    grpc_completion_queue_shutdown(t->scq);
    for (int i = 0; i < t->n_sthreads; i++) pthread_join(t->sthreads[i], NULL);
    grpc_server_destroy(t->server);
    grpc_completion_queue_destroy(t->scq);
    free(t->server_methods);
    t->stopped = 1;
}

static void g_free(pst_transport *base) {
    gtransport *t = (gtransport *)base;
    g_stop(base);
    pthread_mutex_lock(&t->mu);
    while (t->client_calls > 0) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    const char *k;
    void *v;
    for (size_t it = 0; pst_strmap_next(t->channels, &it, &k, &v);) channel_free(v);
    pst_strmap_free(t->channels);
    grpc_completion_queue_shutdown(t->ccq);
    pthread_join(t->cthread, NULL);
    grpc_completion_queue_destroy(t->ccq);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    grpc_shutdown();
}

static const pst_transport_ops grpc_ops = {
    .name = "grpc",
    .serve = g_serve,
    .call = g_call,
    .reply = g_reply,
    .stop = g_stop,
    .free = g_free,
    .peer = g_peer,
};

pst_transport *pst_transport_grpc_new(const char *const *methods, int n_methods,
                                      const pst_transport_opts *o, pst_status *st) {
    gtransport *t = calloc(1, sizeof *t);
    if (!t) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    t->base.ops = &grpc_ops;
    t->base.methods = methods;
    t->base.n_methods = n_methods;
    if (!(t->channels = pst_strmap_new())) {
        free(t);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    if (o) t->o = *o;
    /* A peer that stops answering (hung, its machine gone) kills its connection, and fails
     * the calls on it, within keepalive + timeout: about 6 s. */
    if (t->o.keepalive_ms <= 0) t->o.keepalive_ms = 3000;
    if (t->o.keepalive_timeout_ms <= 0) t->o.keepalive_timeout_ms = 3000;
    if (t->o.server_threads <= 0) t->o.server_threads = 2;
    if (t->o.server_threads > MAX_SERVER_THREADS) t->o.server_threads = MAX_SERVER_THREADS;
    if (t->o.requests_per_method <= 0) t->o.requests_per_method = 16;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    grpc_init();
    t->ccq = grpc_completion_queue_create_for_next(NULL);
    if (pthread_create(&t->cthread, NULL, client_loop, t) != 0) {
        grpc_completion_queue_shutdown(t->ccq);
        while (grpc_completion_queue_next(t->ccq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(t->ccq);
        pst_strmap_free(t->channels);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t);
        grpc_shutdown();
        pst_status_set(st, PST_E_EXHAUSTED, "cannot start the gRPC client thread");
        return NULL;
    }
    return &t->base;
}
