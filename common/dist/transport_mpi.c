/*
 * The MPI transport (see transport_mpi.h). Wire format of one message, little-endian:
 *
 *     u32 magic "PSTM" | u8 kind (1 request, 2 response) | u8 flags | u16 method |
 *     i32 status code | u32 status message length | u64 call id | u64 data bytes |
 *     u32 data tag | u32 0 | message | payload
 *
 * A request goes to the callee's rank with TAG_REQ, its response back with TAG_RESP and the
 * same call id. A message whose last segment is large (a tensor's bytes: DATA_MIN or more)
 * travels as two: the head above (flag SPLIT, the data's size and tag) and the segment itself
 * as a message of its own under a tag unique to it among the sender's messages in flight. The
 * receiver posts that receive straight into a block of tensor memory once the head is in, and
 * offers the block to the handler whole (pst_iov.own), so a pushed or pulled tensor is never
 * copied after MPI delivered it. One thread (rx) drives MPI: it tests the sends in flight
 * (releasing their messages), matches arriving heads (MPI_Improbe + MPI_Imrecv into a buffer of
 * the probed size), posts the data receives, fails calls past their deadline, and hands
 * handlers and completions to a pool.
 */
#include "transport_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PST_HAVE_MPI

#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "clock.h"
#include "tensor.h"
#include "workpool.h"

enum { TAG_REQ = 11, TAG_RESP = 12 };
enum { KIND_REQ = 1, KIND_RESP = 2 };
#define HDR_BYTES 40
enum { FLAG_SPLIT = 1 };
/* A last segment this large travels as a message of its own, received into tensor memory. */
#define DATA_MIN ((size_t)64 << 10)
/* Data messages use tags TAG_DATA0 .. TAG_DATA0 + data_tags - 1, in turn. */
enum { TAG_DATA0 = 1024 };
static int data_tags = 1 << 20;
#define MAGIC 0x4d545350u /* "PSTM" */

/* ---- the process's MPI ---- */

static pthread_mutex_t world_mu = PTHREAD_MUTEX_INITIALIZER;
static int world_inited, world_ours, world_rank, world_size;
static MPI_Comm world_comm = MPI_COMM_NULL; /* the transport's private communicator */
static int transport_live;                  /* one transport per process at a time */

int pst_mpi_available(void) { return 1; }

int pst_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* The text of an MPI error code. */
static const char *mpi_err(int code, char *buf) {
    int len = 0;
    if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) snprintf(buf, 64, "MPI error %d", code);
    return buf;
}

/* Every rank's host and pid (pst_mpi_gone_ranks). */
#define HOST_MAX 64
typedef struct peer_id {
    int32_t pid;
    char host[HOST_MAX];
} peer_id;
static peer_id *peers;

static int record_peers(pst_status *st) {
    peer_id me = {.pid = (int32_t)getpid()};
    gethostname(me.host, sizeof me.host - 1);
    peers = calloc((size_t)world_size, sizeof *peers);
    if (!peers) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for %d ranks",
                                      world_size);
    if (MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, peers, (int)sizeof me, MPI_BYTE,
                      world_comm) != MPI_SUCCESS) {
        free(peers);
        peers = NULL;
        return pst_status_set(st, PST_E_UNAVAILABLE, "MPI_Allgather of the ranks' pids failed");
    }
    return 0;
}

int pst_mpi_gone_ranks(char *out, size_t len) {
    if (len) out[0] = 0;
    if (!peers) return 0;
    char host[HOST_MAX] = "";
    gethostname(host, sizeof host - 1);
    int n = 0;
    size_t used = 0;
    for (int r = 0; r < world_size; r++) {
        if (r == world_rank || strcmp(peers[r].host, host) != 0) continue;
        if (kill((pid_t)peers[r].pid, 0) == 0 || errno != ESRCH) continue;
        int w = snprintf(out + used, len > used ? len - used : 0, "%srank %d (pid %d on %s)",
                         n ? ", " : "", r, (int)peers[r].pid, peers[r].host);
        if (w > 0) used += (size_t)w;
        if (used >= len) used = len ? len - 1 : 0;
        n++;
    }
    return n;
}

static int term_pipe[2] = {-1, -1};
static char term_who[256];

static void on_term(int sig) {
    char c = (char)sig;
    if (write(term_pipe[1], &c, 1) < 0) _exit(1);
}

static void *term_watch(void *arg) {
    (void)arg;
    char c;
    while (read(term_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    /* Give the launcher a moment to have reaped the rank that died. */
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    char gone[1024];
    if (pst_mpi_gone_ranks(gone, sizeof gone) > 0)
        fprintf(stderr, "%s: mpirun is ending the job: %s exited\n", term_who, gone);
    else
        fprintf(stderr, "%s: mpirun is ending the job (signal %d): another rank failed or was "
                "stopped (mpirun's message names it)\n", term_who, (int)c);
    fflush(stderr);
    fflush(stdout);
    _exit(1);
    return NULL;
}

void pst_mpi_report_termination(const char *who) {
    if (term_pipe[0] >= 0 || pipe(term_pipe) < 0) return;
    snprintf(term_who, sizeof term_who, "%s", who);
    pthread_t th;
    if (pthread_create(&th, NULL, term_watch, NULL) != 0) return;
    pthread_detach(th);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

int pst_mpi_init(int *rank, int *size, pst_status *st) {
    pthread_mutex_lock(&world_mu);
    int rc = 0;
    if (!world_inited) {
        int already = 0, provided = 0;
        MPI_Initialized(&already);
        if (!already) {
            /* OpenMPI's shared-memory transport moves a large message in fragments of
             * btl_vader_max_send_size (32 KiB), a few per message in flight; when its
             * single-copy path is off (containers: no ptrace across processes) pstrain's many
             * concurrent tensor messages then wait on the fragments' round trips. 128 KiB
             * fragments: push+pull of 25 x 4 MB 24-30 -> 19-24 ms here (and raw MPI no
             * slower). A value the user set wins. */
            setenv("OMPI_MCA_btl_vader_max_send_size", "131072", 0);
            if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
                rc = pst_status_set(st, PST_E_UNAVAILABLE, "MPI_Init_thread failed");
                goto out;
            }
            world_ours = 1;
        } else {
            MPI_Query_thread(&provided);
        }
        if (provided < MPI_THREAD_MULTIPLE) {
            rc = pst_status_set(st, PST_E_UNAVAILABLE,
                                "the MPI library provides thread level %d, pstrain needs "
                                "MPI_THREAD_MULTIPLE (%d): use an MPI built with thread "
                                "support (Debian's OpenMPI 4.1 has it)",
                                provided, MPI_THREAD_MULTIPLE);
            goto out;
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world_size);
        char eb[MPI_MAX_ERROR_STRING];
        int e = MPI_Comm_dup(MPI_COMM_WORLD, &world_comm);
        if (e != MPI_SUCCESS) {
            rc = pst_status_set(st, PST_E_UNAVAILABLE, "MPI_Comm_dup: %s", mpi_err(e, eb));
            goto out;
        }
        MPI_Comm_set_errhandler(world_comm, MPI_ERRORS_RETURN);
        int *tag_ub = NULL, has_ub = 0;
        if (MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &has_ub) == MPI_SUCCESS &&
            has_ub && tag_ub && *tag_ub - TAG_DATA0 < data_tags)
            data_tags = *tag_ub - TAG_DATA0;
        if (data_tags < 1024) {
            rc = pst_status_set(st, PST_E_UNAVAILABLE, "the MPI library's largest tag is %d; "
                                "pstrain needs at least %d", tag_ub ? *tag_ub : 0,
                                TAG_DATA0 + 1024);
            goto out;
        }
        if (record_peers(st) < 0) {
            rc = st->code;
            goto out;
        }
        world_inited = 1;
    }
    if (rank) *rank = world_rank;
    if (size) *size = world_size;
out:
    pthread_mutex_unlock(&world_mu);
    return rc;
}

static void put32(uint8_t *p, uint32_t v);
static uint32_t get32(const uint8_t *p);
static void put64(uint8_t *p, uint64_t v);

/* Until every rank reached pst_mpi_finalize (a non-blocking barrier), answers requests to this
 * rank's ended task with UNAVAILABLE at once, so a peer's last calls (a deregistration, a
 * status) fail fast instead of waiting for their deadline. Gives up after a minute. */
static void drain_until_all_finish(void) {
    MPI_Request barrier;
    if (MPI_Ibarrier(world_comm, &barrier) != MPI_SUCCESS) return;
    double until = pst_clock_now() + 60.0;
    long idle_ns = 0;
    for (;;) {
        int done = 0;
        if (MPI_Test(&barrier, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) return;
        if (pst_clock_now() > until) {
            MPI_Request_free(&barrier);
            return;
        }
        int flag = 0;
        MPI_Message msg;
        MPI_Status status;
        if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, world_comm, &flag, &msg, &status) ==
                MPI_SUCCESS && flag) {
            idle_ns = 0;
            int count = 0;
            MPI_Get_count(&status, MPI_BYTE, &count);
            uint8_t *buf = malloc(count > 0 ? (size_t)count : 1);
            if (!buf) {
                MPI_Mrecv(NULL, 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE); /* drops it */
                continue;
            }
            MPI_Mrecv(buf, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
            if (status.MPI_TAG == TAG_REQ && count >= HDR_BYTES && get32(buf) == MAGIC &&
                buf[4] == KIND_REQ) {
                char text[96];
                int tl = snprintf(text, sizeof text, "task mpi:%d has finished", world_rank);
                uint8_t out[HDR_BYTES + 96];
                memset(out, 0, HDR_BYTES);
                memcpy(out, buf, 8);              /* magic, kind, flags, method */
                memcpy(out + 16, buf + 16, 8);    /* call id */
                out[4] = KIND_RESP;
                out[5] = 0;
                put32(out + 8, (uint32_t)PST_E_UNAVAILABLE);
                put32(out + 12, (uint32_t)tl);
                memcpy(out + HDR_BYTES, text, (size_t)tl);
                MPI_Send(out, HDR_BYTES + tl, MPI_BYTE, status.MPI_SOURCE, TAG_RESP, world_comm);
            }
            free(buf);
            continue;
        }
        idle_ns = idle_ns ? (idle_ns * 2 > 1000000 ? 1000000 : idle_ns * 2) : 20000;
        struct timespec ts = {0, idle_ns};
        nanosleep(&ts, NULL);
    }
}

void pst_mpi_finalize(void) {
    pthread_mutex_lock(&world_mu);
    int fin = 0;
    MPI_Finalized(&fin);
    if (world_ours && !fin) {
        if (world_inited && !transport_live) drain_until_all_finish();
        MPI_Finalize();
    }
    world_ours = 0;
    pthread_mutex_unlock(&world_mu);
}

void pst_mpi_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
}

/* ---- wire helpers ---- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- the transport ---- */

/* A call this process made, waiting for its response. */
typedef struct pcall {
    struct pcall *next;
    uint64_t id;
    int rank, method;
    double deadline; /* 0: none */
    int64_t timeout_ms;
    pst_call_done_fn done;
    void *arg;
} pcall;

/* A message in flight out of this process. */
typedef struct sendop {
    struct sendop *next; /* set when queued; rewritten only by rx (unlinking), under t->mu */
    int done;            /* rx: 1 sent, 2 failed */
    MPI_Request req[2]; /* the head, and the data of a split message (else MPI_REQUEST_NULL) */
    uint8_t hdr[HDR_BYTES];
    char smsg[PST_STATUS_MSG_MAX];
    pst_msg m;      /* released once sent */
    uint64_t call;  /* a request's call id (failed at once when the send fails), else 0 */
} sendop;

/* A message arriving, matched to its buffer. */
typedef struct recvop {
    struct recvop *next;
    MPI_Request req; /* the head's receive, then the data's */
    uint8_t *buf;    /* the head */
    size_t len;
    int src, tag;
    void *data;      /* a split message's data: pst_aligned_alloc'd block */
    size_t data_len;
    int data_wanted; /* the data's receive is posted */
    int done;        /* rx: 1 received, 2 failed */
    int discard;     /* ... into nothing (no memory for it): the message is dropped */
} recvop;

/* For a head that announces data (FLAG_SPLIT): posts the data's receive into a block of tensor
 * memory (or, without memory, into nothing so MPI drops it) and returns 1; 0 for a message
 * that is whole. */
static int post_data_recv(recvop *r) {
    const uint8_t *b = r->buf;
    if (r->len < HDR_BYTES || get32(b) != MAGIC || !(b[5] & FLAG_SPLIT)) return 0;
    uint64_t len = get64(b + 24);
    uint32_t tag = get32(b + 32);
    if (len == 0 || len > (uint64_t)INT_MAX || tag < TAG_DATA0 ||
        tag >= (uint32_t)TAG_DATA0 + (uint32_t)data_tags)
        return 0; /* malformed: delivered as it is, without data */
    r->data_wanted = 1;
    r->data_len = (size_t)len;
    r->data = pst_aligned_alloc(r->data_len);
    if (!r->data) r->discard = 1;
    if (MPI_Irecv(r->data, r->data ? (int)len : 0, MPI_BYTE, r->src, (int)tag, world_comm,
                  &r->req) != MPI_SUCCESS) {
        r->discard = 1;
        r->req = MPI_REQUEST_NULL; /* tested as complete at once: dropped */
    }
    return 1;
}

typedef struct mtransport {
    pst_transport base;
    pst_transport_opts o;
    int rank, size;
    char addr[32];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t rx_cv;   /* (CLOCK_MONOTONIC) wakes rx from its idle wait: a send queued */
    int rx_kick;
    double data_until;      /* rx keeps driving MPI until then: data messages in flight */
    pst_handler_fn handler;
    void *harg;
    int serving, stopped;
    int running_handlers; /* handler invocations not yet returned */
    int open_calls;       /* arrived calls not yet replied to */
    pcall *calls;
    sendop *sends;
    recvop *recvs;
    uint64_t next_id;
    atomic_uint next_data_tag;
    pthread_t rx;
    int rx_started;
    atomic_int quit;
    pst_workpool *pool;
} mtransport;

/* The slowest rate (bytes/s) at which a data message in flight is expected to move: rx keeps
 * driving MPI's progress for as long as the data in flight takes at that rate (a large message
 * completes only at its end, and MPI moves it only while it is driven on both sides). */
#define DATA_RATE_MIN 250e6
/* How long rx keeps driving messages in flight without pause after the last one moved (past
 * it, a message stuck on a peer that stopped receiving gets the idle backoff). */
#define SPIN_S 0.05
/* rx's idle wait grows from 20 us to IDLE_ACTIVE_NS while messages moved in the last
 * ACTIVE_S (a PS between a step's requests, a worker between its calls: the next request is
 * met within 0.2 ms), then to IDLE_MAX_NS, so an idle rank leaves the cores to computation. */
#define ACTIVE_S 0.2
#define IDLE_ACTIVE_NS 200000L
#define IDLE_MAX_NS 1000000L

/* A data message of len bytes starts moving (either way). Called with t->mu held. */
static void note_data_locked(mtransport *t, size_t len) {
    double now = pst_clock_now();
    if (t->data_until < now + SPIN_S) t->data_until = now + SPIN_S;
    t->data_until += (double)len / DATA_RATE_MIN;
}

struct pst_server_call {
    mtransport *t;
    int rank;
    uint64_t id;
    int method;
    int cancelled; /* answered by stop(): the reply only frees */
};

static const char *method_name(mtransport *t, int m) {
    if (m < 0 || m >= t->base.n_methods) return "(unknown method)";
    const char *s = strrchr(t->base.methods[m], '/');
    return s ? s + 1 : t->base.methods[m];
}

/* Starts sending header + smsg + m's segments to rank (m released once sent); a large last
 * segment goes as a data message of its own. On failure the message is released and the error
 * returned. Called with t->mu not held. */
static int send_msg(mtransport *t, int rank, int tag, int kind, int method, int code,
                    const char *smsg, uint64_t id, pst_msg *m, pst_status *st) {
    sendop *op = calloc(1, sizeof *op);
    if (!op) {
        if (m && m->release) m->release(m->owner);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory sending to mpi:%d", rank);
    }
    op->req[0] = op->req[1] = MPI_REQUEST_NULL;
    size_t mlen = smsg ? strnlen(smsg, sizeof op->smsg - 1) : 0;
    if (mlen) memcpy(op->smsg, smsg, mlen);
    if (m) op->m = *m;
    op->call = kind == KIND_REQ ? id : 0;
    int n_head = m ? m->n : 0; /* segments in the head */
    const pst_iov *data = NULL;
    if (n_head > 0 && m->seg[n_head - 1].len >= DATA_MIN) data = &m->seg[--n_head];
    /* One datatype over the absolute addresses of every piece: no copy into a send buffer. */
    int lens[2 + PST_MSG_MAX_SEGS];
    MPI_Aint displs[2 + PST_MSG_MAX_SEGS];
    int n = 0;
    size_t total = HDR_BYTES + mlen;
    MPI_Get_address(op->hdr, &displs[n]);
    lens[n++] = HDR_BYTES;
    if (mlen) {
        MPI_Get_address(op->smsg, &displs[n]);
        lens[n++] = (int)mlen;
    }
    for (int i = 0; i < n_head + (data ? 1 : 0); i++) {
        const pst_iov *sg = &m->seg[i];
        if (sg->len > (size_t)INT_MAX || (total += sg->len) > (size_t)INT_MAX) {
            if (op->m.release) op->m.release(op->m.owner);
            free(op);
            return pst_status_set(st, PST_E_INVALID, "a %zu-byte message to mpi:%d is over "
                                  "MPI's 2 GiB message size (send tensors in chunks)",
                                  total, rank);
        }
        if (i >= n_head || sg->len == 0) continue;
        MPI_Get_address(sg->base, &displs[n]);
        lens[n++] = (int)sg->len;
    }
    put32(op->hdr, MAGIC);
    op->hdr[4] = (uint8_t)kind;
    op->hdr[5] = data ? FLAG_SPLIT : 0;
    op->hdr[6] = (uint8_t)(method & 0xff);
    op->hdr[7] = (uint8_t)((method >> 8) & 0xff);
    put32(op->hdr + 8, (uint32_t)code);
    put32(op->hdr + 12, (uint32_t)mlen);
    put64(op->hdr + 16, id);
    int data_tag = 0, queued = 0;
    MPI_Datatype type;
    char eb[MPI_MAX_ERROR_STRING];
    int e = MPI_Type_create_hindexed(n, lens, displs, MPI_BYTE, &type);
    if (e == MPI_SUCCESS) e = MPI_Type_commit(&type);
    if (e == MPI_SUCCESS) {
        if (data) {
            data_tag = TAG_DATA0 +
                       (int)(atomic_fetch_add(&t->next_data_tag, 1) % (unsigned)data_tags);
            put64(op->hdr + 24, (uint64_t)data->len);
            put32(op->hdr + 32, (uint32_t)data_tag);
        }
        /* The head first, so the receiver learns where the data goes before it comes. Posted
         * outside t->mu: rx tests the sends in flight meanwhile. */
        e = MPI_Isend(MPI_BOTTOM, 1, type, rank, tag, world_comm, &op->req[0]);
        if (e == MPI_SUCCESS && data)
            e = MPI_Isend(data->base, (int)data->len, MPI_BYTE, rank, data_tag, world_comm,
                          &op->req[1]);
        queued = op->req[0] != MPI_REQUEST_NULL;
        if (queued) {
            /* The head is on its way (even when its data could not follow): op and its
             * message live until it is sent. */
            if (e != MPI_SUCCESS) op->call = 0; /* the caller hears of the failure below */
            pthread_mutex_lock(&t->mu);
            if (data) note_data_locked(t, data->len);
            op->next = t->sends;
            t->sends = op;
            t->rx_kick = 1; /* rx drives it from now, not after its idle wait */
            pthread_cond_signal(&t->rx_cv);
            pthread_mutex_unlock(&t->mu);
        }
        MPI_Type_free(&type);
    }
    if (e != MPI_SUCCESS) {
        if (!queued) { /* op is the rx thread's once queued */
            if (op->m.release) op->m.release(op->m.owner);
            free(op);
        }
        return pst_status_set(st, PST_E_UNAVAILABLE, "sending to mpi:%d: %s", rank,
                              mpi_err(e, eb));
    }
    return 0;
}

/* ---- jobs on the pool: handlers and completions ---- */

typedef struct job {
    mtransport *t;
    uint8_t *buf;       /* the whole message (freed after the job) */
    size_t off, len;    /* the payload */
    void *data;         /* a split message's data block (the handler may take it) */
    size_t data_len;
    pst_server_call *call; /* a request */
    int method;
    pcall *pc;          /* a completion */
    pst_status st;
} job;

static void run_job(void *arg) {
    job *j = arg;
    mtransport *t = j->t;
    pst_iov v[2];
    int n = 0;
    if (j->len) v[n++] = (pst_iov){j->buf + j->off, j->len, NULL};
    if (j->data) v[n++] = (pst_iov){j->data, j->data_len, &j->data};
    if (j->call) {
        t->handler(t->harg, j->call, j->method, v, n);
        pthread_mutex_lock(&t->mu);
        if (--t->running_handlers == 0) pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    } else {
        j->pc->done(j->pc->arg, j->st.code ? &j->st : NULL, v, j->st.code ? 0 : n);
        free(j->pc);
    }
    pst_aligned_free(j->data); /* NULL when the handler took it */
    free(j->buf);
    free(j);
}

/* Runs j on the pool, or here when the pool refuses (never dropped). */
static void dispatch(mtransport *t, job *j) {
    pst_status ignore = {0};
    if (pst_workpool_submit(t->pool, run_job, j, &ignore) < 0) run_job(j);
}

/* Completes a call with an error (from any thread; the call is already off the list). The
 * message names the rank and the method: "task mpi:3 (MPI rank 3): RunGraph: what". */
static void fail_call(mtransport *t, pcall *pc, int code, const char *what) {
    job *j = calloc(1, sizeof *j);
    pst_status st = {0};
    pst_status_set(&st, code, "task mpi:%d (MPI rank %d): %s: %s", pc->rank, pc->rank,
                   method_name(t, pc->method), what);
    if (!j) {
        pc->done(pc->arg, &st, NULL, 0);
        free(pc);
        return;
    }
    j->t = t;
    j->pc = pc;
    j->st = st;
    dispatch(t, j);
}

/* Fails every call of a list taken off t->calls. */
static void fail_calls(mtransport *t, pcall *list, int code, const char *what) {
    while (list) {
        pcall *pc = list;
        list = pc->next;
        fail_call(t, pc, code, what);
    }
}

/* Takes the call `id` to rank off the list (NULL when it is gone: answered or timed out). */
static pcall *take_call(mtransport *t, uint64_t id, int rank) {
    pcall **pp = &t->calls;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id && (rank < 0 || (*pp)->rank == rank)) {
            pcall *pc = *pp;
            *pp = pc->next;
            return pc;
        }
    }
    return NULL;
}

/* A message arrived whole: a request for the handler or a response for a waiting call. */
static void deliver(mtransport *t, recvop *r) {
    uint8_t *b = r->buf;
    if (r->len < HDR_BYTES || get32(b) != MAGIC) {
        free(r->buf);
        pst_aligned_free(r->data);
        return; /* not ours: nothing else uses this communicator */
    }
    int kind = b[4], method = b[6] | (b[7] << 8);
    int code = (int32_t)get32(b + 8);
    size_t mlen = get32(b + 12);
    uint64_t id = get64(b + 16);
    if (HDR_BYTES + mlen > r->len) mlen = r->len - HDR_BYTES;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(r->buf);
        pst_aligned_free(r->data);
        return; /* the caller's deadline reports it */
    }
    j->t = t;
    j->buf = r->buf;
    j->data = r->data; /* the job owns both from here */
    j->data_len = r->data_len;
    j->off = HDR_BYTES + mlen;
    j->len = r->len - j->off;
    if (kind == KIND_REQ) {
        pst_server_call *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&t->mu);
        int ok = c && t->serving && method >= 0 && method < t->base.n_methods;
        if (ok) {
            t->running_handlers++;
            t->open_calls++;
        }
        pthread_mutex_unlock(&t->mu);
        if (!ok) {
            pst_status st = {0};
            pst_status_set(&st, c ? PST_E_UNAVAILABLE : PST_E_EXHAUSTED,
                           c ? "%s is not serving (method %d)" : "%s: out of memory (method %d)",
                           t->addr, method);
            send_msg(t, r->src, TAG_RESP, KIND_RESP, method, st.code, st.msg, id, NULL, &st);
            free(c);
            free(r->buf);
            pst_aligned_free(j->data);
            free(j);
            return;
        }
        c->t = t;
        c->rank = r->src;
        c->id = id;
        c->method = method;
        j->call = c;
        j->method = method;
    } else {
        pthread_mutex_lock(&t->mu);
        pcall *pc = take_call(t, id, r->src);
        pthread_mutex_unlock(&t->mu);
        if (!pc) {
            free(r->buf);
            pst_aligned_free(j->data);
            free(j);
            return; /* answered after its deadline: already failed */
        }
        j->pc = pc;
        if (code) pst_status_set(&j->st, code, "%.*s", (int)mlen, (const char *)b + HDR_BYTES);
    }
    dispatch(t, j);
}

/* One pass over sends, receives, arrivals and deadlines; returns 1 when anything moved. */
static int poll_once(mtransport *t, double now, int check_deadlines) {
    int moved = 0;
    /* Sends and receives in flight are tested without t->mu (other threads only ever put new
     * ones at the head of a list, so the rest of it stays as it is), then the finished ones
     * are taken off under it. */
    pthread_mutex_lock(&t->mu);
    sendop *sends = t->sends;
    recvop *recvs = t->recvs;
    pthread_mutex_unlock(&t->mu);
    int finished = 0;
    for (sendop *op = sends; op; op = op->next) {
        int flag = 0;
        int e = MPI_Testall(2, op->req, &flag, MPI_STATUSES_IGNORE);
        if (e != MPI_SUCCESS) op->done = 2, finished = 1;
        else if (flag) op->done = 1, finished = 1;
    }
    for (recvop *r = recvs; r; r = r->next) {
        int flag = 0;
        int e = MPI_Test(&r->req, &flag, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) r->done = 2, finished = 1;
        else if (flag) r->done = 1, finished = 1;
    }
    sendop *done_sends = NULL;
    pcall *send_failed = NULL;
    recvop *arrived = NULL, *dropped = NULL;
    pthread_mutex_lock(&t->mu);
    for (sendop **sp = &t->sends; finished && *sp;) {
        sendop *op = *sp;
        if (!op->done) {
            sp = &op->next;
            continue;
        }
        *sp = op->next;
        op->next = done_sends;
        done_sends = op;
        pcall *pc = op->done == 2 && op->call ? take_call(t, op->call, -1) : NULL;
        if (pc) {
            pc->next = send_failed;
            send_failed = pc;
        }
    }
    for (recvop **rp = &t->recvs; finished && *rp;) {
        recvop *r = *rp;
        if (!r->done) {
            rp = &r->next;
            continue;
        }
        *rp = r->next;
        if (r->done == 1 && !r->discard) {
            r->done = 0; /* a head may go back on the list for its data */
            r->next = arrived;
            arrived = r;
        } else { /* failed, or data this rank had no memory for: dropped */
            r->next = dropped;
            dropped = r;
        }
    }
    int serving = t->serving;
    pthread_mutex_unlock(&t->mu);
    while (dropped) {
        recvop *r = dropped;
        dropped = r->next;
        free(r->buf);
        pst_aligned_free(r->data);
        free(r);
    }
    fail_calls(t, send_failed, PST_E_UNAVAILABLE, "sending the request failed (the rank is gone?)");
    while (done_sends) {
        sendop *op = done_sends;
        done_sends = op->next;
        if (op->m.release) op->m.release(op->m.owner);
        free(op);
        moved = 1;
    }
    while (arrived) {
        recvop *r = arrived;
        arrived = r->next;
        moved = 1;
        if (!r->data_wanted && post_data_recv(r)) { /* a head: its data comes next */
            pthread_mutex_lock(&t->mu);
            note_data_locked(t, r->data_len);
            r->next = t->recvs;
            t->recvs = r;
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        deliver(t, r);
        free(r);
    }
    /* new arrivals: responses always, requests while serving */
    for (int k = 0; k < 2; k++) {
        int tag = k == 0 ? TAG_RESP : TAG_REQ;
        if (tag == TAG_REQ && !serving) continue;
        for (int i = 0; i < 64; i++) {
            int flag = 0;
            MPI_Message msg;
            MPI_Status status;
            if (MPI_Improbe(MPI_ANY_SOURCE, tag, world_comm, &flag, &msg, &status) != MPI_SUCCESS ||
                !flag)
                break;
            int count = 0;
            MPI_Get_count(&status, MPI_BYTE, &count);
            recvop *r = calloc(1, sizeof *r);
            uint8_t *buf = malloc(count > 0 ? (size_t)count : 1);
            if (!r || !buf || MPI_Imrecv(buf, count, MPI_BYTE, &msg, &r->req) != MPI_SUCCESS) {
                /* Out of memory: take the message into a scratch byte to keep MPI's queue
                 * moving; the caller's deadline reports the loss. */
                free(buf);
                free(r);
                MPI_Mrecv(NULL, 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
                continue;
            }
            r->buf = buf;
            r->len = (size_t)count;
            r->src = status.MPI_SOURCE;
            r->tag = tag;
            moved = 1;
            /* A small message (a head) is usually in already: its data's receive is posted, or
             * it is delivered, at once rather than on the next pass. */
            int done = 0;
            if (MPI_Test(&r->req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done &&
                !post_data_recv(r)) {
                deliver(t, r);
                free(r);
                continue;
            }
            pthread_mutex_lock(&t->mu);
            if (r->data_wanted) note_data_locked(t, r->data_len);
            r->next = t->recvs;
            t->recvs = r;
            pthread_mutex_unlock(&t->mu);
        }
    }
    /* deadlines */
    if (check_deadlines) {
        pthread_mutex_lock(&t->mu);
        pcall **pp = &t->calls, *expired = NULL;
        while (*pp) {
            if ((*pp)->deadline > 0 && now >= (*pp)->deadline) {
                pcall *pc = *pp;
                *pp = pc->next;
                pc->next = expired;
                expired = pc;
            } else {
                pp = &(*pp)->next;
            }
        }
        pthread_mutex_unlock(&t->mu);
        while (expired) {
            pcall *pc = expired;
            expired = pc->next;
            char what[1300], gone[1024];
            if (pst_mpi_gone_ranks(gone, sizeof gone) > 0)
                snprintf(what, sizeof what, "no answer within %lld ms; gone: %s",
                         (long long)pc->timeout_ms, gone);
            else
                snprintf(what, sizeof what, "no answer within %lld ms (the rank died, hangs or "
                         "is overloaded)", (long long)pc->timeout_ms);
            fail_call(t, pc, PST_E_DEADLINE, what);
            moved = 1;
        }
    }
    return moved;
}

static void *rx_main(void *arg) {
    mtransport *t = arg;
    long idle_ns = 0;
    double last_deadline_check = 0, last_moved = 0;
    while (!atomic_load(&t->quit)) {
        double now = pst_clock_now();
        int check = now - last_deadline_check >= 0.005;
        if (check) last_deadline_check = now;
        if (poll_once(t, now, check)) {
            idle_ns = 0;
            last_moved = now;
            continue;
        }
        /* A message in flight moves only while MPI is driven (a large one in many fragments,
         * each side waiting for the other): keep driving it, yielding the core in between. */
        /* A data message keeps rx driving for as long as it may take (data_until), since it
         * completes only at its end. (Calls waiting for their answers do not count: spinning
         * then takes the cores from the peers computing those answers and from this rank's
         * own computation; in PS-mode training over MPI that cost 9% of the examples/s.) */
        pthread_mutex_lock(&t->mu);
        int in_flight = t->sends != NULL || t->recvs != NULL;
        int data_moving = in_flight && now < t->data_until;
        pthread_mutex_unlock(&t->mu);
        if (in_flight && (now - last_moved < SPIN_S || data_moving)) {
            idle_ns = 0;
            sched_yield();
            continue;
        }
        /* Idle: back off (see IDLE_ACTIVE_NS); a send queued meanwhile wakes rx at once. */
        long cap = now - last_moved < ACTIVE_S ? IDLE_ACTIVE_NS : IDLE_MAX_NS;
        idle_ns = idle_ns ? (idle_ns * 2 > cap ? cap : idle_ns * 2) : 20000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += idle_ns;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&t->mu);
        while (!t->rx_kick && !atomic_load(&t->quit))
            if (pthread_cond_timedwait(&t->rx_cv, &t->mu, &ts) == ETIMEDOUT) break;
        t->rx_kick = 0;
        pthread_mutex_unlock(&t->mu);
    }
    return NULL;
}

static int mpi_serve(pst_transport *tr, const char *addr, pst_handler_fn h, void *arg,
                     char *bound, size_t bound_len, pst_status *st) {
    mtransport *t = (mtransport *)tr;
    int rank = -1;
    if (pst_mpi_parse_address(addr, &rank, st) < 0) return st->code;
    if (rank != t->rank)
        return pst_status_set(st, PST_E_INVALID, "address %s names MPI rank %d, but this "
                              "process is rank %d of %d", addr, rank, t->rank, t->size);
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    if (t->handler) {
        rc = pst_status_set(st, PST_E_EXISTS, "%s is already served", t->addr);
    } else {
        t->handler = h;
        t->harg = arg;
        t->serving = 1;
        snprintf(bound, bound_len, "%s", t->addr);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void mpi_call(pst_transport *tr, const char *addr, int method, pst_msg *req,
                     int64_t timeout_ms, int flags, pst_call_done_fn done, void *arg) {
    (void)flags; /* every rank exists from the start: a request waits in its queue */
    mtransport *t = (mtransport *)tr;
    pst_status st = {0};
    int rank = -1;
    pcall *pc = NULL;
    if (method < 0 || method >= t->base.n_methods) {
        pst_status_set(&st, PST_E_INVALID, "method %d is not one of this transport's", method);
    } else if (pst_mpi_parse_address(addr, &rank, &st) < 0) {
        /* st names the address */
    } else if (rank >= t->size) {
        pst_status_set(&st, PST_E_INVALID, "task %s: the MPI job has only %d ranks", addr,
                       t->size);
    } else if (!(pc = calloc(1, sizeof *pc))) {
        pst_status_set(&st, PST_E_EXHAUSTED, "out of memory calling task %s", addr);
    }
    if (st.code) {
        if (req && req->release) req->release(req->owner);
        done(arg, &st, NULL, 0);
        return;
    }
    pc->rank = rank;
    pc->method = method;
    pc->done = done;
    pc->arg = arg;
    pc->timeout_ms = timeout_ms;
    pc->deadline = timeout_ms > 0 ? pst_clock_now() + (double)timeout_ms / 1000.0 : 0;
    pthread_mutex_lock(&t->mu);
    int stopped = t->stopped;
    pc->id = ++t->next_id;
    if (!stopped) {
        pc->next = t->calls;
        t->calls = pc;
    }
    pthread_mutex_unlock(&t->mu);
    if (stopped) {
        pst_status_set(&st, PST_E_CANCELLED, "the transport of %s is stopped", t->addr);
        if (req && req->release) req->release(req->owner);
        done(arg, &st, NULL, 0);
        free(pc);
        return;
    }
    if (send_msg(t, rank, TAG_REQ, KIND_REQ, method, 0, NULL, pc->id, req, &st) < 0) {
        pthread_mutex_lock(&t->mu);
        pcall *mine = take_call(t, pc->id, rank);
        pthread_mutex_unlock(&t->mu);
        if (mine) {
            pst_status_prefix(&st, "task %s: ", addr);
            done(arg, &st, NULL, 0);
            free(mine);
        }
    }
}

static void mpi_reply(pst_transport *tr, pst_server_call *c, const pst_status *st,
                      pst_msg *resp) {
    mtransport *t = (mtransport *)tr;
    pthread_mutex_lock(&t->mu);
    int cancelled = c->cancelled;
    if (!cancelled && --t->open_calls == 0) pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (cancelled) {
        if (resp && resp->release) resp->release(resp->owner);
    } else {
        pst_status ignore = {0};
        int code = st ? st->code : 0;
        send_msg(t, c->rank, TAG_RESP, KIND_RESP, c->method, code, code ? st->msg : NULL, c->id,
                 code ? NULL : resp, &ignore);
        if (code && resp && resp->release) resp->release(resp->owner);
    }
    free(c);
}

static void mpi_stop(pst_transport *tr) {
    mtransport *t = (mtransport *)tr;
    pthread_mutex_lock(&t->mu);
    t->serving = 0;
    t->stopped = 1;
    /* Handlers that are running finish; calls they left open are answered as cancelled when
     * their reply comes (the reply then only frees). */
    while (t->running_handlers > 0) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static void mpi_free(pst_transport *tr) {
    mtransport *t = (mtransport *)tr;

    mpi_stop(tr);
    /* Give messages in flight a moment (answers to peers that still wait), then end rx. */
    double until = pst_clock_now() + 2.0;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int busy = t->sends != NULL || t->recvs != NULL || t->open_calls > 0;
        pthread_mutex_unlock(&t->mu);
        if (!busy || pst_clock_now() >= until) break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&t->quit, 1);
    pthread_mutex_lock(&t->mu);
    pthread_cond_signal(&t->rx_cv);
    pthread_mutex_unlock(&t->mu);
    if (t->rx_started) pthread_join(t->rx, NULL);
    /* Calls still waiting fail; sends that never completed (their rank is gone) are given up. */
    pthread_mutex_lock(&t->mu);
    pcall *calls = t->calls;
    t->calls = NULL;
    sendop *sends = t->sends;
    t->sends = NULL;
    recvop *recvs = t->recvs;
    t->recvs = NULL;
    pthread_mutex_unlock(&t->mu);
    fail_calls(t, calls, PST_E_CANCELLED, "cancelled: the transport is shutting down");
    while (sends) {
        sendop *op = sends;
        sends = op->next;
        for (int k = 0; k < 2; k++) {
            if (op->req[k] == MPI_REQUEST_NULL) continue;
            MPI_Cancel(&op->req[k]);
            MPI_Request_free(&op->req[k]);
        }
        if (op->m.release) op->m.release(op->m.owner);
        free(op);
    }
    while (recvs) {
        recvop *r = recvs;
        recvs = r->next;
        if (r->req != MPI_REQUEST_NULL) MPI_Request_free(&r->req);
        /* MPI may still write the buffer: it stays allocated (a rank that stopped mid-message
         * is about to exit). */
        free(r);
    }
    pst_workpool_free(t->pool);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->rx_cv);
    pthread_mutex_lock(&world_mu);
    transport_live = 0;
    pthread_mutex_unlock(&world_mu);
    free(t);
}

static const pst_transport_ops mpi_ops = {
    .name = "mpi",
    .serve = mpi_serve,
    .call = mpi_call,
    .reply = mpi_reply,
    .stop = mpi_stop,
    .free = mpi_free,
};

pst_transport *pst_transport_mpi_new(const char *const *methods, int n_methods,
                                     const pst_transport_opts *o, pst_status *st) {
    int rank, size;
    if (pst_mpi_init(&rank, &size, st) < 0) return NULL;
    pthread_mutex_lock(&world_mu);
    int busy = transport_live;
    transport_live = 1;
    pthread_mutex_unlock(&world_mu);
    if (busy) {
        pst_status_set(st, PST_E_EXISTS, "MPI rank %d already has a transport (one per process)",
                       rank);
        return NULL;
    }
    mtransport *t = calloc(1, sizeof *t);
    if (!t) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for an MPI transport");
        goto fail;
    }
    t->base.ops = &mpi_ops;
    t->base.methods = methods;
    t->base.n_methods = n_methods;
    if (o) t->o = *o;
    t->rank = rank;
    t->size = size;
    snprintf(t->addr, sizeof t->addr, "mpi:%d", rank);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->rx_cv, &ca);
    pthread_condattr_destroy(&ca);
    int threads = t->o.server_threads > 0 ? t->o.server_threads : 4;
    if (!(t->pool = pst_workpool_new(threads, 1 << 16, st))) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        pthread_cond_destroy(&t->rx_cv);
        free(t);
        goto fail;
    }
    if (pthread_create(&t->rx, NULL, rx_main, t) != 0) {
        pst_status_set(st, PST_E_EXHAUSTED, "cannot start the MPI transport's thread");
        pst_workpool_free(t->pool);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        pthread_cond_destroy(&t->rx_cv);
        free(t);
        goto fail;
    }
    t->rx_started = 1;
    return &t->base;
fail:
    pthread_mutex_lock(&world_mu);
    transport_live = 0;
    pthread_mutex_unlock(&world_mu);
    return NULL;
}

#else /* no MPI in this build */

static int no_mpi(pst_status *st) {
    return pst_status_set(st, PST_E_UNIMPLEMENTED, "this pstrain was built without MPI "
                          "(install libopenmpi-dev and configure with -DPST_MPI=ON)");
}
int pst_mpi_available(void) { return 0; }
int pst_mpi_launched(void) { return 0; }
int pst_mpi_init(int *rank, int *size, pst_status *st) {
    (void)rank;
    (void)size;
    return no_mpi(st);
}
void pst_mpi_finalize(void) {}
void pst_mpi_abort(int code) { (void)code; }
int pst_mpi_gone_ranks(char *out, size_t len) {
    if (len) out[0] = 0;
    return 0;
}
void pst_mpi_report_termination(const char *who) { (void)who; }
pst_transport *pst_transport_mpi_new(const char *const *methods, int n_methods,
                                     const pst_transport_opts *o, pst_status *st) {
    (void)methods;
    (void)n_methods;
    (void)o;
    no_mpi(st);
    return NULL;
}

#endif

int pst_mpi_parse_address(const char *addr, int *rank, pst_status *st) {
    char *end = NULL;
    long r = -1;
    if (addr && strncmp(addr, "mpi:", 4) == 0 && addr[4] >= '0' && addr[4] <= '9')
        r = strtol(addr + 4, &end, 10);
    if (r < 0 || !end || *end || r > (1L << 24))
        return pst_status_set(st, PST_E_INVALID, "address '%s' is not an MPI address "
                              "\"mpi:RANK\"", addr ? addr : "(null)");
    *rank = (int)r;
    return 0;
}
