/* Transport: the same behaviours over the in-process and the gRPC implementation. Check forks
 * each test, and every test creates its own transports (gRPC is initialized inside the test). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LSAN_DISABLE() __lsan_disable()
#define LSAN_ENABLE() __lsan_enable()
#else
#define LSAN_DISABLE() ((void)0)
#define LSAN_ENABLE() ((void)0)
#endif

#include "security.h"
#include "testutil.h"
#include "tensor.h"
#include "transport.h"
#include "transport_mpi.h"

static const char *methods[] = {"/pstrain.Test/Echo", "/pstrain.Test/Fail", "/pstrain.Test/Hang",
                                "/pstrain.Test/Take"};
enum { ECHO, FAIL, HANG, TAKE };

typedef struct server_ctx {
    pst_transport *t;
    pthread_mutex_t mu;
    pst_server_call *hung;
    int calls;
} server_ctx;

static void free_buf(void *p) { free(p); }

static void handler(void *arg, pst_server_call *call, int method, const pst_iov *req, int n) {
    server_ctx *s = arg;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    pthread_mutex_unlock(&s->mu);
    if (method == ECHO) {
        size_t len;
        uint8_t *copy = pst_iov_flatten(req, n, &len);
        pst_msg m = pst_msg_of(copy, len);
        m.release = free_buf;
        m.owner = copy;
        pst_transport_reply(s->t, call, NULL, &m);
    } else if (method == FAIL) {
        pst_status st = {0};
        if (n > 0 && pst_iov_total(req, n) > 0) /* a wait on this task's side timed out */
            pst_status_set(&st, PST_E_DEADLINE, "waited 100 ms for the gradients of 2 replicas");
        else
            pst_status_set(&st, PST_E_NOT_FOUND, "variable 'w' is not on this task");
        pst_transport_reply(s->t, call, &st, NULL);
    } else if (method == TAKE) {
        /* Keeps the last segment's block when the transport offers it (pst_iov.own) and
         * answers "taken" or "copied", then the bytes' sum, checked against the request. */
        char out[64];
        uint64_t sum = 0;
        const pst_iov *last = n > 0 ? &req[n - 1] : NULL;
        void *block = last ? pst_iov_take(last) : NULL;
        if (block) {
            ck_assert_ptr_eq(block, last->base);
            ck_assert_uint_eq((uintptr_t)block % 64, 0);
            ck_assert_ptr_null(pst_iov_take(last)); /* only once */
        }
        uint64_t at = 0; /* the byte's place in the whole message */
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < req[i].len; k++) sum += ((const uint8_t *)req[i].base)[k] * ++at;
        int l = snprintf(out, sizeof out, "%s %llu", block ? "taken" : "copied",
                         (unsigned long long)sum);
        pst_aligned_free(block); /* the handler owns it now */
        uint8_t *copy = malloc((size_t)l);
        memcpy(copy, out, (size_t)l);
        pst_msg m = pst_msg_of(copy, (size_t)l);
        m.release = free_buf;
        m.owner = copy;
        pst_transport_reply(s->t, call, NULL, &m);
    } else {
        pthread_mutex_lock(&s->mu);
        s->hung = call; /* answered only when the test says so */
        pthread_mutex_unlock(&s->mu);
    }
}

static pst_transport *make(int grpc) {
    pst_status st = {0};
    pst_transport *t = grpc ? pst_transport_grpc_new(methods, 4, NULL, &st)
                            : pst_transport_inproc_new(methods, 4);
    ck_assert_msg(t != NULL, "%s", st.msg);
    return t;
}

static void start(server_ctx *s, int grpc, char *bound, size_t len) {
    pst_status st = {0};
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->t = make(grpc);
    ck_assert_msg(pst_transport_serve(s->t, "127.0.0.1:0", handler, s, bound, len, &st) == 0,
                  "%s", st.msg);
    ck_assert_str_ne(bound, "127.0.0.1:0");
}

static void released(void *p) { *(int *)p += 1; }

/* A 24 MiB message (above gRPC's default 4 MiB limit) of several segments comes back intact,
 * and the request's release runs exactly once. */
static void echo_large(int grpc) {
    server_ctx s;
    char addr[128];
    start(&s, grpc, addr, sizeof addr);
    pst_transport *c = make(grpc);
    size_t big = 24u << 20;
    uint8_t *a = malloc(big), hdr[100];
    for (size_t i = 0; i < big; i++) a[i] = (uint8_t)(i * 7 + (i >> 13));
    for (int i = 0; i < 100; i++) hdr[i] = (uint8_t)i;
    int rel = 0;
    pst_msg m = {.n = 2, .seg = {{hdr, sizeof hdr, NULL}, {a, big, NULL}}, .release = released, .owner = &rel};
    uint8_t *resp = NULL;
    size_t len = 0;
    pst_status st = {0};
    ck_assert_msg(pst_transport_call_sync(c, addr, ECHO, &m, 30000, 0, &resp, &len, &st) == 0,
                  "%s", st.msg);
    ck_assert_uint_eq(len, big + 100);
    ck_assert(memcmp(resp, hdr, 100) == 0);
    ck_assert(memcmp(resp + 100, a, big) == 0);
    ck_assert_int_eq(rel, 1);
    free(resp);
    /* an empty request gets an empty answer */
    ck_assert(pst_transport_call_sync(c, addr, ECHO, NULL, 5000, 0, &resp, &len, &st) == 0);
    ck_assert_uint_eq(len, 0);
    free(resp);
    pst_transport_free(c);
    pst_transport_free(s.t);
    free(a);
}
START_TEST(test_inproc_echo_large) { echo_large(0); }
END_TEST
START_TEST(test_grpc_echo_large) { echo_large(1); }
END_TEST

/* A handler's error reaches the caller with its code and message, naming the task. */
static void error_passes(int grpc) {
    server_ctx s;
    char addr[128];
    start(&s, grpc, addr, sizeof addr);
    pst_transport *c = make(grpc);
    pst_status st = {0};
    int rc = pst_transport_call_sync(c, addr, FAIL, NULL, 5000, 0, NULL, NULL, &st);
    ck_assert_int_eq(rc, PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "variable 'w' is not on this task"));
    if (grpc) ck_assert_ptr_nonnull(strstr(st.msg, addr));
    /* a handler's own deadline error keeps its message: not the caller's deadline */
    uint8_t one = 1;
    pst_msg m = pst_msg_of(&one, 1);
    memset(&st, 0, sizeof st);
    rc = pst_transport_call_sync(c, addr, FAIL, &m, 5000, 0, NULL, NULL, &st);
    ck_assert_int_eq(rc, PST_E_DEADLINE);
    ck_assert_msg(strstr(st.msg, "waited 100 ms for the gradients") != NULL, "%s", st.msg);
    ck_assert_msg(strstr(st.msg, "did not answer") == NULL, "%s", st.msg);
    pst_transport_free(c);
    pst_transport_free(s.t);
}
START_TEST(test_inproc_error) { error_passes(0); }
END_TEST
START_TEST(test_grpc_error) { error_passes(1); }
END_TEST

/* Many concurrent calls in one group all complete. */
static int sum_ok;
static void add_resp(void *arg, const pst_iov *v, int n) {
    (void)arg;
    __atomic_add_fetch(&sum_ok, (int)pst_iov_total(v, n), __ATOMIC_SEQ_CST);
}
static void group_many(int grpc) {
    server_ctx s;
    char addr[128];
    start(&s, grpc, addr, sizeof addr);
    pst_transport *c = make(grpc);
    pst_call_group *g = pst_call_group_new();
    static uint8_t buf[64][5000];
    sum_ok = 0;
    for (int i = 0; i < 64; i++) {
        pst_msg m = pst_msg_of(buf[i], (size_t)(i + 1) * 50);
        pst_call_group_start(g, c, addr, ECHO, &m, 10000, 0, add_resp, NULL);
    }
    pst_status st = {0};
    ck_assert_msg(pst_call_group_wait(g, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(sum_ok, 50 * 64 * 65 / 2);
    /* one failing call fails the group with its message */
    pst_call_group_start(g, c, addr, FAIL, NULL, 10000, 0, NULL, NULL);
    pst_call_group_start(g, c, addr, ECHO, NULL, 10000, 0, NULL, NULL);
    ck_assert_int_eq(pst_call_group_wait(g, &st), PST_E_NOT_FOUND);
    pst_call_group_free(g);
    pst_transport_free(c);
    pst_transport_free(s.t);
}
START_TEST(test_inproc_group) { group_many(0); }
END_TEST
START_TEST(test_grpc_group) { group_many(1); }
END_TEST

/* Nothing listens: the error names the address, at once without WAIT_FOR_READY and after the
 * deadline with it. */
START_TEST(test_grpc_unreachable) {
    pst_transport *c = make(1);
    pst_status st = {0};
    int rc = pst_transport_call_sync(c, "127.0.0.1:1", ECHO, NULL, 3000, 0, NULL, NULL, &st);
    ck_assert_int_eq(rc, PST_E_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(st.msg, "127.0.0.1:1"));
    memset(&st, 0, sizeof st);
    rc = pst_transport_call_sync(c, "127.0.0.1:1", ECHO, NULL, 500, PST_CALL_WAIT_FOR_READY, NULL,
                                 NULL, &st);
    ck_assert_int_eq(rc, PST_E_DEADLINE);
    ck_assert_ptr_nonnull(strstr(st.msg, "127.0.0.1:1"));
    ck_assert_ptr_nonnull(strstr(st.msg, "500 ms"));
    pst_transport_free(c);
}
END_TEST

START_TEST(test_inproc_unreachable) {
    pst_transport *c = make(0);
    pst_status st = {0};
    int rc = pst_transport_call_sync(c, "127.0.0.1:7", ECHO, NULL, 500, 0, NULL, NULL, &st);
    ck_assert_int_eq(rc, PST_E_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(st.msg, "127.0.0.1:7"));
    pst_transport_free(c);
}
END_TEST

/* A handler that never answers: the caller's deadline fires and names the method; stopping the
 * server afterwards completes (the hung call is answered by the server's owner). */
START_TEST(test_grpc_deadline) {
    server_ctx s;
    char addr[128];
    start(&s, 1, addr, sizeof addr);
    pst_transport *c = make(1);
    pst_status st = {0};
    int rc = pst_transport_call_sync(c, addr, HANG, NULL, 300, 0, NULL, NULL, &st);
    ck_assert_int_eq(rc, PST_E_DEADLINE);
    ck_assert_ptr_nonnull(strstr(st.msg, "/pstrain.Test/Hang"));
    pthread_mutex_lock(&s.mu);
    pst_server_call *hung = s.hung;
    pthread_mutex_unlock(&s.mu);
    ck_assert_ptr_nonnull(hung);
    pst_status why = {0};
    pst_status_set(&why, PST_E_CANCELLED, "stopping");
    pst_transport_reply(s.t, hung, &why, NULL);
    pst_transport_free(c);
    pst_transport_free(s.t);
}
END_TEST

/* A server that appears after the client started calling is reached (WAIT_FOR_READY). The
 * port is held by a bound, not listening, socket (connections to it are refused) until the
 * server takes it, so no other process can take it meanwhile. */
static int hold_fd = -1;
static void *late_server(void *arg) {
    server_ctx *s = arg;
    usleep(700 * 1000);
    pst_status st = {0};
    char bound[128];
    const char *addr = (const char *)s->hung; /* the address to take, smuggled in */
    s->hung = NULL;
    close(hold_fd);
    ck_assert_msg(pst_transport_serve(s->t, addr, handler, s, bound, sizeof bound, &st) == 0, "%s",
                  st.msg);
    return NULL;
}
START_TEST(test_grpc_wait_for_ready) {
    hold_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(hold_fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(hold_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(hold_fd, (struct sockaddr *)&sa, &sl), 0);
    char addr[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    server_ctx s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    s.t = make(1);
    s.hung = (pst_server_call *)addr;
    pthread_t th;
    pthread_create(&th, NULL, late_server, &s);
    pst_transport *c = make(1);
    pst_status st = {0};
    uint8_t x = 42, *resp = NULL;
    size_t len = 0;
    pst_msg m = pst_msg_of(&x, 1);
    int rc = pst_transport_call_sync(c, addr, ECHO, &m, 10000, PST_CALL_WAIT_FOR_READY, &resp,
                                     &len, &st);
    ck_assert_msg(rc == 0, "%s", st.msg);
    ck_assert_uint_eq(len, 1);
    ck_assert_uint_eq(resp[0], 42);
    free(resp);
    pthread_join(th, NULL);
    pst_transport_free(c);
    pst_transport_free(s.t);
}
END_TEST

/* More peers than the client ever kept channels for (128): 150 addresses (127.0.0.X, all
 * loopback) of one server listening on every interface, each reached. */
START_TEST(test_grpc_many_peers) {
    server_ctx s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    s.t = make(1);
    pst_status st = {0};
    char bound[128];
    ck_assert_msg(pst_transport_serve(s.t, "0.0.0.0:0", handler, &s, bound, sizeof bound, &st) == 0,
                  "%s", st.msg);
    int port = atoi(strrchr(bound, ':') + 1);
    pst_transport *c = make(1);
    for (int i = 1; i <= 150; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.%d:%d", i, port);
        uint8_t x = (uint8_t)i, *resp = NULL;
        size_t len = 0;
        pst_msg m = pst_msg_of(&x, 1);
        int rc = pst_transport_call_sync(c, addr, ECHO, &m, 10000, PST_CALL_WAIT_FOR_READY, &resp,
                                         &len, &st);
        ck_assert_msg(rc == 0, "peer %d: %s", i, st.msg);
        ck_assert_uint_eq(len, 1);
        ck_assert_uint_eq(resp[0], (uint8_t)i);
        free(resp);
    }
    ck_assert_int_eq(s.calls, 150);
    pst_transport_free(c);
    pst_transport_free(s.t);
}
END_TEST

/* Serving an address another server holds fails, naming it. */
START_TEST(test_grpc_address_in_use) {
    server_ctx s;
    char addr[128];
    start(&s, 1, addr, sizeof addr);
    pst_transport *t2 = make(1);
    pst_status st = {0};
    char bound[128];
    ck_assert_int_lt(pst_transport_serve(t2, addr, handler, &s, bound, sizeof bound, &st), 0);
    ck_assert_ptr_nonnull(strstr(st.msg, addr));
    pst_transport_free(t2);
    pst_transport_free(s.t);
}
END_TEST

/* Several threads calling at once, messages of many sizes (copied and wrapped segments): every
 * answer is the exact request. */
typedef struct stress_arg {
    pst_transport *c;
    const char *addr;
    int seed, bad;
} stress_arg;
static void *stress_thread(void *p) {
    stress_arg *a = p;
    unsigned r = (unsigned)a->seed;
    for (int i = 0; i < 40; i++) {
        size_t len = (size_t)(rand_r(&r) % 200000) + 1;
        uint8_t *buf = malloc(len);
        for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)rand_r(&r);
        uint8_t hdr[16];
        memset(hdr, a->seed, sizeof hdr);
        pst_msg m = {.n = 2, .seg = {{hdr, sizeof hdr, NULL}, {buf, len, NULL}}};
        uint8_t *resp = NULL;
        size_t rl = 0;
        pst_status st = {0};
        if (pst_transport_call_sync(a->c, a->addr, ECHO, &m, 20000, 0, &resp, &rl, &st) != 0 ||
            rl != len + 16 || memcmp(resp, hdr, 16) != 0 || memcmp(resp + 16, buf, len) != 0)
            a->bad++;
        free(resp);
        free(buf);
    }
    return NULL;
}
static void stress(int grpc) {
    server_ctx s;
    char addr[128];
    start(&s, grpc, addr, sizeof addr);
    pst_transport *c = make(grpc);
    pthread_t th[4];
    stress_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (stress_arg){.c = c, .addr = addr, .seed = i + 1};
        pthread_create(&th[i], NULL, stress_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(a[i].bad, 0);
    }
    pst_transport_free(c);
    pst_transport_free(s.t);
}
START_TEST(test_inproc_concurrent_exact) { stress(0); }
END_TEST
START_TEST(test_grpc_concurrent_exact) { stress(1); }
END_TEST


/* ---- security: the job token and mutual TLS ---- */

#define TOKEN_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static pst_security *sec_new(const char *token, const char *tls_dir) {
    pst_status st = {0};
    pst_security *s = pst_security_new(&(pst_security_opts){.token = token, .tls_dir = tls_dir ? tls_dir : ""}, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    return s;
}

static pst_transport *make_secure(const pst_security *sec) {
    pst_status st = {0};
    pst_transport_opts o = {.security = sec};
    pst_transport *t = pst_transport_grpc_new(methods, 3, &o, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    return t;
}

static void start_secure(server_ctx *s, const pst_security *sec, char *bound, size_t len) {
    pst_status st = {0};
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->t = make_secure(sec);
    ck_assert_msg(pst_transport_serve(s->t, "127.0.0.1:0", handler, s, bound, len, &st) == 0,
                  "%s", st.msg);
}

static int echo_with(const pst_security *sec, const char *addr, pst_status *st) {
    pst_transport *c = sec ? make_secure(sec) : make(1);
    const char hello[] = "hello";
    pst_msg m = pst_msg_of(hello, sizeof hello);
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = pst_transport_call_sync(c, addr, ECHO, &m, 5000, 0, &resp, &len, st);
    if (rc == 0) ck_assert(len == sizeof hello && memcmp(resp, hello, len) == 0);
    free(resp);
    pst_transport_free(c);
    return rc;
}

/* A server with a token answers its members only: no token or another job's token is refused
 * with UNAUTHENTICATED before the handler runs. */
START_TEST(test_grpc_token_required) {
    pst_security *a = sec_new(TOKEN_A, NULL), *b = sec_new(TOKEN_B, NULL);
    server_ctx s;
    char addr[128];
    start_secure(&s, a, addr, sizeof addr);
    pst_status st = {0};
    ck_assert_int_eq(echo_with(NULL, addr, &st), PST_E_UNAUTHENTICATED);
    ck_assert_msg(strstr(st.msg, "no job token") != NULL, "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(echo_with(b, addr, &st), PST_E_UNAUTHENTICATED);
    ck_assert_msg(strstr(st.msg, "wrong job token") != NULL, "%s", st.msg);
    ck_assert_int_eq(s.calls, 0);
    memset(&st, 0, sizeof st);
    ck_assert_msg(echo_with(a, addr, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(s.calls, 1);
    pst_transport_free(s.t);
    pst_security_free(a);
    pst_security_free(b);
}
END_TEST

/* Makes a CA and a certificate for 127.0.0.1 under dir/name with scripts/tls_certs.sh. */
static void make_certs(const char *dir, const char *name) {
    const char *src = getenv("PST_SOURCE_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/scripts/tls_certs.sh %s %s=127.0.0.1,localhost >/dev/null",
             src ? src : ".", dir, name);
    ck_assert_int_eq(system(cmd), 0);
}

/* Mutual TLS with the token: members with certificates of the job's CA talk; a client with a
 * certificate of another CA, or without TLS, never reaches the handler. */
START_TEST(test_grpc_mutual_tls) {
    char job[] = "/tmp/pst-tls-XXXXXX", other[] = "/tmp/pst-tls-other-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(job));
    ck_assert_ptr_nonnull(mkdtemp(other));
    make_certs(job, "server");
    make_certs(job, "client");
    make_certs(other, "client");
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof p1, "%s/server", job);
    snprintf(p2, sizeof p2, "%s/client", job);
    snprintf(p3, sizeof p3, "%s/client", other);
    pst_security *srv = sec_new(TOKEN_A, p1), *cli = sec_new(TOKEN_A, p2),
                 *stranger = sec_new(TOKEN_A, p3), *plain = sec_new(TOKEN_A, NULL);
    ck_assert(pst_security_tls(srv) && !pst_security_tls(plain));
    server_ctx s;
    char addr[128];
    start_secure(&s, srv, addr, sizeof addr);
    pst_status st = {0};
    ck_assert_msg(echo_with(cli, addr, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(s.calls, 1);
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(echo_with(stranger, addr, &st), 0);
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(echo_with(plain, addr, &st), 0);
    ck_assert_int_eq(s.calls, 1);
    pst_transport_free(s.t);
    pst_security_free(srv);
    pst_security_free(cli);
    pst_security_free(stranger);
    pst_security_free(plain);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", job, other);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The cleartext rule and token sources: loopback clusters pass, others need TLS or --insecure;
 * a short token, a token file others can read, or no token where one is required are errors. */
START_TEST(test_security_rules) {
    pst_status st = {0};
    pst_cluster *lo = pst_cluster_parse("{\"ps\": [\"127.0.0.2:1\", \"[::1]:2\"], \"worker\": [\"localhost:3\"]}", "lo.json", &st);
    pst_cluster *net = pst_cluster_parse("{\"ps\": [\"127.0.0.1:1\"], \"worker\": [\"10.1.2.3:4\"]}", "net.json", &st);
    ck_assert(lo && net);
    pst_security *plain = sec_new(TOKEN_A, NULL);
    ck_assert_int_eq(pst_security_check_cluster(plain, lo, &st), 0);
    ck_assert_int_eq(pst_security_check_cluster(plain, net, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "10.1.2.3:4") && strstr(st.msg, "--tls-dir"), "%s", st.msg);
    pst_status_clear(&st);
    pst_security *ins = pst_security_new(&(pst_security_opts){.token = TOKEN_A, .tls_dir = "", .insecure = 1}, &st);
    ck_assert_int_eq(pst_security_check_cluster(ins, net, &st), 0);
    ck_assert_ptr_null(pst_security_new(&(pst_security_opts){.token = "short", .tls_dir = ""}, &st));
    ck_assert_msg(strstr(st.msg, "shorter than 32"), "%s", st.msg);
    unsetenv("PST_JOB_TOKEN");
    unsetenv("PST_JOB_TOKEN_FILE");
    pst_status_clear(&st);
    ck_assert_ptr_null(pst_security_new(&(pst_security_opts){.require_token = 1, .tls_dir = ""}, &st));
    ck_assert_int_eq(st.code, PST_E_UNAUTHENTICATED);
    char path[] = "/tmp/pst-token-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path);
    ck_assert_int_eq(pst_security_token_new(path, &st), 0);
    ck_assert_int_eq(pst_security_token_new(path, &st), PST_E_IO); /* never overwrites */
    pst_status_clear(&st);
    pst_security *f = pst_security_new(&(pst_security_opts){.token_file = path, .tls_dir = ""}, &st);
    ck_assert_msg(f != NULL, "%s", st.msg);
    ck_assert_int_eq(strlen(pst_security_token(f)), PST_TOKEN_HEX_LEN);
    ck_assert(pst_security_token_matches(f, pst_security_token(f), PST_TOKEN_HEX_LEN));
    ck_assert(!pst_security_token_matches(f, pst_security_token(f), PST_TOKEN_HEX_LEN - 1));
    chmod(path, 0644);
    ck_assert_ptr_null(pst_security_new(&(pst_security_opts){.token_file = path, .tls_dir = ""}, &st));
    ck_assert_msg(strstr(st.msg, path) && strstr(st.msg, "readable by others"), "%s", st.msg);
    unlink(path);
    pst_security_free(plain);
    pst_security_free(ins);
    pst_security_free(f);
    pst_cluster_free(lo);
    pst_cluster_free(net);
}
END_TEST

/* The MPI transport in a process of its own (MPI's singleton: rank 0 of 1, calling itself):
 * a message whose last segment is large travels as a head and a data message received into a
 * block the handler may keep; small and empty messages, and errors, travel as before. */
START_TEST(test_mpi_split_messages) {
    if (!pst_mpi_available()) return; /* built without MPI */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    pst_status st = {0};
    /* MPI's own start and end keep memory to the process's end (not pstrain's: unchecked) */
    LSAN_DISABLE();
    int rank = -1, size = 0;
    const char *user_frag = getenv("OMPI_MCA_btl_vader_max_send_size");
    char before[32] = "";
    if (user_frag) snprintf(before, sizeof before, "%s", user_frag);
    int rc = pst_mpi_init(&rank, &size, &st);
    LSAN_ENABLE();
    ck_assert_msg(rc == 0 && rank == 0 && size == 1, "%s", st.msg);
    /* pstrain's MPI start asks for 128 KiB shared-memory fragments unless the user chose */
    const char *frag = getenv("OMPI_MCA_btl_vader_max_send_size");
    ck_assert_ptr_nonnull(frag);
    ck_assert_str_eq(frag, user_frag ? before : "131072");
    server_ctx s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    s.t = pst_transport_mpi_new(methods, 4, NULL, &st);
    ck_assert_msg(s.t != NULL, "%s", st.msg);
    char addr[64];
    ck_assert_msg(pst_transport_serve(s.t, "mpi:0", handler, &s, addr, sizeof addr, &st) == 0,
                  "%s", st.msg);
    ck_assert_str_eq(addr, "mpi:0");
    /* sizes around the split threshold (64 KiB), a large one, and one whose data moves for
     * longer than the receive thread's spin after a completion (driven to its end) */
    size_t sizes[] = {0, 1000, (64u << 10) - 1, 64u << 10, 3u << 20, 48u << 20};
    for (int k = 0; k < 6; k++) {
        size_t big = sizes[k];
        uint8_t hdr[37], *a = malloc(big + 1);
        for (size_t i = 0; i < big; i++) a[i] = (uint8_t)(i * 13 + k);
        for (int i = 0; i < 37; i++) hdr[i] = (uint8_t)(200 - i);
        int rel = 0;
        pst_msg m = {.n = 2, .seg = {{hdr, sizeof hdr, NULL}, {a, big, NULL}}, .release = released,
                     .owner = &rel};
        uint8_t *resp = NULL;
        size_t len = 0;
        ck_assert_msg(pst_transport_call_sync(s.t, "mpi:0", ECHO, &m, 30000, 0, &resp, &len, &st) == 0,
                      "%s", st.msg);
        ck_assert_uint_eq(len, big + sizeof hdr);
        ck_assert(memcmp(resp, hdr, sizeof hdr) == 0);
        ck_assert(big == 0 || memcmp(resp + sizeof hdr, a, big) == 0);
        ck_assert_int_eq(rel, 1);
        free(resp);
        /* the same through Take: a block is offered exactly when the last segment is split */
        uint64_t sum = 0;
        for (size_t i = 0; i < sizeof hdr; i++) sum += hdr[i] * (i + 1);
        for (size_t i = 0; i < big; i++) sum += a[i] * (sizeof hdr + i + 1);
        char want[64];
        snprintf(want, sizeof want, "%s %llu", big >= (64u << 10) ? "taken" : "copied",
                 (unsigned long long)sum);
        m = (pst_msg){.n = 2, .seg = {{hdr, sizeof hdr, NULL}, {a, big, NULL}}};
        ck_assert_msg(pst_transport_call_sync(s.t, "mpi:0", TAKE, &m, 30000, 0, &resp, &len, &st) == 0,
                      "%s", st.msg);
        ck_assert_msg(len == strlen(want) && memcmp(resp, want, len) == 0, "size %zu: %.*s, want %s",
                      big, (int)len, (const char *)resp, want);
        free(resp);
        free(a);
    }
    /* an error passes with its code and message */
    uint8_t *resp = NULL;
    size_t len = 0;
    ck_assert_int_eq(pst_transport_call_sync(s.t, "mpi:0", FAIL, NULL, 5000, 0, &resp, &len, &st),
                     PST_E_NOT_FOUND);
    ck_assert_msg(strstr(st.msg, "variable 'w'"), "%s", st.msg);
    pst_transport_free(s.t);
    LSAN_DISABLE();
    pst_mpi_finalize();
    LSAN_ENABLE();
}
END_TEST

int main(void) {
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproc_echo_large);
    tcase_add_test(tc, test_grpc_echo_large);
    tcase_add_test(tc, test_inproc_error);
    tcase_add_test(tc, test_grpc_error);
    tcase_add_test(tc, test_inproc_group);
    tcase_add_test(tc, test_grpc_group);
    tcase_add_test(tc, test_inproc_unreachable);
    tcase_add_test(tc, test_grpc_unreachable);
    tcase_add_test(tc, test_grpc_deadline);
    tcase_add_test(tc, test_grpc_wait_for_ready);
    tcase_add_test(tc, test_grpc_address_in_use);
    tcase_add_test(tc, test_grpc_many_peers);
    tcase_add_test(tc, test_inproc_concurrent_exact);
    tcase_add_test(tc, test_grpc_concurrent_exact);
    tcase_add_test(tc, test_grpc_token_required);
    tcase_add_test(tc, test_grpc_mutual_tls);
    tcase_add_test(tc, test_security_rules);
    tcase_add_test(tc, test_mpi_split_messages);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
