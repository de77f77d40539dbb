/* pstrain train --meta: a TensorFlow 1.x user's graph trained from the command line, fed from
 * TFRecord files of tf.train.Example, restored from and saved to TF checkpoints through the
 * graph's own saver subgraph. */
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imported.h"
#include "op.h"
#include "record_feed.h"

#define MAX_FEEDS 32

static void usage(void) {
    fprintf(stderr,
            "usage: pstrain train --meta FILE [--checkpoint PREFIX] [--train-op NAME] "
            "[--loss NAME]\n"
            "                     --feed PLACEHOLDER=FILE.tfrecord:FEATURE ... [--steps N] "
            "[--batch B]\n"
            "                     [--print-every N] [--save PREFIX] [--records FILE.tfrecord]\n");
}

int pst_cmd_train(int argc, char **argv) {
    const char *meta = NULL, *ckpt = NULL, *train_name = NULL, *loss_name = NULL, *save = NULL;
    const char *records = NULL;
    int queues = 0, datasets = 0;
    pst_imported_dataset_input din = {0};
    long steps = 100, batch = 32, every = 10;
    pst_record_feed *feeds = calloc(MAX_FEEDS, sizeof *feeds);
    int64_t *rows = NULL;
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
        else if (strcmp(a, "--records") == 0) records = v;
        else if (strcmp(a, "--steps") == 0) steps = strtol(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0) batch = strtol(v, NULL, 10);
        else if (strcmp(a, "--print-every") == 0) every = strtol(v, NULL, 10);
        else if (strcmp(a, "--feed") == 0) {
            pst_status fs = {0};
            if (nf == MAX_FEEDS || pst_record_feed_parse(v, &feeds[nf], &fs) < 0) {
                fprintf(stderr, "pstrain train: %s\n",
                        fs.code ? fs.msg : "too many --feed flags (at most 32)");
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
        if (pst_record_feed_load(g, &feeds[i], &st) < 0) goto fail;
    /* A graph reading a tf.data iterator: its iterators initialized, its TFRecordDatasets
     * reading --records when given, else the files the graph names. */
    if ((datasets = pst_imported_uses_datasets(m, &train, 1))) {
        if (pst_imported_dataset_inputs(m, &train, 1, records, 0, &din, &st) < 0 ||
            pst_imported_run_dataset_inits(m, &din, &st) < 0)
            goto fail;
        printf("initialized %d tf.data iterators%s%s\n", din.n_inits, records ? ", reading " : "",
               records ? records : "");
    }
    if (nf + din.n_handles > MAX_FEEDS) {
        pst_status_set(&st, PST_E_INVALID, "too many feeds (at most %d)", MAX_FEEDS);
        goto fail;
    }
    /* (A feedable iterator's string-handle placeholder is fed the handle instead.) */
    if (din.n_handles == 0 && pst_record_feeds_cover(m, &train, 1, feeds, nf, &st) < 0) goto fail;
    /* A graph that reads its own input (TF 1 readers and queues): its queue runners fill the
     * queues, its readers pointed at --records when given, else at the files it names. */
    if ((queues = pst_imported_uses_queues(m, &train, 1))) {
        pst_feed *files = NULL;
        int nfiles = 0;
        if (records && pst_imported_reader_files(m, records, &files, &nfiles, &st) < 0) goto fail;
        int qrc = pst_imported_start_queue_runners(m, files, nfiles, &st);
        for (int i = 0; i < nfiles; i++) pst_tensor_unref(files[i].value);
        free(files);
        if (qrc < 0) goto fail;
        printf("started %d queue runners%s%s\n", pst_imported_num_queue_runners(m),
               records ? ", reading " : "", records ? records : "");
    }
    printf("training '%s' on %s, loss '%s', %d feeds, %ld steps of %ld\n", train->name, meta,
           loss.node ? loss.node->name : "?", nf, steps, batch);
    pst_feed pf[MAX_FEEDS];
    if (!(rows = malloc((size_t)batch * sizeof *rows))) {
        pst_status_set(&st, PST_E_EXHAUSTED, "out of memory for a batch of %ld", batch);
        goto fail;
    }
    for (long s = 0; s < steps; s++) {
        for (long i = 0; i < batch; i++) rows[i] = s * batch + i; /* in file order, wrapping */
        for (int i = 0; i < nf; i++) {
            if (pst_record_feed_batch(&feeds[i], rows, (int)batch, &st) < 0) goto fail;
            pf[i] = (pst_feed){feeds[i].ph, feeds[i].batch};
        }
        for (int i = 0; i < din.n_handles; i++) pf[nf + i] = din.handles[i];
        pst_tensor *out[1] = {NULL};
        if (pst_session_run(pst_imported_session(m), pf, nf + din.n_handles,
                            loss.node ? &loss : NULL, loss.node ? 1 : 0, &train, 1, out, &st) < 0) {
            pst_status qst = {0};
            if (datasets && st.code == PST_E_OUT_OF_RANGE) { /* the dataset's end */
                printf("input exhausted after %ld steps\n", s);
                break;
            }
            if (queues && pst_imported_stop_queue_runners(m, &qst) < 0) st = qst; /* the cause */
            else if (queues && st.code == PST_E_OUT_OF_RANGE) { /* the input's epochs are done */
                printf("input exhausted after %ld steps\n", s);
                break;
            }
            goto fail;
        }
        if (out[0] && ((s + 1) % every == 0 || s + 1 == steps))
            printf("step %ld loss %.6g\n", s + 1, pst_tensor_get_f64(out[0], 0));
        pst_tensor_unref(out[0]);
    }
    if (queues && pst_imported_stop_queue_runners(m, &st) < 0) goto fail;
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
    for (int i = 0; i < nf; i++) pst_record_feed_destroy(&feeds[i]);
    pst_imported_dataset_input_free(&din);
    free(feeds);
    free(rows);
    pst_imported_free(m);
    return rc;
}
