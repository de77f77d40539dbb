/* jobfile: a job file's settings as trainer flags (see jobfile.h). */
#include "jobfile.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"

/* Job-file key -> trainer flag. Booleans are switches (present when true); lists (kind 2)
 * repeat the flag once per element. */
static const struct {
    const char *key, *flag;
    int is_switch;
} settings[] = {
    {"model", "--model", 0},
    {"meta", "--meta", 0},
    {"feeds", "--feed", 2},
    {"train_op", "--train-op", 0},
    {"loss", "--loss", 0},
    {"init_checkpoint", "--init-checkpoint", 0},
    {"records", "--records", 0},
    {"steps", "--steps", 0},
    {"batch", "--batch", 0},
    {"optimizer", "--optimizer", 0},
    {"learning_rate", "--lr", 0},
    {"lr_decay", "--lr-decay", 0},
    {"lr_decay_steps", "--lr-decay-steps", 0},
    {"lr_decay_rate", "--lr-decay-rate", 0},
    {"lr_end", "--lr-end", 0},
    {"lr_staircase", "--lr-staircase", 1},
    {"seed", "--seed", 0},
    {"data_dir", "--data-dir", 0},
    {"data_format", "--data-format", 0},
    {"keep_prob", "--keep-prob", 0},
    {"weight_decay", "--weight-decay", 0},
    {"eval_every", "--eval-every", 0},
    {"threads", "--threads", 0},
    {"inter_op_threads", "--inter-op-threads", 0},
    {"validation", "--validation", 0},
    {"checkpoint_dir", "--checkpoint-dir", 0},
    {"save_every_steps", "--save-every-steps", 0},
    {"save_every_secs", "--save-every-secs", 0},
    {"max_to_keep", "--max-to-keep", 0},
    {"mode", "--mode", 0},
    {"replicas_to_aggregate", "--replicas-to-aggregate", 0},
    {"lr_scaling", "--lr-scaling", 0},
    {"global_batch", "--global-batch", 0},
    {"placement", "--placement", 0},
    {"partition_min_bytes", "--partition-min-bytes", 0},
    {"partition_max_parts", "--partition-max-parts", 0},
    {"connect_timeout_ms", "--connect-timeout-ms", 0},
    {"ready_timeout_ms", "--ready-timeout-ms", 0},
    {"recv_timeout_ms", "--recv-timeout-ms", 0},
    {"transport", "--transport", 0},
    {"fusion_threshold_bytes", "--fusion-threshold-bytes", 0},
    {"cycle_time_ms", "--cycle-time-ms", 0},
    {"no_shuffle", "--no-shuffle", 1},
    {"quiet", "--quiet", 1},
};

/* Keys the launcher reads (pstrain launch; see README "Launching jobs"). */
static const char *const launcher_keys[] = {
    "cluster", "name", "backend", "hosts", "run_dir", "restarts", "ssh", "tls_dir", "insecure",
    "coordinator", "evaluator", "ps_flags", "worker_flags", "heartbeat_ms", "description",
    "mpirun", NULL};

static int is_launcher_key(const char *k) {
    for (int i = 0; launcher_keys[i]; i++)
        if (strcmp(k, launcher_keys[i]) == 0) return 1;
    return 0;
}

static int push_arg(pst_jobfile *jf, const char *key, const char *s) {
    char **a = realloc(jf->argv, (size_t)(jf->argc + 2) * sizeof *a);
    if (!a) return PST_E_EXHAUSTED;
    jf->argv = a;
    const char **k = realloc(jf->keys, (size_t)(jf->argc + 2) * sizeof *k);
    if (!k) return PST_E_EXHAUSTED;
    jf->keys = k;
    if ((a[jf->argc] = strdup(s)) == NULL) return PST_E_EXHAUSTED;
    k[jf->argc] = key; /* static strings of the settings table */
    a[++jf->argc] = NULL;
    return 0;
}

void pst_jobfile_destroy(pst_jobfile *jf) {
    for (int i = 0; i < jf->argc; i++) free(jf->argv[i]);
    free(jf->argv);
    free(jf->keys);
    free(jf->text);
    free(jf->path);
    pst_cluster_free(jf->cluster);
    memset(jf, 0, sizeof *jf);
}

/* "cluster": {"ps": 2, "worker": 2} or {"ps": ["h:p", ...], ...}. */
static int read_cluster(const cJSON *root, const char *text, const char *origin, pst_jobfile *jf,
                        pst_status *st) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    if (!c) return 0; /* a job file may leave the cluster to --cluster / TF_CONFIG */
    if (!cJSON_IsObject(c))
        return pst_status_set(st, PST_E_INVALID, "%s: \"cluster\" must be an object like "
                              "{\"ps\": 2, \"worker\": 2}", origin);
    int counts = 0, lists = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, c) {
        if (cJSON_IsNumber(j)) {
            counts++;
            double v = j->valuedouble;
            if (v < 0 || v > 4096 || v != floor(v))
                return pst_status_set(st, PST_E_INVALID, "%s: cluster.%s must be a task count "
                                      "in 0..4096", origin, j->string);
            if (strcmp(j->string, "ps") == 0) jf->n_ps = (int)v;
            else if (strcmp(j->string, "worker") == 0) jf->n_workers = (int)v;
            else if (strcmp(j->string, "evaluator") == 0) jf->n_evaluators = (int)v;
            else if (v > 0 && strcmp(j->string, "evaluator") != 0)
                return pst_status_set(st, PST_E_INVALID, "%s: cluster.%s: launch starts ps, "
                                      "worker and evaluator tasks only", origin, j->string);
        } else {
            lists++;
        }
    }
    if (counts && lists)
        return pst_status_set(st, PST_E_INVALID, "%s: \"cluster\" mixes task counts and address "
                              "lists; use one form", origin);
    if (lists) {
        if ((jf->cluster = pst_cluster_parse(text, origin, st)) == NULL) return st->code;
        jf->n_ps = pst_cluster_num_tasks(jf->cluster, "ps");
        jf->n_workers = pst_cluster_num_tasks(jf->cluster, "worker");
    }
    if (jf->n_workers < 1 && (counts || lists))
        return pst_status_set(st, PST_E_INVALID, "%s: the cluster needs at least one worker",
                              origin);
    return 0;
}

int pst_jobfile_parse(const char *text, const char *origin, pst_jobfile *jf, pst_status *st) {
    memset(jf, 0, sizeof *jf);
    jf->path = strdup(origin ? origin : "job file");
    jf->text = strdup(text);
    if (!jf->path || !jf->text) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        pst_jobfile_destroy(jf);
        return pst_status_set(st, PST_E_INVALID, "%s: not a JSON object (invalid JSON near "
                              "'%.20s')", origin, end ? end : "");
    }
    /* A bare cluster spec: every value a list of addresses. */
    int bare = cJSON_GetArraySize(root) > 0, rc = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, root) bare &= cJSON_IsArray(v);
    if (bare) {
        if ((jf->cluster = pst_cluster_parse(text, origin, st)) == NULL) {
            cJSON_Delete(root);
            pst_jobfile_destroy(jf);
            return st->code;
        }
        jf->n_ps = pst_cluster_num_tasks(jf->cluster, "ps");
        jf->n_workers = pst_cluster_num_tasks(jf->cluster, "worker");
        cJSON_Delete(root);
        return 0;
    }
    rc = read_cluster(root, text, origin, jf, st);
    cJSON_ArrayForEach(v, root) {
        if (rc < 0) break;
        const char *k = v->string;
        if (is_launcher_key(k)) continue;
        size_t i = 0;
        while (i < sizeof settings / sizeof settings[0] && strcmp(settings[i].key, k) != 0) i++;
        if (i == sizeof settings / sizeof settings[0]) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: unknown key \"%s\" (training settings: "
                                "model, optimizer, learning_rate, batch, steps, placement, mode, "
                                "checkpoint_dir, ...; see README \"Job files\")", origin, k);
            break;
        }
        char val[4096];
        if (settings[i].is_switch == 2) {
            /* a list of strings: the flag once per element ("feeds": ["x=f:image", ...]) */
            const cJSON *e;
            if (!cJSON_IsArray(v)) {
                rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a list of strings",
                                    origin, k);
                break;
            }
            cJSON_ArrayForEach(e, v) {
                if (!cJSON_IsString(e)) {
                    rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a list of "
                                        "strings", origin, k);
                    break;
                }
                if (push_arg(jf, settings[i].key, settings[i].flag) < 0 ||
                    push_arg(jf, settings[i].key, e->valuestring) < 0) {
                    rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
                    break;
                }
            }
            continue;
        }
        if (settings[i].is_switch) {
            if (!cJSON_IsBool(v)) {
                rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be true or false",
                                    origin, k);
                break;
            }
            if (cJSON_IsTrue(v) && push_arg(jf, settings[i].key, settings[i].flag) < 0)
                rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            continue;
        }
        if (cJSON_IsString(v)) {
            if (strlen(v->valuestring) >= sizeof val) {
                rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" is too long", origin, k);
                break;
            }
            snprintf(val, sizeof val, "%s", v->valuestring);
        } else if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            if (d == floor(d) && fabs(d) < 9e15)
                snprintf(val, sizeof val, "%lld", (long long)d);
            else
                snprintf(val, sizeof val, "%.9g", d);
        } else {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a string or a number",
                                origin, k);
            break;
        }
        if (push_arg(jf, settings[i].key, settings[i].flag) < 0 || push_arg(jf, settings[i].key, val) < 0)
            rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    }
    cJSON_Delete(root);
    if (rc < 0) pst_jobfile_destroy(jf);
    return rc;
}

int pst_jobfile_load(const char *path, pst_jobfile *out, pst_status *st) {
    uint8_t *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = pst_file_read(path, 1 << 20, &buf, &len, st);
    if (rc < 0) return rc;
    char *text = malloc(len + 1);
    if (!text) {
        free(buf);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
    }
    memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    if (strlen(text) != len) {
        free(text);
        return pst_status_set(st, PST_E_INVALID, "%s: holds a NUL byte", path);
    }
    rc = pst_jobfile_parse(text, path, out, st);
    free(text);
    return rc;
}
