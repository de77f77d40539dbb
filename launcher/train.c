/* pstrain train --meta: a TensorFlow 1.x user's graph trained from the command line, fed from
 * TFRecord files of tf.train.Example, restored from and saved to TF checkpoints through the
 * graph's own saver subgraph. */
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "imported.h"
#include "op.h"

#define MAX_FEEDS 16

static void usage(void) {
    fprintf(stderr,
            "usage: pstrain train --meta FILE [--checkpoint PREFIX] [--train-op NAME] "
            "[--loss NAME]\n"
            "                     --feed PLACEHOLDER=FILE.tfrecord:FEATURE ... [--steps N] "
            "[--batch B]\n"
            "                     [--print-every N] [--save PREFIX]\n");
}

typedef struct feed_arg {
    char name[512], path[2048], feature[256];
    pst_output ph;
    pst_tensor *all;   /* every record's value, [records, ...] */
    pst_tensor *batch; /* the current batch */
} feed_arg;

static int parse_feed(const char *s, feed_arg *f) {
    const char *eq = strchr(s, '='), *colon = strrchr(s, ':');
    if (!eq || !colon || colon < eq || eq == s || colon[1] == '\0') return -1;
    snprintf(f->name, sizeof f->name, "%.*s", (int)(eq - s), s);
    snprintf(f->path, sizeof f->path, "%.*s", (int)(colon - eq - 1), eq + 1);
    snprintf(f->feature, sizeof f->feature, "%s", colon + 1);
    return 0;
}

/* Loads the feature of every record as the placeholder's per-example shape and dtype. */
static int load_feed(pst_graph *g, feed_arg *f, pst_status *st) {
    f->ph = pst_graph_output_by_name(g, f->name);
    if (f->ph.node == NULL || strcmp(f->ph.node->op->name, "Placeholder") != 0)
        return pst_status_set(st, PST_E_NOT_FOUND, "--feed %s: no placeholder '%s' in the graph",
                              f->name, f->name);
    pst_shape s = pst_output_shape(f->ph);
    if (s.rank < 1)
        return pst_status_set(st, PST_E_INVALID, "--feed %s: the placeholder has shape rank %d, "
                              "it needs a batch dimension", f->name, s.rank);
    pst_example_spec spec = {f->feature, pst_output_dtype(f->ph), {.rank = s.rank - 1}};
    for (int d = 1; d < s.rank; d++) {
        if (s.dims[d] < 0)
            return pst_status_set(st, PST_E_INVALID, "--feed %s: dim %d of the placeholder is "
                                  "unknown; only the batch dimension may be", f->name, d);
        spec.shape.dims[d - 1] = s.dims[d];
    }
    return pst_example_load_tfrecord(f->path, NULL, &spec, 1, &f->all, st);
}

/* Rows [at, at + b) of all (wrapping around) into batch. */
static int fill_batch(feed_arg *f, int64_t at, int b, pst_status *st) {
    int64_t n = f->all->shape.dims[0], row = n ? f->all->n / n : 0;
    if (f->batch == NULL) {
        pst_shape s = f->all->shape;
        s.dims[0] = b;
        if ((f->batch = pst_tensor_new(f->all->dtype, s, st)) == NULL) return st->code;
    }
    for (int i = 0; i < b; i++)
        if (pst_tensor_copy_elems(f->batch, (int64_t)i * row, f->all, ((at + i) % n) * row, row,
                                  st) < 0)
            return st->code;
    return 0;
}

int pst_cmd_train(int argc, char **argv) {
    const char *meta = NULL, *ckpt = NULL, *train_name = NULL, *loss_name = NULL, *save = NULL;
    long steps = 100, batch = 32, every = 10;
    feed_arg *feeds = calloc(MAX_FEEDS, sizeof *feeds);
    int nf = 0, rc = 1;
    pst_imported *m = NULL;
    for (int i = 1; i < argc; i += 2) { /* every flag takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) goto bad;
        if (strcmp(a, "--meta") == 0) meta = v;
        else if (strcmp(a, "--checkpoint") == 0) ckpt = v;
        else if (strcmp(a, "--train-op") == 0) train_name = v;
        else if (strcmp(a, "--loss") == 0) loss_name = v;
        else if (strcmp(a, "--save") == 0) save = v;
        else if (strcmp(a, "--steps") == 0) steps = strtol(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0) batch = strtol(v, NULL, 10);
        else if (strcmp(a, "--print-every") == 0) every = strtol(v, NULL, 10);
        else if (strcmp(a, "--feed") == 0) {
            if (nf == MAX_FEEDS || parse_feed(v, &feeds[nf]) < 0) {
                fprintf(stderr, "pstrain train: bad --feed '%s' (PLACEHOLDER=FILE:FEATURE, at most "
                        "%d)\n", v, MAX_FEEDS);
                goto out;
            }
            nf++;
        } else {
            goto bad;
        }
    }
    if (meta == NULL || steps < 0 || batch < 1 || every < 1) goto bad;
    pst_status st = {0};
    if ((m = pst_imported_load(meta, &st)) == NULL) goto fail;
    pst_graph *g = pst_imported_graph(m);
    if (pst_imported_init(m, &st) < 0) goto fail;
    if (ckpt) {
        int checked = 0;
        if (pst_imported_restore(m, ckpt, &checked, &st) < 0) goto fail;
        printf("restored %s (%d variables)\n", ckpt, checked);
    }
    pst_node *train = pst_imported_train_op(m, train_name, &st);
    if (train == NULL) goto fail;
    pst_output loss = loss_name ? pst_graph_output_by_name(g, loss_name) : pst_imported_loss(m, train);
    if (loss_name && loss.node == NULL) {
        pst_status_set(&st, PST_E_NOT_FOUND, "--loss '%s' is not in the graph", loss_name);
        goto fail;
    }
    for (int i = 0; i < nf; i++)
        if (load_feed(g, &feeds[i], &st) < 0) goto fail;
    pst_output *need;
    int n_need;
    pst_imported_placeholders(m, &train, 1, &need, &n_need);
    for (int k = 0; k < n_need; k++) {
        int fed = 0;
        for (int i = 0; i < nf; i++) fed |= feeds[i].ph.node == need[k].node;
        if (!fed) {
            pst_status_set(&st, PST_E_INVALID, "placeholder '%s' needs a --feed", need[k].node->name);
            free(need);
            goto fail;
        }
    }
    free(need);
    printf("training '%s' on %s, loss '%s', %d feeds, %ld steps of %ld\n", train->name, meta,
           loss.node ? loss.node->name : "?", nf, steps, batch);
    pst_feed pf[MAX_FEEDS];
    for (long s = 0; s < steps; s++) {
        for (int i = 0; i < nf; i++) {
            if (fill_batch(&feeds[i], s * batch, (int)batch, &st) < 0) goto fail;
            pf[i] = (pst_feed){feeds[i].ph, feeds[i].batch};
        }
        pst_tensor *out[1] = {NULL};
        if (pst_session_run(pst_imported_session(m), pf, nf, loss.node ? &loss : NULL,
                            loss.node ? 1 : 0, &train, 1, out, &st) < 0)
            goto fail;
        if (out[0] && ((s + 1) % every == 0 || s + 1 == steps))
            printf("step %ld loss %.6g\n", s + 1, pst_tensor_get_f64(out[0], 0));
        pst_tensor_unref(out[0]);
    }
    if (save) {
        if (pst_imported_save(m, save, &st) < 0) goto fail;
        printf("saved %s\n", save);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "pstrain train: %s\n", st.msg);
    goto out;
bad:
    usage();
    rc = 2;
out:
    for (int i = 0; i < nf; i++) {
        pst_tensor_unref(feeds[i].all);
        pst_tensor_unref(feeds[i].batch);
    }
    free(feeds);
    pst_imported_free(m);
    return rc;
}
