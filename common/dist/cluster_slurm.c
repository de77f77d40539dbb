#include "cluster_slurm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Digits of one number in a range; more is surely not a host number. */
#define MAX_RANGE_DIGITS 9

/* ---- Host lists ------------------------------------------------------------------------- */

typedef struct strvec {
    char **v;
    int n, cap;
} strvec;

static void strvec_free(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strvec){0};
}

/* Appends s (taking ownership); -1 when out of memory (s is freed). */
static int strvec_push(strvec *s, char *str) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(str);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

static int host_char(char ch) {
    return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

/* Reads an unsigned decimal of 1..MAX_RANGE_DIGITS digits at *p; advances *p. -1 when none. */
static long read_number(const char **p, int *digits) {
    long v = 0;
    int n = 0;
    while (isdigit((unsigned char)**p) && n <= MAX_RANGE_DIGITS) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || n > MAX_RANGE_DIGITS) return -1;
    *digits = n;
    return v;
}

/* Parses the ranges between '[' and ']' ("01-03,7") into the number strings they stand for.
 * `body` points after '['; *end is set to the ']'. */
static int parse_ranges(const char *body, const char **end, const char *var, const char *list,
                        strvec *out, pst_status *st) {
    const char *p = body;
    for (;;) {
        int wlo = 0, whi = 0;
        const char *at = p;
        long lo = read_number(&p, &wlo), hi = lo;
        if (lo < 0)
            return pst_status_set(st, PST_E_INVALID, "%s '%s': expected a number (at most %d "
                                  "digits) at offset %d inside brackets", var, list,
                                  MAX_RANGE_DIGITS, (int)(at - list));
        if (*p == '-') {
            p++;
            at = p;
            hi = read_number(&p, &whi);
            if (hi < 0)
                return pst_status_set(st, PST_E_INVALID, "%s '%s': expected a number after '-' "
                                      "at offset %d", var, list, (int)(at - list));
            if (hi < lo)
                return pst_status_set(st, PST_E_INVALID, "%s '%s': range %.*s runs backwards", var,
                                      list, (int)(p - body), body);
        }
        if (hi - lo + 1 > PST_SLURM_MAX_TASKS - out->n)
            return pst_status_set(st, PST_E_INVALID, "%s '%s': more than %d hosts", var, list,
                                  PST_SLURM_MAX_TASKS);
        for (long v = lo; v <= hi; v++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%0*ld", wlo, v);
            char *s = strdup(buf);
            if (!s || strvec_push(out, s) < 0)
                return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
        }
        if (*p == ',') {
            p++;
            body = p;
            continue;
        }
        if (*p == ']') {
            *end = p;
            return 0;
        }
        if (*p == 0)
            return pst_status_set(st, PST_E_INVALID, "%s '%s': '[' without a closing ']'", var,
                                  list);
        return pst_status_set(st, PST_E_INVALID, "%s '%s': unexpected '%c' at offset %d inside "
                              "brackets (ranges are N or N-M, separated by ',')", var, list, *p,
                              (int)(p - list));
    }
}

/* Expands one host item (no top-level commas) of length len, appending to out. */
static int expand_item(const char *item, size_t len, const char *var, const char *list,
                       strvec *out, pst_status *st) {
    strvec cur = {0}; /* the item's expansions so far */
    strvec nums = {0};
    int rc = 0;
    char *empty = strdup("");
    if (!empty || strvec_push(&cur, empty) < 0) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
        goto done;
    }
    if (len == 0) {
        rc = pst_status_set(st, PST_E_INVALID, "%s '%s': empty host name at offset %d", var, list,
                            (int)(item - list));
        goto done;
    }
    for (const char *p = item; p < item + len;) {
        const char *piece;
        size_t plen;
        strvec alts = {0};
        if (*p == '[') {
            const char *close = NULL;
            if ((rc = parse_ranges(p + 1, &close, var, list, &nums, st)) < 0) goto done;
            alts = nums;
            nums = (strvec){0};
            p = close + 1;
        } else if (host_char(*p)) {
            piece = p;
            while (p < item + len && host_char(*p)) p++;
            plen = (size_t)(p - piece);
            char *s = malloc(plen + 1);
            if (!s || strvec_push(&alts, s) < 0) {
                rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
                goto done;
            }
            memcpy(s, piece, plen);
            s[plen] = 0;
        } else {
            rc = pst_status_set(st, PST_E_INVALID, "%s '%s': unexpected '%c' at offset %d (host "
                                "names hold letters, digits, '-', '.' and '_')", var, list, *p,
                                (int)(p - list));
            goto done;
        }
        /* cur x alts */
        if ((long)cur.n * alts.n > PST_SLURM_MAX_TASKS - out->n) {
            strvec_free(&alts);
            rc = pst_status_set(st, PST_E_INVALID, "%s '%s': more than %d hosts", var, list,
                                PST_SLURM_MAX_TASKS);
            goto done;
        }
        strvec next = {0};
        for (int i = 0; i < cur.n && rc == 0; i++)
            for (int j = 0; j < alts.n && rc == 0; j++) {
                size_t a = strlen(cur.v[i]), b = strlen(alts.v[j]);
                char *s = malloc(a + b + 1);
                if (!s || strvec_push(&next, s) < 0) {
                    rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
                    break;
                }
                memcpy(s, cur.v[i], a);
                memcpy(s + a, alts.v[j], b + 1);
            }
        strvec_free(&alts);
        strvec_free(&cur);
        cur = next;
        if (rc < 0) goto done;
    }
    for (int i = 0; i < cur.n; i++) {
        if (strvec_push(out, cur.v[i]) < 0) {
            cur.v[i] = NULL;
            rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
            goto done;
        }
        cur.v[i] = NULL;
    }
done:
    strvec_free(&cur);
    strvec_free(&nums);
    return rc;
}

int pst_cluster_slurm_hostlist(const char *list, const char *var, char ***hosts, int *n,
                               pst_status *st) {
    *hosts = NULL;
    *n = 0;
    if (!var) var = "host list";
    if (!list || !*list) return pst_status_set(st, PST_E_INVALID, "%s is empty", var);
    strvec out = {0};
    const char *item = list;
    int depth = 0;
    for (const char *p = list;; p++) {
        if (*p == '[') {
            if (depth++)
                return strvec_free(&out), pst_status_set(st, PST_E_INVALID, "%s '%s': '[' inside "
                                                         "brackets at offset %d", var, list,
                                                         (int)(p - list));
        } else if (*p == ']') {
            if (!depth--)
                return strvec_free(&out), pst_status_set(st, PST_E_INVALID, "%s '%s': ']' without "
                                                         "'[' at offset %d", var, list,
                                                         (int)(p - list));
        } else if ((*p == ',' && depth == 0) || *p == 0) {
            if (*p == 0 && depth)
                return strvec_free(&out), pst_status_set(st, PST_E_INVALID, "%s '%s': '[' without "
                                                         "a closing ']'", var, list);
            int rc = expand_item(item, (size_t)(p - item), var, list, &out, st);
            if (rc < 0) return strvec_free(&out), rc;
            if (*p == 0) break;
            item = p + 1;
        }
    }
    *hosts = out.v;
    *n = out.n;
    return 0;
}

void pst_cluster_slurm_hosts_free(char **hosts, int n) {
    for (int i = 0; hosts && i < n; i++) free(hosts[i]);
    free(hosts);
}

/* ---- Tasks per node --------------------------------------------------------------------- */

int pst_cluster_slurm_tasks_per_node(const char *list, const char *var, int **counts, int *n,
                                     pst_status *st) {
    *counts = NULL;
    *n = 0;
    if (!var) var = "tasks per node";
    if (!list || !*list) return pst_status_set(st, PST_E_INVALID, "%s is empty", var);
    int *v = NULL, len = 0, cap = 0;
    const char *p = list;
    for (;;) {
        int digits;
        const char *at = p;
        long count = read_number(&p, &digits), reps = 1;
        if (count < 1) {
            free(v);
            return pst_status_set(st, PST_E_INVALID, "%s '%s': expected a task count >= 1 at "
                                  "offset %d (the form is N or N(xR), separated by ',')", var,
                                  list, (int)(at - list));
        }
        if (p[0] == '(') {
            at = p;
            if (p[1] != 'x') {
                free(v);
                return pst_status_set(st, PST_E_INVALID, "%s '%s': expected '(x' at offset %d",
                                      var, list, (int)(at - list));
            }
            p += 2;
            reps = read_number(&p, &digits);
            if (reps < 1 || *p != ')') {
                free(v);
                return pst_status_set(st, PST_E_INVALID, "%s '%s': a repeat '(xR)' needs R >= 1 "
                                      "and ')' (at offset %d)", var, list, (int)(at - list));
            }
            p++;
        }
        if (count > PST_SLURM_MAX_TASKS || reps > PST_SLURM_MAX_TASKS - len) {
            free(v);
            return pst_status_set(st, PST_E_INVALID, "%s '%s': more than %d tasks or nodes", var,
                                  list, PST_SLURM_MAX_TASKS);
        }
        if (len + reps > cap) {
            int ncap = cap ? cap : 8;
            while (ncap < len + reps) ncap *= 2;
            int *nv = realloc(v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                free(v);
                return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", var);
            }
            v = nv;
            cap = ncap;
        }
        for (long r = 0; r < reps; r++) v[len++] = (int)count;
        if (*p == 0) break;
        if (*p != ',') {
            free(v);
            return pst_status_set(st, PST_E_INVALID, "%s '%s': unexpected '%c' at offset %d", var,
                                  list, *p, (int)(p - list));
        }
        p++;
    }
    *counts = v;
    *n = len;
    return 0;
}

/* ---- The cluster ------------------------------------------------------------------------ */

/* Slurm's host order: equal text compares equal; runs of digits compare as numbers (n2 < n10);
 * numbers equal in value but not in padding fall back to plain string order. */
static int host_cmp(const char *a, const char *b) {
    const char *a0 = a, *b0 = b;
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t na = 0, nb = 0;
            while (isdigit((unsigned char)a[na])) na++;
            while (isdigit((unsigned char)b[nb])) nb++;
            if (na != nb) return na < nb ? -1 : 1;
            int c = memcmp(a, b, na);
            if (c) return c;
            a += na;
            b += nb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    if (*a || *b) return *a ? 1 : -1;
    return strcmp(a0, b0);
}

typedef struct host_tasks {
    const char *host;
    int count;
} host_tasks;

static int host_tasks_cmp(const void *x, const void *y) {
    return host_cmp(((const host_tasks *)x)->host, ((const host_tasks *)y)->host);
}

/* A required variable as a whole number in [lo, hi]. */
static int env_int(const char *var, long lo, long hi, long *out, pst_status *st) {
    const char *v = getenv(var);
    if (!v || !*v)
        return pst_status_set(st, PST_E_INVALID, "%s is not set: --cluster-from slurm reads the "
                              "environment srun gives each task (run the task under srun)", var);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return pst_status_set(st, PST_E_INVALID, "%s '%s' is not a whole number in [%ld, %ld]",
                              var, v, lo, hi);
    *out = x;
    return 0;
}

/* An optional setting: the option when > 0, else the variable when set, else dflt. */
static int setting(int opt, const char *optname, const char *var, long lo, long hi, long dflt,
                   long *out, pst_status *st) {
    if (opt < 0)
        return pst_status_set(st, PST_E_INVALID, "%s %d is negative", optname, opt);
    if (opt > 0) {
        if (opt < lo || opt > hi)
            return pst_status_set(st, PST_E_INVALID, "%s %d is not in [%ld, %ld]", optname, opt,
                                  lo, hi);
        *out = opt;
        return 0;
    }
    const char *v = getenv(var);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    return env_int(var, lo, hi, out, st);
}

pst_cluster *pst_cluster_from_slurm(const pst_cluster_slurm_opts *o, char *task_type, size_t len,
                                    int *task_index, pst_status *st) {
    pst_cluster_slurm_opts none = {0};
    if (!o) o = &none;
    if (task_type && len) task_type[0] = 0;
    if (task_index) *task_index = -1;
    char **hosts = NULL;
    int *counts = NULL, n_hosts = 0, n_counts = 0;
    host_tasks *ht = NULL;
    char *json = NULL;
    pst_cluster *c = NULL;
    long rank, ntasks, num_ps, port_base;
    if (env_int("SLURM_STEP_NUM_TASKS", 1, PST_SLURM_MAX_TASKS, &ntasks, st) < 0 ||
        env_int("SLURM_PROCID", 0, PST_SLURM_MAX_TASKS, &rank, st) < 0)
        goto done;
    if (rank >= ntasks) {
        pst_status_set(st, PST_E_INVALID, "SLURM_PROCID %ld is not below SLURM_STEP_NUM_TASKS "
                       "%ld", rank, ntasks);
        goto done;
    }
    const char *nodelist = getenv("SLURM_STEP_NODELIST");
    const char *per_node = getenv("SLURM_STEP_TASKS_PER_NODE");
    if (!nodelist || !*nodelist || !per_node || !*per_node) {
        pst_status_set(st, PST_E_INVALID, "%s is not set: --cluster-from slurm reads the "
                       "environment srun gives each task (run the task under srun)",
                       !nodelist || !*nodelist ? "SLURM_STEP_NODELIST"
                                               : "SLURM_STEP_TASKS_PER_NODE");
        goto done;
    }
    if (pst_cluster_slurm_hostlist(nodelist, "SLURM_STEP_NODELIST", &hosts, &n_hosts, st) < 0 ||
        pst_cluster_slurm_tasks_per_node(per_node, "SLURM_STEP_TASKS_PER_NODE", &counts,
                                         &n_counts, st) < 0)
        goto done;
    if (n_counts != n_hosts) {
        pst_status_set(st, PST_E_INVALID, "SLURM_STEP_TASKS_PER_NODE '%s' gives task counts for "
                       "%d hosts, but SLURM_STEP_NODELIST '%s' has %d", per_node, n_counts,
                       nodelist, n_hosts);
        goto done;
    }
    long sum = 0, max_per_host = 0;
    for (int i = 0; i < n_counts; i++) {
        sum += counts[i];
        if (counts[i] > max_per_host) max_per_host = counts[i];
    }
    if (sum != ntasks) {
        pst_status_set(st, PST_E_INVALID, "SLURM_STEP_TASKS_PER_NODE '%s' adds up to %ld tasks, "
                       "but SLURM_STEP_NUM_TASKS is %ld", per_node, sum, ntasks);
        goto done;
    }
    if (setting(o->num_ps, "the number of PS", "PST_SLURM_PS", 1, PST_SLURM_MAX_TASKS, 1,
                &num_ps, st) < 0 ||
        setting(o->port_base, "the port base", "PST_SLURM_PORT_BASE", 1, 65535,
                PST_SLURM_DEFAULT_PORT_BASE, &port_base, st) < 0)
        goto done;
    if (num_ps >= ntasks) {
        pst_status_set(st, PST_E_INVALID, "%ld PS (--ps or PST_SLURM_PS) leave no worker among "
                       "the step's %ld tasks (SLURM_STEP_NUM_TASKS): start more tasks than PS",
                       num_ps, ntasks);
        goto done;
    }
    if (port_base + max_per_host - 1 > 65535) {
        pst_status_set(st, PST_E_INVALID, "port base %ld (--port-base or PST_SLURM_PORT_BASE) "
                       "plus %ld tasks on one host (SLURM_STEP_TASKS_PER_NODE '%s') runs past "
                       "port 65535", port_base, max_per_host, per_node);
        goto done;
    }
    /* Rule 1: hosts sorted, each with its count. */
    if (!(ht = malloc((size_t)n_hosts * sizeof *ht))) {
        pst_status_set(st, PST_E_EXHAUSTED, "SLURM_STEP_NODELIST: out of memory");
        goto done;
    }
    for (int i = 0; i < n_hosts; i++) ht[i] = (host_tasks){hosts[i], counts[i]};
    qsort(ht, (size_t)n_hosts, sizeof *ht, host_tasks_cmp);
    for (int i = 1; i < n_hosts; i++)
        if (strcmp(ht[i - 1].host, ht[i].host) == 0) {
            pst_status_set(st, PST_E_INVALID, "SLURM_STEP_NODELIST '%s' names host '%s' twice",
                           nodelist, ht[i].host);
            goto done;
        }
    /* Rules 2 and 3: addresses host after host; ps first, then worker. Each address is at
     * most a host name (< 4 KiB of list) plus ":65535" and JSON punctuation. */
    size_t cap = 64;
    for (int i = 0; i < n_hosts; i++) cap += (size_t)ht[i].count * (strlen(ht[i].host) + 12);
    if (!(json = malloc(cap))) {
        pst_status_set(st, PST_E_EXHAUSTED, "SLURM_STEP_NODELIST: out of memory");
        goto done;
    }
    size_t off = (size_t)snprintf(json, cap, "{\"ps\": [");
    long r = 0;
    const char *my_host = NULL;
    long my_offset = -1;
    for (int i = 0; i < n_hosts; i++)
        for (int k = 0; k < ht[i].count; k++, r++) {
            if (r == num_ps) off += (size_t)snprintf(json + off, cap - off, "], \"worker\": [");
            off += (size_t)snprintf(json + off, cap - off, "%s\"%s:%ld\"",
                                    r == 0 || r == num_ps ? "" : ", ", ht[i].host,
                                    port_base + k);
            if (r == rank) {
                my_host = ht[i].host;
                my_offset = k;
            }
        }
    snprintf(json + off, cap - off, "]}");
    /* Rule 4: the tasks really are where the block rule puts them. */
    const char *node = getenv("SLURMD_NODENAME"), *local = getenv("SLURM_LOCALID");
    if (node && *node && strcmp(node, my_host) != 0) {
        pst_status_set(st, PST_E_INVALID, "SLURM_PROCID %ld runs on SLURMD_NODENAME '%s', but the "
                       "block rule over SLURM_STEP_NODELIST '%s' (hosts sorted) puts it on '%s': "
                       "start the step with srun's default block distribution (-m block)",
                       rank, node, nodelist, my_host);
        goto done;
    }
    if (local && *local) {
        char *end;
        long lid = strtol(local, &end, 10);
        if (*end || lid != my_offset) {
            pst_status_set(st, PST_E_INVALID, "SLURM_LOCALID '%s' of SLURM_PROCID %ld is not its "
                           "offset %ld on host '%s' by the block rule: start the step with srun's "
                           "default block distribution (-m block)", local, rank, my_offset,
                           my_host);
            goto done;
        }
    }
    if (!(c = pst_cluster_parse(json, "SLURM_STEP_NODELIST", st))) goto done;
    const char *job = rank < num_ps ? "ps" : "worker";
    if (task_type && len) snprintf(task_type, len, "%s", job);
    if (task_index) *task_index = (int)(rank < num_ps ? rank : rank - num_ps);
done:
    free(json);
    free(ht);
    free(counts);
    pst_cluster_slurm_hosts_free(hosts, n_hosts);
    return c;
}

/* ---- Binaries --------------------------------------------------------------------------- */

/* Parses a flag's value as an int in [lo, hi]. */
static int flag_int(const char *flag, const char *v, int lo, int hi, int *out, pst_status *st) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || errno || *end || x < lo || x > hi)
        return pst_status_set(st, PST_E_INVALID, "%s: '%s' is not a whole number in [%d, %d]",
                              flag, v ? v : "", lo, hi);
    *out = (int)x;
    return 0;
}

int pst_cluster_slurm_main(int *argc, char **argv, const char *job, pst_status *st) {
    int from = -1;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "--cluster-from") == 0) from = i;
    if (from < 0) return 0;
    const char *src = from + 1 < *argc ? argv[from + 1] : NULL;
    if (!src || strcmp(src, "slurm") != 0)
        return pst_status_set(st, PST_E_INVALID, "--cluster-from: '%s' is not a source pstrain "
                              "knows (slurm; TF_CONFIG is read without a flag)", src ? src : "");
    /* First read every flag, then (on success only) drop the ones taken from argv. */
    pst_cluster_slurm_opts o = {0};
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *v = i + 1 < *argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--cluster") == 0 || strcmp(a, "--task") == 0)
            return pst_status_set(st, PST_E_INVALID, "%s and --cluster-from slurm both say where "
                                  "the task is: give one", a);
        if (i == from)
            i++;
        else if (strcmp(a, "--ps") == 0 && (rc = flag_int(a, v, 1, PST_SLURM_MAX_TASKS,
                                                          &o.num_ps, st)) == 0)
            i++;
        else if (strcmp(a, "--port-base") == 0 && (rc = flag_int(a, v, 1, 65535, &o.port_base,
                                                                 st)) == 0)
            i++;
        if (rc < 0) return rc;
    }
    char type[16];
    int index = -1;
    pst_cluster *c = pst_cluster_from_slurm(&o, type, sizeof type, &index, st);
    if (!c) return st ? st->code : PST_E_INVALID;
    int rc = 0;
    char *spec = NULL, *tf = NULL;
    if (job && strcmp(job, type) != 0) {
        rc = pst_status_set(st, PST_E_INVALID, "--cluster-from slurm: SLURM_PROCID %s is %s task "
                            "%d (ranks 0..%d are PS), but this program runs %s tasks (srun "
                            "--multi-prog starts pstrain-ps and pstrain-worker in one step; see "
                            "deploy/slurm)", getenv("SLURM_PROCID"), type, index,
                            pst_cluster_num_tasks(c, "ps") - 1, job);
        goto done;
    }
    if (!(spec = pst_cluster_to_json(c))) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "--cluster-from slurm: out of memory");
        goto done;
    }
    size_t n = strlen(spec) + strlen(type) + 64;
    if (!(tf = malloc(n))) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "--cluster-from slurm: out of memory");
        goto done;
    }
    snprintf(tf, n, "{\"cluster\": %s, \"task\": {\"type\": \"%s\", \"index\": %d}}", spec, type,
             index);
    if (setenv("TF_CONFIG", tf, 1) != 0) {
        rc = pst_status_set(st, PST_E_IO, "--cluster-from slurm: cannot set TF_CONFIG: %s",
                            strerror(errno));
        goto done;
    }
    int keep = 1;
    for (int i = 1; i < *argc; i++) {
        if (i == from || strcmp(argv[i], "--ps") == 0 || strcmp(argv[i], "--port-base") == 0)
            i++; /* the flag and its value */
        else
            argv[keep++] = argv[i];
    }
    argv[keep] = NULL;
    *argc = keep;
    rc = 1;
done:
    free(tf);
    free(spec);
    pst_cluster_free(c);
    return rc;
}
