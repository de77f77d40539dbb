#include "inspect.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
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
#include "file.h"
#include "format.h"

static int usage(void) {
    fprintf(stderr, "usage: pstrain inspect placement --job FILE --dry-run\n"
                    "  Builds worker 0's training graph for the job file's model and optimizer\n"
                    "  and prints which PS task holds each variable; starts nothing.\n"
                    "       pstrain inspect placement --cluster FILE [--timeout-ms N]\n"
                    "  Asks every PS of a running job for its variables and slices, bytes and\n"
                    "  pull/update counts.\n");
    return 2;
}

/* What a job file says, with the defaults for absent keys. */
typedef struct job_spec {
    pst_cluster *cluster;
    char model[64], optimizer[32];
    pst_place_strategy placement;
    float learning_rate;
    int64_t partition_min_bytes, partition_max_parts; /* 0: no partitioning */
} job_spec;

/* Copies the optional string `key` of obj into out; errors name the file and the key. */
static int opt_string(const cJSON *obj, const char *key, const char *path, char *out, size_t len,
                      pst_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL) return 0;
    if (!cJSON_IsString(v))
        return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a string", path, key);
    if (strlen(v->valuestring) >= len)
        return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" value '%.40s...' is too long", path,
                              key, v->valuestring);
    strcpy(out, v->valuestring);
    return 0;
}

/* Reads the job keys next to "cluster"; a bare cluster spec is a job with every default. */
static int read_job_keys(const char *text, const char *path, job_spec *job, pst_status *st) {
    cJSON *root = cJSON_Parse(text);
    if (root == NULL) /* cannot happen: the cluster parser accepted the same text */
        return pst_status_set(st, PST_E_INVALID, "%s: invalid JSON", path);
    int rc = 0;
    char placement[32] = "round_robin";
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "cluster"))) goto done;
    if ((rc = opt_string(root, "model", path, job->model, sizeof job->model, st)) < 0 ||
        (rc = opt_string(root, "optimizer", path, job->optimizer, sizeof job->optimizer, st)) < 0 ||
        (rc = opt_string(root, "placement", path, placement, sizeof placement, st)) < 0)
        goto done;
    if (strcmp(placement, "round_robin") == 0) {
        job->placement = PST_PLACE_ROUND_ROBIN;
    } else if (strcmp(placement, "greedy") == 0) {
        job->placement = PST_PLACE_GREEDY;
    } else {
        rc = pst_status_set(st, PST_E_INVALID, "%s: unknown placement '%s' (round_robin, greedy)",
                            path, placement);
        goto done;
    }
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(root, "learning_rate");
    if (lr) {
        if (!cJSON_IsNumber(lr) || !(lr->valuedouble > 0)) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"learning_rate\" must be a number > 0",
                                path);
            goto done;
        }
        job->learning_rate = (float)lr->valuedouble;
    }
    /* Layer weights partitioned along axis 0, as pstrain-worker --partition-min-bytes does. */
    const char *ikeys[2] = {"partition_min_bytes", "partition_max_parts"};
    int64_t *ivals[2] = {&job->partition_min_bytes, &job->partition_max_parts};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, ikeys[k]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != (double)(int64_t)v->valuedouble) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a positive integer", path,
                                ikeys[k]);
            goto done;
        }
        *ivals[k] = (int64_t)v->valuedouble;
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int load_job(const char *path, job_spec *job, pst_status *st) {
    *job = (job_spec){.model = "mlp", .optimizer = "adam", .placement = PST_PLACE_ROUND_ROBIN,
                      .learning_rate = 0.001f};
    uint8_t *buf;
    size_t len;
    if (pst_file_read(path, (size_t)1 << 30, &buf, &len, st) < 0) return st->code;
    char *text = malloc(len + 1);
    if (text == NULL) {
        free(buf);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
    }
    memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    int rc = PST_E_INVALID;
    if ((job->cluster = pst_cluster_parse(text, path, st)) != NULL)
        rc = read_job_keys(text, path, job, st);
    free(text);
    return rc;
}

/* Worker 0's graph as the trainer builds it: placeholders, the net, loss, optimizer (so its
 * slots and the global step are placed too), under the replica device setter. */
static pst_graph *build_graph(const job_spec *job, const pst_net_def *net, int kind,
                              pst_replica_setter *rs, pst_status *st) {
    pst_graph *g = pst_graph_new();
    pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    if (job->partition_min_bytes > 0)
        pst_layers_set_partitioner(g, job->partition_min_bytes,
                                   job->partition_max_parts > 0
                                       ? (int)job->partition_max_parts
                                       : pst_replica_setter_num_ps(rs));
    pst_output images = pst_placeholder(g, "images", PST_FLOAT,
                                        pst_shape_4d(-1, net->height, net->width, net->channels));
    pst_output labels = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    pst_net_opts no = pst_net_defaults();
    pst_output logits = net->build(g, images, &no);
    pst_loss_sparse_softmax_cross_entropy(g, logits, labels, pst_out(NULL, 0), NULL);
    pst_output total = pst_get_total_loss(g, 1, "total_loss");
    pst_optimizer_opts oo = pst_optimizer_defaults((pst_opt_kind)kind, job->learning_rate);
    pst_node *train_op;
    pst_create_train_op(g, total, &oo, pst_train_global_step(g), 0, &train_op);
    if (pst_graph_error(g)) {
        pst_status_set(st, pst_graph_error(g), "building %s: %s", net->name,
                       pst_graph_status(g)->msg);
        pst_graph_free(g);
        return NULL;
    }
    return g;
}

static int placement_dry_run(const char *path) {
    pst_status st = {0};
    job_spec job;
    pst_graph *g = NULL;
    pst_replica_setter *rs = NULL;
    int rc = 1;
    if (load_job(path, &job, &st) < 0) goto done;
    const pst_net_def *net = pst_net_lookup(job.model);
    if (net == NULL) {
        pst_status_set(&st, PST_E_INVALID, "%s: unknown model '%s' (softmax, mlp, simple_cnn, "
                       "cnn5, lenet5, vgg16)", path, job.model);
        goto done;
    }
    int kind = pst_optimizer_kind_parse(job.optimizer);
    if (kind < 0) {
        pst_status_set(&st, PST_E_INVALID, "%s: unknown optimizer '%s' (adam, sgd, momentum, "
                       "adagrad, rmsprop)", path, job.optimizer);
        goto done;
    }
    if (pst_cluster_check_task(job.cluster, "worker", 0, &st) < 0) goto done;
    int num_ps = pst_cluster_num_tasks(job.cluster, "ps");
    if ((rs = pst_replica_setter_new(num_ps, "/job:worker/task:0", job.placement, &st)) == NULL ||
        (g = build_graph(&job, net, kind, rs, &st)) == NULL)
        goto done;
    printf("dry run of %s: model %s (%s), optimizer %s, placement %s\n", path, net->name,
           net->description, job.optimizer,
           job.placement == PST_PLACE_GREEDY ? "greedy" : "round_robin");
    printf("graph of /job:worker/task:0 (%s), %d nodes\n",
           pst_cluster_address(job.cluster, "worker", 0), pst_graph_num_nodes(g));
    for (int k = 0; k < num_ps; k++)
        printf("ps task %d: %s\n", k, pst_cluster_address(job.cluster, "ps", k));
    if (num_ps == 0)
        printf("the cluster has no ps job: every variable stays on /job:worker/task:0\n");
    else
        pst_replica_setter_report(g, num_ps, stdout);
    rc = 0;
done:
    if (rc) fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
    pst_graph_free(g);
    pst_replica_setter_free(rs);
    pst_cluster_free(job.cluster);
    return rc;
}

/* Live placement: every PS's report as a table, then the imbalance of bytes between PS. */
static int placement_live(const char *cluster_file, int64_t timeout_ms) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_load(cluster_file, &st);
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
    pst_transport *tr = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT, NULL, &st);
    if (!tr) {
        fprintf(stderr, "pstrain inspect placement: %s\n", st.msg);
        pst_cluster_free(c);
        return 1;
    }
    int64_t lo = INT64_MAX, hi = 0;
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
            timeout_ms = strtoll(argv[++i], &end, 10);
            if (*end || timeout_ms <= 0) {
                fprintf(stderr, "pstrain inspect placement: --timeout-ms: '%s' is not a "
                                "positive integer\n", argv[i]);
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
