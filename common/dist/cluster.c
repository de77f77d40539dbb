#include "cluster.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "file.h"

/* Cluster JSON files are tiny; anything bigger is not one. */
#define MAX_SPEC_BYTES (16 << 20)

typedef struct cluster_job {
    char *name;
    int n_tasks;
    char **addrs;
} cluster_job;

struct pst_cluster {
    char *origin;
    int n_jobs;
    cluster_job *jobs;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void pst_cluster_free(pst_cluster *c) {
    if (c == NULL) return;
    for (int j = 0; j < c->n_jobs; j++) {
        for (int i = 0; i < c->jobs[j].n_tasks; i++) free(c->jobs[j].addrs[i]);
        free(c->jobs[j].addrs);
        free(c->jobs[j].name);
    }
    free(c->jobs);
    free(c->origin);
    free(c);
}

static const cluster_job *find_job(const pst_cluster *c, const char *job) {
    for (int j = 0; job && j < c->n_jobs; j++)
        if (strcmp(c->jobs[j].name, job) == 0) return &c->jobs[j];
    return NULL;
}

/* ---- Validation ------------------------------------------------------------------------ */

/* Job names become the "job:" part of device strings. */
static int valid_job_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= PST_DEVICE_NAME_MAX || !isalpha((unsigned char)s[0])) return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return 0;
    return 1;
}

static int host_char(char ch) {
    return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/* Checks "host:port" or "[v6]:port". Returns NULL when valid, else why not (a static or
 * buf-held phrase for the message's parentheses). */
static const char *address_problem(const char *a, int allow_port0, char *buf, size_t len) {
    const char *colon;
    if (strncmp(a, "mpi:", 4) == 0) { /* an MPI rank (transport_mpi.h): "mpi:RANK" */
        size_t n = strlen(a + 4);
        if (n == 0 || n > 7 || strspn(a + 4, "0123456789") != n)
            return "an MPI address is \"mpi:RANK\" with RANK a number";
        return NULL;
    }
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (close == NULL) return "no ']' closing the IPv6 address";
        if (close == a + 1) return "empty host";
        /* Hex digits, ':' and '.' (an embedded IPv4), then an optional "%zone". */
        const char *p = a + 1;
        int colons = 0;
        for (; p < close && *p != '%'; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return "the bracketed host is not an IPv6 address";
            colons += *p == ':';
        }
        if (colons < 2) return "the bracketed host is not an IPv6 address";
        for (p += p < close; p < close; p++)
            if (!host_char(*p)) return "bad IPv6 zone after '%'";
        if (close[1] != ':') return "no ':port' after the bracketed host";
        colon = close + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL) return "no ':port'";
        if (colon == a) return "empty host";
        if (memchr(a, ':', (size_t)(colon - a)))
            return "write IPv6 addresses in brackets, e.g. [::1]:2222";
        for (const char *p = a; p < colon; p++)
            if (!host_char(*p)) {
                snprintf(buf, len, "host '%.*s' may hold only letters, digits, '.', '-' and '_'",
                         (int)(colon - a), a);
                return buf;
            }
    }
    const char *port = colon + 1;
    size_t n = strlen(port);
    long v = 0;
    for (size_t i = 0; i < n && n <= 5; i++) {
        if (!isdigit((unsigned char)port[i])) {
            v = -1;
            break;
        }
        v = v * 10 + (port[i] - '0');
    }
    if (n == 0 || n > 5 || v < 0 || v > 65535) {
        snprintf(buf, len, "port '%s' is not a number in 1..65535", port);
        return buf;
    }
    if (v == 0 && !allow_port0)
        return "port 0: every task must have a fixed port the others can reach (port 0 is for "
               "bootstrap specs given with --port-file)";
    return NULL;
}

/* The first task (in job order) already holding address a, searched before job jx task ix. */
static int find_address(const pst_cluster *c, const char *a, int jx, int ix, int *fj, int *fi) {
    for (int j = 0; j <= jx; j++) {
        int n = j < jx ? c->jobs[j].n_tasks : ix;
        for (int i = 0; i < n; i++)
            if (strcmp(c->jobs[j].addrs[i], a) == 0) {
                *fj = j;
                *fi = i;
                return 1;
            }
    }
    return 0;
}

/* ---- Parsing ----------------------------------------------------------------------------- */

/* Line and column (1-based) of offset `at` in text. */
static void line_col(const char *text, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *p = text; *p && p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static cJSON *parse_json(const char *json, const char *origin, pst_status *st) {
    const char *end = NULL;
    /* cJSON decodes "\u0000" into a NUL that silently ends the string ("127.0.0.1:22\u0000x"
     * would read as "127.0.0.1:22"), so refuse the escape itself. */
    for (const char *p = json; (p = strstr(p, "\\u")) != NULL; p += 2) {
        size_t bs = 0; /* an escaped backslash ("\\u0000" as text) is not an escape */
        while (p - bs > json && p[-1 - (ptrdiff_t)bs] == '\\') bs++;
        if (bs % 2 == 0 && strncmp(p + 2, "0000", 4) == 0) {
            int line, col;
            line_col(json, p, &line, &col);
            pst_status_set(st, PST_E_INVALID, "%s: line %d, column %d: a string holds \\u0000 "
                           "(NUL), which no job name or address may contain", origin, line, col);
            return NULL;
        }
    }
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (root == NULL) {
        const char *at = end ? end : cJSON_GetErrorPtr();
        if (at == NULL) at = json;
        int line, col;
        line_col(json, at, &line, &col);
        size_t n = strcspn(at, "\r\n");
        if (*at == '\0')
            pst_status_set(st, PST_E_INVALID, "%s: invalid JSON: unexpected end at line %d, "
                           "column %d", origin, line, col);
        else
            pst_status_set(st, PST_E_INVALID, "%s: invalid JSON at line %d, column %d near '%.*s'",
                           origin, line, col, (int)(n < 20 ? n : 20), at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        pst_status_set(st, PST_E_INVALID, "%s: expected a JSON object of jobs, e.g. "
                       "{\"ps\": [\"host:port\"], \"worker\": [\"host:port\"]}", origin);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Builds a cluster from the job object `jobs`; `path` prefixes entry names ("" or "cluster.").
 * `bare` says the object was not found under "cluster" (for a hint about job files). */
static pst_cluster *from_object(const cJSON *jobs, const char *origin, const char *path, int bare,
                                int allow_port0,
                                pst_status *st) {
    pst_cluster *c = calloc(1, sizeof *c);
    int n = cJSON_GetArraySize(jobs);
    if (c == NULL || (c->origin = dup_str(origin)) == NULL ||
        (n > 0 && (c->jobs = calloc((size_t)n, sizeof *c->jobs)) == NULL)) {
        pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", origin);
        goto fail;
    }
    if (n == 0) {
        pst_status_set(st, PST_E_INVALID, "%s: the cluster has no jobs (expected e.g. "
                       "{\"ps\": [\"host:port\"], \"worker\": [\"host:port\"]})", origin);
        goto fail;
    }
    char why[256];
    const cJSON *jv;
    cJSON_ArrayForEach(jv, jobs) {
        const char *name = jv->string;
        if (!cJSON_IsArray(jv)) {
            pst_status_set(st, PST_E_INVALID, "%s: %s%s is not a list of \"host:port\" strings%s",
                           origin, path, name,
                           bare ? " (a job file holds the cluster under \"cluster\")" : "");
            goto fail;
        }
        if (!valid_job_name(name)) {
            pst_status_set(st, PST_E_INVALID, "%s: job name '%s' cannot appear in a device "
                           "string (a letter, then letters, digits or '_')", origin, name);
            goto fail;
        }
        if (find_job(c, name)) {
            pst_status_set(st, PST_E_INVALID, "%s: job '%s' appears twice", origin, name);
            goto fail;
        }
        int nt = cJSON_GetArraySize(jv);
        if (nt == 0) {
            pst_status_set(st, PST_E_INVALID, "%s: %s%s is an empty list (a job needs at least "
                           "one task)", origin, path, name);
            goto fail;
        }
        cluster_job *job = &c->jobs[c->n_jobs];
        if ((job->name = dup_str(name)) == NULL ||
            (job->addrs = calloc((size_t)nt, sizeof *job->addrs)) == NULL) {
            free(job->name);
            job->name = NULL;
            pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", origin);
            goto fail;
        }
        c->n_jobs++;
        const cJSON *av;
        cJSON_ArrayForEach(av, jv) {
            int i = job->n_tasks, dj, di;
            if (!cJSON_IsString(av)) {
                pst_status_set(st, PST_E_INVALID, "%s: %s%s[%d] is not a \"host:port\" string",
                               origin, path, name, i);
                goto fail;
            }
            const char *a = av->valuestring, *problem = address_problem(a, allow_port0, why, sizeof why);
            if (problem) {
                pst_status_set(st, PST_E_INVALID, "%s: %s%s[%d] \"%s\" is not host:port (%s)",
                               origin, path, name, i, a, problem);
                goto fail;
            }
            /* Port 0 ("pick one when starting") may repeat: those tasks bind different ports. */
            const char *port = strrchr(a, ':');
            if ((strcmp(port, ":0") != 0 || strncmp(a, "mpi:", 4) == 0) && find_address(c, a, c->n_jobs - 1, i, &dj, &di)) {
                pst_status_set(st, PST_E_INVALID, "%s: %s%s[%d] \"%s\" duplicates %s%s[%d]",
                               origin, path, name, i, a, path, c->jobs[dj].name, di);
                goto fail;
            }
            if ((job->addrs[i] = dup_str(a)) == NULL) {
                pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", origin);
                goto fail;
            }
            job->n_tasks++;
        }
    }
    return c;
fail:
    pst_cluster_free(c);
    return NULL;
}

pst_cluster *pst_cluster_parse(const char *json, const char *origin, pst_status *st) {
    return pst_cluster_parse_ex(json, origin, 0, st);
}

pst_cluster *pst_cluster_parse_ex(const char *json, const char *origin, int flags,
                                  pst_status *st) {
    int allow0 = (flags & PST_CLUSTER_ALLOW_PORT0) != 0;
    if (origin == NULL) origin = "cluster spec";
    cJSON *root = parse_json(json, origin, st);
    if (root == NULL) return NULL;
    pst_cluster *c;
    const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    if (cJSON_IsObject(nested))
        c = from_object(nested, origin, "cluster.", 0, allow0, st);
    else
        c = from_object(root, origin, "", 1, allow0, st);
    cJSON_Delete(root);
    return c;
}

/* Reads a whole small text file, NUL-terminated; the caller frees it. Through pst_file_read:
 * the size is checked before reading and a FIFO or directory is an error, never a hang. */
static char *read_text(const char *path, pst_status *st) {
    uint8_t *buf;
    size_t len;
    if (pst_file_read(path, MAX_SPEC_BYTES, &buf, &len, st) < 0) return NULL;
    char *text = malloc(len + 1);
    if (text == NULL) {
        free(buf);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
        return NULL;
    }
    if (len) memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    return text;
}

pst_cluster *pst_cluster_load(const char *path, pst_status *st) {
    return pst_cluster_load_ex(path, 0, st);
}

pst_cluster *pst_cluster_load_ex(const char *path, int flags, pst_status *st) {
    char *text = read_text(path, st);
    if (text == NULL) return NULL;
    pst_cluster *c = pst_cluster_parse_ex(text, path, flags, st);
    free(text);
    return c;
}

/* Reads TF_CONFIG's "task" into type/index and checks it names a task of c. */
static int parse_task(const cJSON *task, const pst_cluster *c, const char *origin,
                      char *task_type, size_t len, int *task_index, pst_status *st) {
    if (!cJSON_IsObject(task))
        return pst_status_set(st, PST_E_INVALID, "%s: \"task\" is not an object like "
                              "{\"type\": \"worker\", \"index\": 0}", origin);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(task, "type");
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(task, "index");
    if (!cJSON_IsString(type) || type->valuestring[0] == '\0')
        return pst_status_set(st, PST_E_INVALID, "%s: task.type is missing or not a job name",
                              origin);
    /* No default: a missing index would silently make every such process task 0 (a second
     * chief). */
    if (index == NULL)
        return pst_status_set(st, PST_E_INVALID, "%s: task.index is missing (e.g. "
                              "{\"type\": \"%s\", \"index\": 0})", origin, type->valuestring);
    double v = cJSON_IsNumber(index) ? index->valuedouble : -1;
    if (v < 0 || v > 1e9 || v != (double)(int)v)
        return pst_status_set(st, PST_E_INVALID, "%s: task.index is not a non-negative integer",
                              origin);
    int idx = (int)v;
    int rc = pst_cluster_check_task(c, type->valuestring, idx, st);
    if (rc < 0) return rc;
    if (task_type) {
        if (strlen(type->valuestring) >= len)
            return pst_status_set(st, PST_E_INVALID, "%s: task.type '%s' is longer than %zu bytes",
                                  origin, type->valuestring, len ? len - 1 : 0);
        strcpy(task_type, type->valuestring);
    }
    if (task_index) *task_index = idx;
    return 0;
}

pst_cluster *pst_cluster_from_env(const char *var, char *task_type, size_t len, int *task_index,
                                  pst_status *st) {
    if (var == NULL) var = "TF_CONFIG";
    if (task_type && len > 0) task_type[0] = '\0';
    if (task_index) *task_index = -1;
    const char *json = getenv(var);
    if (json == NULL || json[strspn(json, " \t\r\n")] == '\0') return NULL;
    cJSON *root = parse_json(json, var, st);
    if (root == NULL) return NULL;
    pst_cluster *c = NULL;
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    if (!cJSON_IsObject(jobs)) {
        pst_status_set(st, PST_E_INVALID, "%s: no \"cluster\" object (expected {\"cluster\": "
                       "{\"ps\": [...], \"worker\": [...]}, \"task\": {\"type\": \"worker\", "
                       "\"index\": 0}})", var);
        goto done;
    }
    c = from_object(jobs, var, "cluster.", 0, 0, st);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(root, "task");
    if (c && task && parse_task(task, c, var, task_type, len, task_index, st) < 0) {
        pst_cluster_free(c);
        c = NULL;
    }
done:
    cJSON_Delete(root);
    return c;
}

/* ---- Accessors ----------------------------------------------------------------------------- */

int pst_cluster_num_jobs(const pst_cluster *c) { return c->n_jobs; }

const char *pst_cluster_job_name(const pst_cluster *c, int i) {
    return i >= 0 && i < c->n_jobs ? c->jobs[i].name : NULL;
}

int pst_cluster_num_tasks(const pst_cluster *c, const char *job) {
    const cluster_job *j = find_job(c, job);
    return j ? j->n_tasks : 0;
}

const char *pst_cluster_address(const pst_cluster *c, const char *job, int index) {
    const cluster_job *j = find_job(c, job);
    return j && index >= 0 && index < j->n_tasks ? j->addrs[index] : NULL;
}

int pst_cluster_check_task(const pst_cluster *c, const char *job, int index, pst_status *st) {
    const cluster_job *j = find_job(c, job);
    if (j == NULL) {
        char names[512];
        size_t off = 0;
        names[0] = '\0';
        for (int i = 0; i < c->n_jobs && off < sizeof names; i++)
            off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                                    c->jobs[i].name);
        return pst_status_set(st, PST_E_INVALID, "%s: no job '%s' in the cluster (jobs: %s)",
                              c->origin, job ? job : "(null)", names);
    }
    if (index < 0 || index >= j->n_tasks)
        return pst_status_set(st, PST_E_INVALID, "%s: task %d of job '%s' does not exist: the "
                              "job has %d task%s (0..%d)", c->origin, index, job, j->n_tasks,
                              j->n_tasks == 1 ? "" : "s", j->n_tasks - 1);
    return 0;
}

int pst_cluster_task_device(const pst_cluster *c, const char *job, int index, char *out,
                            size_t len) {
    if (len > 0) out[0] = '\0';
    if (pst_cluster_address(c, job, index) == NULL) return PST_E_INVALID;
    int n = snprintf(out, len, "/job:%s/replica:0/task:%d", job, index);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) out[0] = '\0';
        return PST_E_INVALID;
    }
    return 0;
}

const char *pst_cluster_address_of_device(const pst_cluster *c, const char *device) {
    pst_device_name d;
    if (device == NULL || pst_device_parse(device, &d, NULL) < 0 || d.job[0] == '\0' ||
        d.replica > 0)
        return NULL;
    return pst_cluster_address(c, d.job, d.task < 0 ? 0 : d.task);
}

char *pst_cluster_to_json(const pst_cluster *c) {
    char *out = NULL, *text = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) return NULL;
    for (int j = 0; j < c->n_jobs; j++) {
        cJSON *arr = cJSON_CreateArray();
        if (arr == NULL || !cJSON_AddItemToObject(root, c->jobs[j].name, arr)) {
            cJSON_Delete(arr);
            goto done;
        }
        for (int i = 0; i < c->jobs[j].n_tasks; i++) {
            cJSON *s = cJSON_CreateString(c->jobs[j].addrs[i]);
            if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
                cJSON_Delete(s);
                goto done;
            }
        }
    }
    /* cJSON's allocator may differ from malloc; hand back memory the caller can free(). */
    if ((text = cJSON_PrintUnformatted(root)) != NULL) out = dup_str(text);
done:
    cJSON_free(text);
    cJSON_Delete(root);
    return out;
}
