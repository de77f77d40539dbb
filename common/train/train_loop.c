#include "train_loop.h"

#include "clock.h"
#include "format.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int pst_train_loop(pst_session *s, const pst_train_loop_opts *o, pst_train_stats *stats,
                   pst_status *st) {
    FILE *out = o->out ? o->out : stdout;
    int tty = isatty(fileno(out));
    int64_t log_every = o->log_every > 0 ? o->log_every : 100;
    double t0 = pst_clock_now(), last_draw = 0;
    int rc = 0;
    float loss = NAN;
    int64_t step = o->first_step;
    memset(stats, 0, sizeof *stats);
    while (step < o->steps) {
        pst_feed feeds[PST_TRAIN_MAX_FEEDS];
        int nf = 0;
        if ((rc = o->next(o->ctx, step, feeds, &nf, st)) < 0) break;
        pst_tensor *lt = NULL;
        rc = pst_session_run(s, feeds, nf, &o->loss, o->loss.node ? 1 : 0, &o->train_op,
                             o->train_op ? 1 : 0, &lt, st);
        if (rc < 0) break;
        if (lt) {
            loss = (float)pst_tensor_get_f64(lt, 0);
            pst_tensor_unref(lt);
        }
        step++;
        if (!isfinite(loss)) {
            rc = pst_status_set(st, PST_E_INVALID, "loss became %f at step %lld", loss,
                                (long long)step);
            break;
        }
        double now = pst_clock_now(), el = now - t0;
        double eps = el > 0 ? (double)(step - o->first_step) * o->batch_size / el : 0;
        if (!o->quiet && ((tty && (now - last_draw > 0.2 || step == o->steps)) ||
                          (!tty && (step % log_every == 0 || step == o->steps)))) {
            char eta[32];
            double rate = el > 0 ? (double)(step - o->first_step) / el : 0;
            pst_format_duration(rate > 0 ? (double)(o->steps - step) / rate : -1, eta, sizeof eta);
            fprintf(out, "%sstep %lld/%lld  loss %.4f  %.0f examples/s  ETA %s%s",
                    tty ? "\r\033[K" : "", (long long)step, (long long)o->steps, loss, eps, eta,
                    tty ? "" : "\n");
            fflush(out);
            last_draw = now;
        }
        if (o->hook && o->hook_every > 0 && step % o->hook_every == 0) {
            if (tty && !o->quiet) fprintf(out, "\n");
            if ((rc = o->hook(o->hook_ctx, s, step, st)) < 0) break;
        }
    }
    if (tty && !o->quiet) fprintf(out, "\n");
    stats->steps = step - o->first_step;
    stats->seconds = pst_clock_now() - t0;
    stats->examples_per_sec =
        stats->seconds > 0 ? (double)stats->steps * o->batch_size / stats->seconds : 0;
    stats->last_loss = loss;
    return rc;
}
