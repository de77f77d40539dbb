/*
 * eval_cmd: `pstrain eval RUN` evaluates every checkpoint of a launched run as it appears (the
 * run's job file gives the model; events go to RUN/events/eval) and ends after the run;
 * `pstrain eval --checkpoint-dir DIR [pstrain-worker flags]` watches any directory.
 */
#include "eval_cmd.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coord_agent.h"
#include "eval.h"
#include "file.h"
#include "flags.h"
#include "ops.h"

static int usage(void) {
    fprintf(stderr,
            "usage: pstrain eval RUN [options]        a run of pstrain launch: its model, its\n"
            "                                         checkpoints, events in RUN/events/eval;\n"
            "                                         ends when the run has\n"
            "       pstrain eval --checkpoint-dir DIR [--job JOB.json | --model M ...] [options]\n"
            "options: --max-evals N       stop after N evaluations\n"
            "         --interval-secs S   look for new checkpoints every S seconds (1)\n"
            "         --timeout-secs S    stop after S seconds without a new one (never)\n"
            "         --events-dir DIR    write eval/accuracy and eval/loss events there\n"
            "         and pstrain-worker's model flags (--model, --data-dir, ...)\n");
    return 2;
}

/* RUN/state.json's checkpoint_dir into out (RUN/checkpoints when absent). */
static void run_checkpoint_dir(const char *run, char *out, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/state.json", run);
    snprintf(out, len, "%s/checkpoints", run);
    uint8_t *buf = NULL;
    size_t n = 0;
    pst_status st = {0};
    if (pst_file_read(path, 1 << 20, &buf, &n, &st) < 0) return;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, n);
    free(buf);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "checkpoint_dir");
    if (cJSON_IsString(d) && d->valuestring[0]) snprintf(out, len, "%s", d->valuestring);
    cJSON_Delete(j);
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "pstrain eval: %s: '%s' is not a number in [%g, %g]\n", flag,
                v ? v : "", lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int pst_cmd_eval(int argc, char **argv) {
    pst_ops_init();
    const char *run = NULL, *events = NULL;
    double max_evals = 0, interval = 1, timeout = 0;
    char **rest = calloc((size_t)argc + 8, sizeof *rest);
    if (!rest) return 1;
    int nr = 0;
    rest[nr++] = "pstrain eval";
    char job[4200], ckpt[4096] = "", ev_dir[4200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            free(rest);
            usage();
            return 0;
        } else if (strcmp(a, "--max-evals") == 0) {
            rc = parse_num(a, v, 1, 1e9, &max_evals), i++;
        } else if (strcmp(a, "--interval-secs") == 0) {
            rc = parse_num(a, v, 0.01, 86400, &interval), i++;
        } else if (strcmp(a, "--timeout-secs") == 0) {
            rc = parse_num(a, v, 0, 1e9, &timeout), i++;
        } else if (strcmp(a, "--events-dir") == 0 && v) {
            events = v, i++;
        } else if (a[0] != '-' && !run && nr == 1) {
            run = a;
        } else {
            rest[nr++] = argv[i];
        }
        if (rc < 0) {
            free(rest);
            return 2;
        }
    }
    if (run) {
        struct stat sb;
        snprintf(job, sizeof job, "%s/job.json", run);
        if (stat(job, &sb) != 0) {
            fprintf(stderr, "pstrain eval: %s is not a run directory (no job.json)\n", run);
            free(rest);
            return 2;
        }
        /* the run's job file first: flags given after it win */
        memmove(rest + 3, rest + 1, (size_t)(nr - 1) * sizeof *rest);
        rest[1] = "--job";
        rest[2] = job;
        nr += 2;
        run_checkpoint_dir(run, ckpt, sizeof ckpt);
        if (!events) {
            snprintf(ev_dir, sizeof ev_dir, "%s/events/eval", run);
            events = ev_dir;
        }
    }
    pst_train_flags f;
    char err[1024];
    int prc = pst_train_flags_parse(nr, rest, &f, err, sizeof err);
    free(rest);
    if (prc != 0) {
        fprintf(stderr, "pstrain eval: %s", err);
        return usage();
    }
    pst_status st = {0};
    if (pst_coord_agent_die_with_launcher(&st) < 0) { /* the evaluator task of a launched job */
        fprintf(stderr, "pstrain eval: %s\n", st.msg);
        pst_train_flags_destroy(&f);
        return 1;
    }
    pst_eval_opts o = {.checkpoint_dir = f.checkpoint_dir ? f.checkpoint_dir : (ckpt[0] ? ckpt : NULL),
                       .events_dir = events, .run_dir = run, .max_evals = (int)max_evals,
                       .interval_secs = interval, .timeout_secs = timeout};
    if (run && !f.checkpoint_dir) o.checkpoint_dir = ckpt;
    int n = pst_worker_eval_loop(&f, &o, stdout, &st);
    pst_train_flags_destroy(&f);
    if (n < 0) {
        fprintf(stderr, "pstrain eval: %s\n", st.msg);
        return 1;
    }
    printf("pstrain eval: %d checkpoint(s) evaluated\n", n);
    return 0;
}
