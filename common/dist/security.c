/* security: job tokens, TLS material and the cleartext rule (see security.h). */
#include "security.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "log.h"

#define MAX_PEM_BYTES (1u << 20)

struct pst_security {
    char *token; /* NULL: none */
    char *ca, *cert, *key;
    int insecure;
};

void pst_security_free(pst_security *s) {
    if (!s) return;
    if (s->token) {
        /* Not strictly secret once in memory, but no reason to leave it in freed heap. */
        volatile char *p = s->token;
        for (size_t i = 0; p[i]; i++) p[i] = 0;
        free(s->token);
    }
    free(s->ca);
    free(s->cert);
    if (s->key) {
        volatile char *p = s->key;
        for (size_t i = 0; p[i]; i++) p[i] = 0;
        free(s->key);
    }
    free(s);
}

/* A token: printable ASCII without spaces, 32 to 256 characters (ours are 64 hex digits). */
static int token_problem(const char *t, size_t n, const char **why) {
    if (n < 32) {
        *why = "shorter than 32 characters";
        return -1;
    }
    if (n > 256) {
        *why = "longer than 256 characters";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~') {
            *why = "not printable ASCII without spaces";
            return -1;
        }
    return 0;
}

static int take_token(pst_security *s, const char *t, size_t n, const char *origin,
                      pst_status *st) {
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r')) n--; /* a file's final newline */
    const char *why;
    if (token_problem(t, n, &why) < 0)
        return pst_status_set(st, PST_E_INVALID, "%s: the job token is %s", origin, why);
    s->token = strndup(t, n);
    if (!s->token) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    return 0;
}

static int load_token_file(pst_security *s, const char *path, pst_status *st) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077))
        return pst_status_set(st, PST_E_PERMISSION, "%s: the job token file is readable by "
                              "others (mode %03o); chmod 600 it", path, (unsigned)(sb.st_mode & 0777));
    uint8_t *buf;
    size_t len;
    int rc = pst_file_read(path, 4096, &buf, &len, st);
    if (rc < 0) return rc;
    rc = take_token(s, (const char *)buf, len, path, st);
    free(buf);
    return rc;
}

static int load_pem(const char *dir, const char *name, char **out, pst_status *st) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf;
    size_t len;
    int rc = pst_file_read(path, MAX_PEM_BYTES, &buf, &len, st);
    if (rc < 0) return rc;
    char *s = malloc(len + 1);
    if (!s) {
        free(buf);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
    }
    memcpy(s, buf, len);
    s[len] = '\0';
    free(buf);
    if (strlen(s) != len || strstr(s, "-----BEGIN ") == NULL) {
        free(s);
        return pst_status_set(st, PST_E_INVALID, "%s is not a PEM file", path);
    }
    *out = s;
    return 0;
}

pst_security *pst_security_new(const pst_security_opts *o, pst_status *st) {
    pst_security_opts d = {0};
    if (!o) o = &d;
    pst_security *s = calloc(1, sizeof *s);
    if (!s) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    s->insecure = o->insecure;
    int rc = 0;
    const char *file = o->token_file ? o->token_file : getenv("PST_JOB_TOKEN_FILE");
    const char *env = getenv("PST_JOB_TOKEN");
    if (o->token)
        rc = take_token(s, o->token, strlen(o->token), "the given token", st);
    else if (file && file[0])
        rc = load_token_file(s, file, st);
    else if (env && env[0])
        rc = take_token(s, env, strlen(env), "PST_JOB_TOKEN", st);
    else if (o->require_token)
        rc = pst_status_set(st, PST_E_UNAUTHENTICATED,
                            "no job token: set PST_JOB_TOKEN_FILE (or --token-file) to the job's "
                            "token file, made with `pstrain token new FILE`");
    const char *dir = o->tls_dir ? o->tls_dir : getenv("PST_TLS_DIR");
    if (rc == 0 && dir && dir[0]) {
        if ((rc = load_pem(dir, "ca.crt", &s->ca, st)) == 0 &&
            (rc = load_pem(dir, "task.crt", &s->cert, st)) == 0)
            rc = load_pem(dir, "task.key", &s->key, st);
    }
    if (rc < 0) {
        pst_security_free(s);
        return NULL;
    }
    return s;
}

const char *pst_security_token(const pst_security *s) { return s ? s->token : NULL; }
int pst_security_tls(const pst_security *s) { return s && s->ca != NULL; }
const char *pst_security_ca_pem(const pst_security *s) { return s ? s->ca : NULL; }
const char *pst_security_cert_pem(const pst_security *s) { return s ? s->cert : NULL; }
const char *pst_security_key_pem(const pst_security *s) { return s ? s->key : NULL; }

int pst_security_token_matches(const pst_security *s, const char *presented, size_t len) {
    if (!s || !s->token || !presented) return 0;
    size_t n = strlen(s->token);
    /* Compare every byte whatever the outcome, so timing tells nothing about the prefix. */
    unsigned diff = (unsigned)(len != n);
    for (size_t i = 0; i < n; i++) diff |= (unsigned)(uint8_t)s->token[i] ^ (unsigned)(uint8_t)(i < len ? presented[i] : 0);
    return diff == 0;
}

int pst_security_is_loopback_host(const char *host, size_t len) {
    char h[256];
    if (len >= sizeof h) return 0;
    memcpy(h, host, len);
    h[len] = '\0';
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        memmove(h, h + 1, len - 2);
        h[len - 2] = '\0';
    }
    if (strcasecmp(h, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int pst_security_check_cluster(const pst_security *s, const pst_cluster *c, pst_status *st) {
    if (pst_security_tls(s)) return 0;
    const char *first = NULL;
    for (int j = 0; j < pst_cluster_num_jobs(c) && !first; j++) {
        const char *job = pst_cluster_job_name(c, j);
        for (int i = 0; i < pst_cluster_num_tasks(c, job) && !first; i++) {
            const char *a = pst_cluster_address(c, job, i);
            const char *colon = strrchr(a, ':');
            if (!colon || !pst_security_is_loopback_host(a, (size_t)(colon - a))) first = a;
        }
    }
    if (!first) return 0;
    if (s && s->insecure) {
        static int warned;
        if (!warned++)
            pst_log_msg(PST_LOG_WARN, "warning: --insecure: the job token and every tensor travel "
                        "in cleartext to non-loopback addresses (e.g. %s); anyone on the network "
                        "can read them and, with the token, control the job. Use --tls-dir.",
                        first);
        return 0;
    }
    return pst_status_set(st, PST_E_PERMISSION,
                          "task address %s is not loopback: without TLS the job token would "
                          "travel in cleartext; give --tls-dir DIR (scripts/tls_certs.sh makes "
                          "one) or, on a trusted network only, --insecure",
                          first);
}

int pst_security_token_new(const char *path, pst_status *st) {
    uint8_t raw[PST_TOKEN_HEX_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return pst_status_set(st, PST_E_IO, "getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    char hex[PST_TOKEN_HEX_LEN + 2];
    for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[PST_TOKEN_HEX_LEN] = '\n';
    hex[PST_TOKEN_HEX_LEN + 1] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return pst_status_set(st, PST_E_IO, "cannot create token file %s: %s", path,
                              strerror(errno));
    int rc = pst_file_write_all(fd, hex, PST_TOKEN_HEX_LEN + 1, path, st);
    if (rc == 0 && fsync(fd) < 0)
        rc = pst_status_set(st, PST_E_IO, "fsync %s: %s", path, strerror(errno));
    close(fd);
    if (rc < 0) unlink(path);
    return rc;
}
