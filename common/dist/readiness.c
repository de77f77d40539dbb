/* readiness: chief init/restore, others wait for the variables (see readiness.h). */
#include "readiness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "file.h"
#include "saver.h"
#include "task_client.h"

#define POLL_MS 100
#define PROGRESS_EVERY_S 2.0

int pst_readiness_count(pst_task *t, const pst_ps_vars *pv, int *total, char *missing,
                        size_t mlen, pst_status *st) {
    int ready = 0;
    *total = 0;
    missing[0] = 0;
    for (int k = 0; k < pv->n_ps; k++) {
        if (pv->count[k] == 0) continue;
        char dev[64];
        pst_ps_vars_device(k, dev, sizeof dev);
        pst_task_status_report r;
        if (pst_task_client_report(t, dev, 1, &r, st) < 0) return st->code;
        for (int j = 0; j < pv->count[k]; j++) {
            int ok = 0;
            for (int i = 0; i < r.n_vars && !ok; i++)
                ok = r.vars[i].initialized && strcmp(r.vars[i].name, pv->names[k][j]) == 0;
            ready += ok;
            if (!ok && !missing[0]) snprintf(missing, mlen, "%s on %s", pv->names[k][j], dev);
        }
        *total += pv->count[k];
        pst_task_status_report_destroy(&r);
    }
    return ready;
}

int pst_readiness_prepare(pst_task *t, const pst_ps_vars *pv, const char *checkpoint_dir,
                          int start_fresh, pst_dist_run *init, pst_readiness_result *res,
                          pst_status *st) {
    memset(res, 0, sizeof *res);
    /* Live PS that already hold every variable win over any checkpoint: a chief restarted in a
     * running job (supervision) must not roll the job back. --start-fresh: always initialize. */
    int total = 0;
    char missing[512];
    int ready = pst_readiness_count(t, pv, &total, missing, sizeof missing, st);
    if (ready < 0) return ready;
    if (ready == total && total > 0 && !start_fresh) {
        res->how = PST_READY_KEPT;
        return 0;
    }
    if (checkpoint_dir) {
        if (pst_file_make_dirs(checkpoint_dir, st) < 0) return st->code;
        int lr = pst_latest_checkpoint(checkpoint_dir, start_fresh, res->checkpoint,
                                       sizeof res->checkpoint, res->warning, sizeof res->warning,
                                       st);
        if (lr < 0) return lr;
        if (lr == 0) {
            for (int k = 0; k < pv->n_ps; k++) {
                if (pv->count[k] == 0) continue;
                char dev[64];
                pst_ps_vars_device(k, dev, sizeof dev);
                if (pst_task_client_restore(t, dev, res->checkpoint, NULL, st) < 0)
                    return st->code;
            }
            res->how = PST_READY_RESTORED;
            return 0;
        }
        res->checkpoint[0] = 0;
    }
    res->how = PST_READY_INITIALIZED;
    return pst_dist_run_step(init, NULL, 0, NULL, st);
}

int pst_readiness_wait(pst_task *t, const pst_ps_vars *pv, int64_t timeout_ms,
                       pst_readiness_progress_fn progress, void *ctx, pst_status *st) {
    double start = pst_clock_now(), last = 0;
    for (;;) {
        int total = 0;
        char missing[512];
        int ready = pst_readiness_count(t, pv, &total, missing, sizeof missing, st);
        if (ready < 0) return ready;
        if (ready == total) return 0;
        double el = pst_clock_now() - start;
        if (el * 1000 > (double)timeout_ms)
            return pst_status_set(st, PST_E_DEADLINE, "the model was not ready after %lld ms: "
                                  "%d of %d variables uninitialized, e.g. %s (is the chief, "
                                  "worker 0, running?)", (long long)timeout_ms,
                                  total - ready, total, missing);
        if (progress && (el - last >= PROGRESS_EVERY_S || last == 0)) {
            progress(ctx, ready, total, missing);
            last = el > 0 ? el : 1e-9;
        }
        usleep(POLL_MS * 1000);
    }
}
