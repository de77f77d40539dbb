#include "inspect.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "flags.h"
#include "jobfile.h"
#include "imported_model.h"
#include "model.h"
#include "layers.h"
#include "losses.h"
#include "metagraph.h"
#include "nets.h"
#include "ops.h"
#include "optimizer.h"
#include "task.h"
#include "task_client.h"
#include "transport.h"
#include "replica_setter.h"
#include "security.h"
#include "file.h"
#include "format.h"

static int usage(void) {
    fprintf(stderr, "usage: pstrain inspect placement --job FILE --dry-run\n"
                    "  Builds worker 0's training graph for the job file's model and optimizer\n"
                    "  and prints which PS task holds each variable; starts nothing.\n"
                    "       pstrain inspect placement --cluster FILE|RUN [--timeout-ms N]\n"
                    "  Asks every PS of a running job for its variables and slices, bytes and\n"
                    "  pull/update counts.\n");
    return 2;
}

/* Worker 0's graph exactly as pstrain-worker --job FILE builds it (the same flag parser and
 * model builder), under the replica device setter. */
static int placement_dry_run(const char *path) {
    pst_status st = {0};
    pst_train_flags f;
    char err[1024] = "";
    char *args[] = {"pstrain-worker", "--job", (char *)path, NULL};
    if (pst_train_flags_parse(3, args, &f, err, sizeof err) != 0) {
        fprintf(stderr, "pstrain inspect placement: %s%s", err,
                err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
        pst_train_flags_destroy(&f);
        return 1;
    }
    model m = {0};
    pst_imported_model *im = NULL; /* a job file with "meta": a TF user's graph */
    pst_replica_setter *rs = NULL;
    const pst_cluster *c = f.jobfile->cluster;
    int rc = 1, num_ps = f.job_ps;
    const pst_net_def *net = pst_net_lookup(f.model);
    if (net == NULL) {
        pst_status_set(&st, PST_E_INVALID, "%s: unknown model '%s' (softmax, mlp, simple_cnn, "
                       "cnn5, lenet5, vgg16, bag_of_ids)", path, f.model);
        goto done;
    }
    if (f.job_workers < 1) {
        pst_status_set(&st, PST_E_INVALID, "%s: no job 'worker' in the cluster (expected e.g. "
                       "\"cluster\": {\"ps\": 2, \"worker\": 2})", path);
        goto done;
    }
    if (f.meta && num_ps > 0) {
        /* A TF user's graph: imported as the workers import it (imported_model.h). */
        if (!(rs = pst_replica_setter_new(num_ps, "/job:worker/task:0",
                                          strcmp(f.placement, "greedy") == 0 ? PST_PLACE_GREEDY
                                                                              : PST_PLACE_ROUND_ROBIN,
                                          &st)) ||
            !(im = calloc(1, sizeof *im)) ||
            pst_worker_build_imported_model(&f, &m, im, pst_replica_setter_fn, rs, &st) < 0) {
            if (!st.code) pst_status_set(&st, PST_E_EXHAUSTED, "out of memory");
            goto done;
        }
        printf("dry run of %s: TensorFlow graph %s, train op '%s', placement %s\n", path, f.meta,
               m.train_op->name, f.placement);
    } else {
        if (pst_worker_build_model_on_ps(&f, net, num_ps, &m, &rs, &st) < 0) goto done;
        printf("dry run of %s: model %s (%s), optimizer %s, placement %s, mode %s\n", path,
               net->name, net->description, f.optimizer, f.placement, f.sync);
    }
    printf("graph of /job:worker/task:0 (%s), %d nodes\n",
           c ? pst_cluster_address(c, "worker", 0) : "address chosen at launch",
           pst_graph_num_nodes(m.g));
    for (int k = 0; k < num_ps; k++)
        printf("ps task %d: %s\n", k, c ? pst_cluster_address(c, "ps", k) : "chosen at launch");
    if (num_ps == 0)
        printf("the cluster has no ps job: every variable stays on /job:worker/task:0\n");
    else
        pst_replica_setter_report(m.g, num_ps, stdout);
    rc = 0;
done:
    if (rc && st.code) fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
    if (im) {
        pst_imported_model_destroy(im, &m);
        free(im);
    } else {
        pst_graph_free(m.g);
    }
    pst_replica_setter_free(rs);
    pst_train_flags_destroy(&f);
    return rc;
}

/* {"ps": [addresses]} from a run's state.json (caller frees), NULL with st set. */
static char *run_ps_cluster(const char *state, pst_status *st) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (pst_file_read(state, 16 << 20, &buf, &len, st) < 0) return NULL;
    char *text = strndup((const char *)buf, len);
    free(buf);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *out = cJSON_CreateObject(), *ps = cJSON_AddArrayToObject(out, "ps");
    const cJSON *t;
    const cJSON *tasks = o ? cJSON_GetObjectItemCaseSensitive(o, "tasks") : NULL;
    cJSON_ArrayForEach(t, tasks) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "task");
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(t, "address");
        if (cJSON_IsString(name) && strncmp(name->valuestring, "ps", 2) == 0 &&
            cJSON_IsString(addr) && addr->valuestring[0])
            cJSON_AddItemToArray(ps, cJSON_CreateString(addr->valuestring));
    }
    char *json = cJSON_GetArraySize(ps) > 0 ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    cJSON_Delete(o);
    if (!json) pst_status_set(st, PST_E_INVALID, "%s: no running PS with an address", state);
    return json;
}

/* The running workers of a launched job, "index:incarnation:joined_s,..." as a PS reports. */
static void print_membership(const pst_task_status_report *r) {
    int n = 0;
    for (const char *p = r->members; *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : "") n++;
    printf("membership epoch %lld: %d worker%s\n", (long long)r->membership_epoch, n,
           n == 1 ? "" : "s");
    for (const char *p = r->members; *p;) {
        char *end;
        long id = strtol(p, &end, 10);
        unsigned long long inc = *end == ':' ? strtoull(end + 1, &end, 16) : 0;
        double joined = *end == ':' ? strtod(end + 1, &end) : -1;
        printf("  worker %ld  incarnation %016llx  joined %.1f s after the job started\n", id,
               inc, joined);
        p = strchr(end, ',') ? strchr(end, ',') + 1 : "";
    }
}

/* Live placement: every PS's report as a table, then the imbalance of bytes between PS. */
static int placement_live(const char *cluster_file, int64_t timeout_ms) {
    pst_status st = {0};
    /* A run directory of pstrain launch: its PS from state.json, its token. */
    char state[4096], token[4096] = "";
    snprintf(state, sizeof state, "%.4000s/state.json", cluster_file);
    char *ps_json = access(state, R_OK) == 0 ? run_ps_cluster(state, &st) : NULL;
    if (st.code) {
        fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
        return 1;
    }
    if (ps_json && !getenv("PST_JOB_TOKEN") && !getenv("PST_JOB_TOKEN_FILE"))
        snprintf(token, sizeof token, "%.4000s/token", cluster_file);
    /* Only the PS are asked: workers may be listed with port 0 (picked when they started). */
    pst_cluster *c = ps_json ? pst_cluster_parse_ex(ps_json, state, PST_CLUSTER_ALLOW_PORT0, &st)
                             : pst_cluster_load_ex(cluster_file, PST_CLUSTER_ALLOW_PORT0, &st);
    free(ps_json);
    if (!c) {
        fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
        return 1;
    }
    int n_ps = pst_cluster_num_tasks(c, "ps"), rc = 0;
    if (n_ps == 0) {
        fprintf(stderr, "pstrain inspect placement: %s has no \"ps\" job\n", cluster_file);
        pst_cluster_free(c);
        return 1;
    }
    /* The job's token (and TLS) from the environment, as the tasks read them. */
    pst_security *sec = pst_security_new(&(pst_security_opts){.token_file = token[0] ? token
                                                                                     : NULL},
                                         &st);
    if (!sec) {
        fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
        pst_cluster_free(c);
        return 1;
    }
    pst_transport_opts to = {.security = sec};
    pst_transport *tr = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT, &to, &st);
    if (!tr) {
        fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
        pst_security_free(sec);
        pst_cluster_free(c);
        return 1;
    }
    int64_t lo = INT64_MAX, hi = 0;
    int membership_shown = 0;
    for (int k = 0; k < n_ps; k++) {
        const char *addr = pst_cluster_address(c, "ps", k);
        pst_task_status_report r;
        if (pst_task_client_query_report(tr, addr, timeout_ms, &r, &st) < 0) {
            fprintf(stderr, "pstrain inspect placement: /job:ps/task:%d: %s\n", k, st.msg);
            rc = 1;
            memset(&st, 0, sizeof st);
            continue;
        }
        int64_t total = 0, pulls = 0, updates = 0;
        for (int i = 0; i < r.n_vars; i++) {
            total += r.vars[i].bytes;
            pulls += r.vars[i].pulls;
            updates += r.vars[i].updates;
        }
        char b1[32], b2[32], b3[32];
        printf("/job:ps/task:%d  %s  up %.0f s: %d variables, %s; pulls %lld, updates %lld; "
               "received %s, sent %s\n", k, addr, r.uptime_s, r.n_vars,
               pst_format_bytes((double)total, b1, sizeof b1), (long long)pulls, (long long)updates,
               pst_format_bytes((double)r.bytes_received, b2, sizeof b2),
               pst_format_bytes((double)r.bytes_sent, b3, sizeof b3));
        printf("  %-44s %-14s %12s %8s %8s  %s\n", "variable", "shape", "bytes", "pulls",
               "updates", "slice of");
        for (int i = 0; i < r.n_vars; i++) {
            pst_task_status_var *v = &r.vars[i];
            char shape[96];
            printf("  %-44s %-14s %12lld %8lld %8lld  %s%s%s%s\n", v->name,
                   pst_shape_str(&v->shape, shape, sizeof shape), (long long)v->bytes,
                   (long long)v->pulls, (long long)v->updates, v->full_name,
                   v->slice[0] ? " [" : "", v->slice, v->slice[0] ? "]" : "");
        }
        if (total < lo) lo = total;
        if (total > hi) hi = total;
        if (r.membership_epoch > 0 && !membership_shown) {
            /* A launched job: the membership as this PS last heard it. */
            print_membership(&r);
            membership_shown = 1;
        }
        pst_task_status_report_destroy(&r);
    }
    if (rc == 0) {
        char b1[32], b2[32];
        if (lo > 0)
            printf("imbalance: largest %s / smallest %s = %.2f\n",
                   pst_format_bytes((double)hi, b1, sizeof b1), pst_format_bytes((double)lo, b2, sizeof b2),
                   (double)hi / (double)lo);
        else
            printf("imbalance: largest %s, and a PS holds nothing\n",
                   pst_format_bytes((double)hi, b1, sizeof b1));
    }
    pst_transport_free(tr);
    pst_security_free(sec);
    pst_cluster_free(c);
    return rc;
}

int pst_cmd_inspect(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "placement") != 0) return usage();
    const char *job = NULL, *cluster = NULL;
    int dry_run = 0;
    long long timeout_ms = 5000;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--job") == 0 && i + 1 < argc) {
            job = argv[++i];
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            timeout_ms = strtoll(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || timeout_ms <= 0 || timeout_ms > (1LL << 40)) {
                fprintf(stderr, "pstrain inspect placement: --timeout-ms: '%s' is not an "
                                "integer in [1, 2^40]\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "pstrain inspect placement: unknown or incomplete argument '%s'\n",
                    argv[i]);
            return usage();
        }
    }
    if (dry_run) {
        if (job == NULL) {
            fprintf(stderr, "pstrain inspect placement: --dry-run needs --job FILE\n");
            return usage();
        }
        return placement_dry_run(job);
    }
    if (cluster == NULL) cluster = job; /* a job file holds its cluster too */
    if (cluster == NULL) {
        fprintf(stderr, "pstrain inspect placement: give --cluster FILE (a running job) or "
                        "--job FILE --dry-run\n");
        return usage();
    }
    return placement_live(cluster, timeout_ms);
}
