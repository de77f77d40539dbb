/*
 * security — who may talk to a task: the job's secret token, mutual TLS, and the rule for when
 * cleartext is allowed.
 *
 * Every job has a token (64 hex digits from the kernel's random source). Every call carries it
 * as gRPC call credentials and every server checks it before any handler runs, so a client that
 * is not a member of the job changes nothing (UNAUTHENTICATED). With a TLS directory (ca.crt,
 * task.crt, task.key; scripts/tls_certs.sh makes them) connections are mutual TLS: the server
 * requires a client certificate signed by the job's CA and the client verifies the server's.
 * Without TLS the token travels in cleartext, so tasks start only when every address of the
 * cluster is loopback, or when the user says --insecure (a warning names the risk).
 *
 * The token comes from a file ($PST_JOB_TOKEN_FILE or --token-file) or from $PST_JOB_TOKEN,
 * never from the command line, where `ps` would show it.
 *
 *     pst_security *sec = pst_security_new(&(pst_security_opts){.tls_dir = dir}, &st);
 *     if (!sec || pst_security_check_cluster(sec, cluster, &st) < 0) ... // refuse to start
 *     pst_transport_opts to = {.security = sec};                          // every call and server
 */
#ifndef PST_SECURITY_H
#define PST_SECURITY_H

#include <stddef.h>

#include "cluster.h"
#include "status.h"

#define PST_TOKEN_HEX_LEN 64
/* The gRPC metadata key that carries the token (lower case, as HTTP/2 wants). */
#define PST_TOKEN_METADATA_KEY "pstrain-job-token"

typedef struct pst_security_opts {
    const char *token_file; /* NULL: $PST_JOB_TOKEN_FILE, else $PST_JOB_TOKEN */
    const char *token;      /* the token itself (library users, tests); wins over both */
    const char *tls_dir;    /* NULL: $PST_TLS_DIR; NULL or "" there too: no TLS */
    int insecure;           /* allow cleartext on non-loopback addresses (--insecure) */
    int require_token;      /* fail when no token is found (tasks: 1) */
} pst_security_opts;

typedef struct pst_security pst_security;

/* Loads the token and the TLS files. NULL with st naming the file or variable at fault: a
 * token that is not 64 hex digits (or at least 32 characters of printable ASCII), a token file
 * readable by others, a missing or unreadable certificate. */
pst_security *pst_security_new(const pst_security_opts *o, pst_status *st);
void pst_security_free(pst_security *s);

/* The rule for cleartext: with TLS, or --insecure, any cluster; otherwise every address of
 * the cluster must be loopback (127.0.0.0/8, [::1], localhost), else an error naming the first
 * address that is not. With --insecure on a non-loopback cluster, prints a warning once. */
int pst_security_check_cluster(const pst_security *s, const pst_cluster *c, pst_status *st);

const char *pst_security_token(const pst_security *s); /* NULL when none */
int pst_security_tls(const pst_security *s);           /* 1 with TLS */
/* PEM text of the job CA, this task's certificate chain and key (NULL without TLS). */
const char *pst_security_ca_pem(const pst_security *s);
const char *pst_security_cert_pem(const pst_security *s);
const char *pst_security_key_pem(const pst_security *s);
/* 1 when presented equals the token (constant time in the token's length). */
int pst_security_token_matches(const pst_security *s, const char *presented, size_t len);

/* Writes a new random token to path (mode 0600, created exclusively: an existing file is an
 * error). */
int pst_security_token_new(const char *path, pst_status *st);
/* 1 when host (without port; brackets allowed) is a loopback address. */
int pst_security_is_loopback_host(const char *host, size_t len);

#endif
