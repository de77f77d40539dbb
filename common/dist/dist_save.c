/* dist_save: every PS writes its shard, the chief merges (see dist_save.h). */
#include "dist_save.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "saver.h"
#include "task_client.h"

struct pst_dist_save {
    pst_task *t;
    const pst_ps_vars *pv;
    pst_saver *saver;
    char path[4096]; /* DIR/BASENAME */
};

/* One PS writing its shard. */
typedef struct shard_job {
    pst_task *t;
    char dev[64];
    char prefix[4300];
    int shard, n;
    pst_status st;
    pthread_t th;
    int started;
} shard_job;

static void *shard_thread(void *arg) {
    shard_job *j = arg;
    pst_task_client_save(j->t, j->dev, j->prefix, j->shard, j->n, &j->st);
    return NULL;
}

int pst_dist_save_shards(pst_task *t, const pst_ps_vars *pv, const char *prefix, pst_status *st) {
    int n = pst_ps_vars_num_holding(pv);
    shard_job *jobs = calloc((size_t)n + 1, sizeof *jobs);
    const char **shards = calloc((size_t)n + 1, sizeof *shards);
    if (!jobs || !shards) {
        free(jobs);
        free(shards);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory saving %s", prefix);
    }
    int i = 0;
    for (int k = 0; k < pv->n_ps; k++) {
        if (pv->count[k] == 0) continue;
        shard_job *j = &jobs[i];
        j->t = t;
        pst_ps_vars_device(k, j->dev, sizeof j->dev);
        snprintf(j->prefix, sizeof j->prefix, "%s_temp_shard%d", prefix, i);
        j->shard = i;
        j->n = n;
        shards[i] = j->prefix;
        /* every PS writes at once; without a thread this one writes before the next starts */
        j->started = pthread_create(&j->th, NULL, shard_thread, j) == 0;
        if (!j->started) shard_thread(j);
        i++;
    }
    int rc = 0;
    for (i = 0; i < n; i++) {
        if (jobs[i].started) pthread_join(jobs[i].th, NULL);
        if (jobs[i].st.code && !rc)
            rc = pst_status_set(st, jobs[i].st.code, "saving on %s: %s", jobs[i].dev,
                                jobs[i].st.msg);
    }
    if (rc == 0) rc = pst_bundle_merge(n, shards, prefix, st);
    free(shards);
    free(jobs);
    return rc;
}

static int write_data(void *ctx, const char *prefix, pst_status *st) {
    pst_dist_save *s = ctx;
    return pst_dist_save_shards(s->t, s->pv, prefix, st);
}

pst_dist_save *pst_dist_save_new(pst_task *t, pst_graph *g, const pst_ps_vars *pv,
                                 const pst_dist_save_opts *o, pst_status *st) {
    if (!o || !o->dir) {
        pst_status_set(st, PST_E_INVALID, "a distributed save needs a checkpoint directory");
        return NULL;
    }
    pst_dist_save *s = calloc(1, sizeof *s);
    if (!s) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a saver of %s", o->dir);
        return NULL;
    }
    s->t = t;
    s->pv = pv;
    snprintf(s->path, sizeof s->path, "%s/%s", o->dir, o->basename ? o->basename : "model.ckpt");
    pst_saver_opts so = {.max_to_keep = o->max_to_keep, .write_meta = 1, .write_fn = write_data,
                         .write_ctx = s, .meta_graph = o->meta_graph};
    if (!(s->saver = pst_saver_new(g, &so, st))) {
        free(s);
        return NULL;
    }
    return s;
}

int pst_dist_save_write(pst_dist_save *s, int64_t step, char *prefix, size_t len,
                        pst_status *st) {
    char buf[4096];
    int rc = pst_saver_save(s->saver, NULL, s->path, step, buf, sizeof buf, st);
    if (rc == 0 && prefix) snprintf(prefix, len, "%s", buf);
    return rc;
}

void pst_dist_save_free(pst_dist_save *s) {
    if (!s) return;
    pst_saver_free(s->saver);
    free(s);
}
