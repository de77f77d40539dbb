/* train_loop: the one training driver (see train_loop.h). */
#include "train_loop.h"

#include "clock.h"
#include "format.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

int64_t pst_train_next_multiple(int64_t step, int64_t every) {
    if (every <= 0) return INT64_MAX;
    if (step < 0) return 0;
    return (step / every + 1) * every;
}

static double default_clock(void *ctx) {
    (void)ctx;
    return pst_clock_now();
}

/* The loop's state between steps. */
typedef struct loop {
    const pst_train_opts *o;
    FILE *out;
    int tty;
    int live; /* a live line is on the terminal without its newline */
    double t0, last_line;
    int64_t gstep, local;
    float loss;
} loop;

static double now(const loop *l) {
    return l->o->clock(l->o->clock_ctx);
}

/* Ends a live progress line so that whatever prints next starts on its own line. */
static void end_live_line(loop *l) {
    if (!l->live) return;
    fputc('\n', l->out);
    fflush(l->out);
    l->live = 0;
}

/* Local examples per second since the loop started. */
static double rate(const loop *l, double t) {
    double el = t - l->t0;
    return el > 0 ? (double)l->local * l->o->batch_size / el : 0;
}

static void progress_line(loop *l, double t) {
    const pst_train_opts *o = l->o;
    const char *cr = l->tty ? "\r\033[K" : "", *nl = l->tty ? "" : "\n";
    if (o->task) {
        fprintf(l->out, "%s%s: global step %lld, local step %lld, loss %.4f, %.0f examples/s%s",
                cr, o->task, (long long)l->gstep, (long long)l->local, l->loss, rate(l, t), nl);
    } else {
        /* ETA from the global steps done here, so a jumping global step counts what others did */
        char eta[32];
        double el = t - l->t0;
        double per_sec = el > 0 ? (double)(l->gstep - o->first_step) / el : 0;
        pst_format_duration(per_sec > 0 ? (double)(o->steps - l->gstep) / per_sec : -1, eta,
                            sizeof eta);
        fprintf(l->out, "%sstep %lld/%lld  loss %.4f  %.0f examples/s  ETA %s%s", cr,
                (long long)l->gstep, (long long)o->steps, l->loss, rate(l, t), eta, nl);
    }
    fflush(l->out);
    l->live = l->tty;
    l->last_line = t;
}

static void summary_line(const loop *l, const pst_train_stats *s) {
    const pst_train_opts *o = l->o;
    if (o->task)
        fprintf(l->out,
                "%s: trained %lld local steps in %.1f s (%.0f examples/s), global step %lld, "
                "final loss %.4f\n",
                o->task, (long long)s->steps, s->seconds, s->examples_per_sec,
                (long long)s->global_step, s->last_loss);
    else
        fprintf(l->out, "trained %lld steps in %.1f s (%.0f examples/s), final loss %.4f\n",
                (long long)s->steps, s->seconds, s->examples_per_sec, s->last_loss);
    fflush(l->out);
}

static int save(loop *l, const pst_train_ops *ops, void *ctx, pst_train_stats *stats,
                pst_status *st) {
    end_live_line(l);
    int rc = ops->save(ctx, l->gstep, st);
    if (rc < 0) return rc;
    stats->saves++;
    stats->last_saved_step = l->gstep;
    return 0;
}

static int evaluate(loop *l, const pst_train_ops *ops, void *ctx, pst_train_stats *stats,
                    pst_status *st) {
    end_live_line(l);
    double acc = 0;
    int rc = ops->evaluate(ctx, &acc, st);
    if (rc < 0) return rc;
    stats->evals++;
    if (l->o->task)
        fprintf(l->out, "%s: global step %lld: validation_accuracy=%.4f\n", l->o->task,
                (long long)l->gstep, acc);
    else
        fprintf(l->out, "step %lld: validation_accuracy=%.4f\n", (long long)l->gstep, acc);
    fflush(l->out);
    return 0;
}

/* A callback that failed without saying why still leaves a sentence behind. */
static int failed(pst_status *st, int rc, const char *what, int64_t gstep) {
    if (st && st->code == 0)
        pst_status_set(st, rc, "the %s callback failed at global step %lld (%s)", what,
                       (long long)gstep, pst_strerror(rc));
    return rc;
}

int pst_train_run(const pst_train_ops *ops, void *ctx, const pst_train_opts *opts,
                  pst_train_stats *stats, pst_status *st) {
    PST_ASSERT(ops != NULL && ops->step != NULL && opts != NULL && stats != NULL);
    pst_train_opts o = *opts;
    if (!o.clock) o.clock = default_clock;
    if (o.log_every <= 0) o.log_every = 100;
    loop l = {.o = &o, .out = o.out ? o.out : stdout, .gstep = o.first_step, .loss = NAN};
    l.tty = isatty(fileno(l.out));
    memset(stats, 0, sizeof *stats);
    stats->last_saved_step = -1;
    int64_t next_save = pst_train_next_multiple(o.first_step, o.save_every_steps);
    int64_t next_eval = ops->evaluate ? pst_train_next_multiple(o.first_step, o.eval_every)
                                      : INT64_MAX;
    int64_t next_log = pst_train_next_multiple(o.first_step, o.log_every);
    l.t0 = l.last_line = now(&l);
    double last_save = l.t0;
    int rc = 0;
    while (l.gstep < o.steps) {
        /* Asked to stop (a launcher's stop): end here as a clean end, final save included. */
        if (ops->should_stop && ops->should_stop(ctx)) {
            stats->stopped = 1;
            break;
        }
        int64_t reached = l.gstep + 1;
        float loss = NAN;
        if ((rc = ops->step(ctx, &loss, &reached, st)) < 0) {
            failed(st, rc, "step", l.gstep);
            break;
        }
        l.local++;
        l.gstep = reached;
        l.loss = loss;
        double t = now(&l);
        if (!isfinite(loss)) {
            rc = pst_status_set(st, PST_E_INVALID, "loss became %f at step %lld", loss,
                                (long long)l.gstep);
            break;
        }
        int done = l.gstep >= o.steps;
        if (!o.quiet) {
            int due;
            if (l.tty)
                due = t - l.last_line > 0.2 || l.local == 1;
            else if (o.log_every_secs > 0)
                due = t - l.last_line >= o.log_every_secs;
            else
                due = l.gstep >= next_log;
            if (due || done) progress_line(&l, t);
            next_log = pst_train_next_multiple(l.gstep, o.log_every);
        }
        if (l.gstep >= next_eval) {
            if ((rc = evaluate(&l, ops, ctx, stats, st)) < 0) {
                failed(st, rc, "evaluate", l.gstep);
                break;
            }
            next_eval = pst_train_next_multiple(l.gstep, o.eval_every);
        }
        int save_due = l.gstep >= next_save ||
                       (o.save_every_secs > 0 && t - last_save >= o.save_every_secs);
        if (ops->save && save_due) {
            if ((rc = save(&l, ops, ctx, stats, st)) < 0) {
                failed(st, rc, "save", l.gstep);
                break;
            }
            next_save = pst_train_next_multiple(l.gstep, o.save_every_steps);
            last_save = t;
        }
    }
    end_live_line(&l);
    stats->steps = l.local;
    stats->global_step = l.gstep;
    stats->seconds = now(&l) - l.t0; /* evaluations and saves on the way included */
    stats->examples_per_sec =
        stats->seconds > 0 ? (double)stats->steps * o.batch_size / stats->seconds : 0;
    stats->last_loss = l.loss;
    if (rc < 0) return rc;
    /* A clean end is saved, unless this very step just was. */
    if (ops->save && (l.local > 0 || o.always_save_at_end) && stats->last_saved_step != l.gstep &&
        (rc = save(&l, ops, ctx, stats, st)) < 0)
        return failed(st, rc, "save", l.gstep);
    summary_line(&l, stats);
    return 0;
}
