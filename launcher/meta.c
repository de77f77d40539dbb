#include "meta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "imported.h"
#include "meta_export.h"
#include "metagraph.h"
#include "op.h"
#include "tf_data.h"

static int meta_show(const char *path) {
    uint8_t *buf;
    size_t len;
    pst_status st = {0};
    if (pst_file_read(path, PST_META_GRAPH_MAX_BYTES, &buf, &len, &st) < 0) {
        fprintf(stderr, "pstrain meta show: %s\n", st.msg);
        return 1;
    }
    size_t n = strlen(path);
    int saved_model = n >= 14 && strcmp(path + n - 14, "saved_model.pb") == 0;
    int rc = pst_meta_graph_describe(buf, len, saved_model, stdout, &st);
    if (rc < 0) fprintf(stderr, "pstrain meta show: %s: %s\n", path, st.msg);
    free(buf);
    return rc < 0 ? 1 : 0;
}

/* A temporary file (its path in synth, 64 bytes) of n synthetic records in the format the
 * graph's readers or datasets read. */
static int synthetic_temp(char *path, pst_status *st) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, 64, "%.40s/pstrain-records-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        path[0] = '\0';
        return pst_status_set(st, PST_E_IO, "cannot create a temporary records file");
    }
    close(fd);
    return 0;
}

static int synthetic_file(pst_imported *m, char *synth, int n, int *nfeat, pst_status *st) {
    if (synthetic_temp(synth, st) < 0) return st->code;
    return pst_imported_synthetic_records(m, synth, n, nfeat, st);
}

/* A graph whose train op reads a tf.data iterator: its iterators initialized (MakeIterator),
 * their TFRecordDatasets reading `records` or a temporary file of synthetic records (path in
 * synth); a feedable iterator's string-handle placeholder gets the chosen iterator's handle
 * in feeds. note receives ", input from ..." for the report. */
static int start_datasets(pst_imported *m, pst_node *train, int steps, const char *records,
                          char *synth, pst_feed *feeds, int n_feeds, char *note,
                          size_t note_len, pst_status *st) {
    const char *path = records;
    int nfeat = 0, nrec = pst_imported_records_needed(m, train, steps);
    if (path == NULL) {
        if (synthetic_file(m, synth, nrec, &nfeat, st) < 0) return st->code;
        path = synth;
    }
    /* Text and fixed-length datasets read synthetic files of their own format. */
    static const char *const other_ops[2] = {"TextLineDataset", "FixedLengthRecordDataset"};
    for (int k = 0; k < 2 && records == NULL; k++) {
        char *p = synth + 64 * (k + 1);
        if (synthetic_temp(p, st) < 0) return st->code;
        int w = pst_imported_synthetic_dataset_file(m, other_ops[k], p, nrec, st);
        if (w < 0) return st->code;
        if (w == 0) {
            unlink(p);
            p[0] = '\0';
        } else if (pst_tf_data_set_file(pst_session_vars(pst_imported_session(m)), other_ops[k], p,
                                        st) < 0) {
            return st->code;
        }
    }
    pst_imported_dataset_input in;
    int rc = pst_imported_dataset_inputs(m, &train, 1, path, nrec, &in, st);
    if (rc == 0) rc = pst_imported_run_dataset_inits(m, &in, st);
    for (int h = 0; h < in.n_handles && rc == 0; h++)
        for (int i = 0; i < n_feeds; i++)
            if (feeds[i].output.node == in.handles[h].output.node &&
                feeds[i].output.index == in.handles[h].output.index) {
                pst_tensor_unref(feeds[i].value);
                feeds[i].value = pst_tensor_ref(in.handles[h].value);
            }
    if (rc == 0 && records)
        snprintf(note, note_len, ", input from its tf.data pipeline on %s (%d iterators)",
                 records, in.n_inits);
    else if (rc == 0)
        snprintf(note, note_len, ", input from its tf.data pipeline: %d synthetic records of %d "
                 "features (%d iterators)", nrec, nfeat, in.n_inits);
    pst_imported_dataset_input_free(&in);
    return rc;
}

/* Starts the queue runners of a graph whose train op dequeues its own input, its readers
 * pointed at `records` or, without it, at a temporary file of synthetic records (its path in
 * synth, for the caller to remove). note receives ", input from ..." for the report. */
static int start_own_input(pst_imported *m, pst_node *train, int batch, int steps,
                           const char *records, char *synth, char *note, size_t note_len,
                           pst_status *st) {
    int adopted = pst_imported_adopt_enqueue_ops(m, &train, 1);
    if (pst_imported_num_queue_runners(m) == 0)
        return pst_status_set(st, PST_E_PRECONDITION, "the train op dequeues from a queue, but "
                              "the graph has no queue runners or enqueue ops to fill it");
    const char *path = records;
    int nfeat = 0, nrec = pst_imported_records_needed(m, train, steps);
    if (path == NULL) {
        if (synthetic_file(m, synth, nrec, &nfeat, st) < 0) return st->code;
        path = synth;
    }
    pst_feed *files;
    int nfiles;
    if (pst_imported_reader_files(m, path, &files, &nfiles, st) < 0) return st->code;
    /* Placeholders the enqueue ops take (a user's feeding thread): synthetic values too. */
    pst_graph *g = pst_imported_graph(m);
    int nn = pst_graph_num_nodes(g), ne = 0, nph = 0, rc = 0;
    pst_node **enq = calloc((size_t)nn + 1, sizeof *enq);
    for (int id = 0; enq && id < nn; id++)
        if (strncmp(pst_graph_node(g, id)->op->name, "QueueEnqueue", 12) == 0)
            enq[ne++] = pst_graph_node(g, id);
    pst_output *ph = NULL;
    if (enq) pst_imported_placeholders(m, enq, ne, &ph, &nph);
    pst_feed *all = realloc(files, ((size_t)nfiles + (size_t)nph + 1) * sizeof *all);
    if (enq == NULL || all == NULL) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    } else {
        files = all;
        for (int i = 0; i < nph && rc == 0; i++) {
            pst_tensor *v = pst_imported_synthetic_feed(ph[i], batch, (uint64_t)i + 101, st);
            if (v == NULL) rc = st->code;
            else files[nfiles++] = (pst_feed){ph[i], v};
        }
    }
    free(enq);
    free(ph);
    if (rc == 0) rc = pst_imported_start_queue_runners(m, files, nfiles, st);
    for (int i = 0; i < nfiles; i++) pst_tensor_unref(files[i].value);
    free(files);
    if (adopted && nfeat == 0)
        snprintf(note, note_len, ", input through its queue: %d enqueue placeholders fed", nph);
    else if (records)
        snprintf(note, note_len, ", input from its own reader on %s", records);
    else
        snprintf(note, note_len, ", input from its own reader: %d synthetic records of %d "
                 "features", nrec, nfeat);
    return rc;
}

/* One line per stage, "STAGE: ok ..." / "STAGE: FAIL reason" / "STAGE: skipped ...", so a
 * report script can tabulate many graphs. Exit status 0 only when every stage run passed. */
static int meta_check(int argc, char **argv) {
    const char *path = NULL, *ckpt = NULL, *train_name = NULL, *records = NULL;
    int steps = 1, batch = 2;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) ckpt = argv[++i];
        else if (strcmp(argv[i], "--train-op") == 0 && i + 1 < argc) train_name = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) records = argv[++i];
        else if (argv[i][0] != '-' && path == NULL) path = argv[i];
        else {
            fprintf(stderr, "pstrain meta check: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL || steps < 0 || batch < 1) {
        fprintf(stderr, "usage: pstrain meta check FILE [--checkpoint PREFIX] [--train-op NAME] "
                        "[--steps N] [--batch B] [--records FILE.tfrecord]\n");
        return 2;
    }
    pst_status st = {0};
    char **missing;
    int n_missing;
    if (pst_imported_missing_ops_of(path, &missing, &n_missing, &st) < 0) {
        printf("import: FAIL %s\n", st.msg);
        return 1;
    }
    printf("missing ops:");
    for (int i = 0; i < n_missing; i++) printf(" %s", missing[i]);
    printf("%s\n", n_missing ? "" : " none");
    for (int i = 0; i < n_missing; i++) free(missing[i]);
    free(missing);
    pst_imported *m = pst_imported_load(path, &st);
    if (m == NULL) {
        printf("import: FAIL %s\n", st.msg);
        return 1;
    }
    int ok = 1;
    printf("import: ok (%d nodes)\n", pst_graph_num_nodes(pst_imported_graph(m)));
    if (pst_imported_init(m, &st) < 0) {
        printf("init: FAIL %s\n", st.msg);
        ok = 0;
    }
    if (ckpt) {
        int checked = 0;
        if (pst_imported_restore(m, ckpt, &checked, &st) < 0) {
            printf("restore: FAIL %s\n", st.msg);
            ok = 0;
        } else {
            printf("restore: ok (%d variables equal to the checkpoint's tensors)\n", checked);
        }
    } else {
        printf("restore: skipped (no checkpoint)\n");
    }
    pst_node *train = ok ? pst_imported_train_op(m, train_name, &st) : NULL;
    if (!ok) {
        printf("train_step: skipped\n");
    } else if (train == NULL) {
        printf("train_step: FAIL %s\n", st.msg);
        ok = 0;
    } else {
        pst_output loss = pst_imported_loss(m, train);
        pst_output *ph;
        int nph;
        pst_imported_placeholders(m, &train, 1, &ph, &nph);
        batch = pst_imported_batch_hint(ph, nph, batch);
        pst_feed *feeds = calloc((size_t)nph + 1, sizeof *feeds);
        int rc = 0;
        for (int i = 0; i < nph && rc == 0; i++) {
            feeds[i].output = ph[i];
            if ((feeds[i].value = pst_imported_synthetic_feed(ph[i], batch, (uint64_t)i + 1, &st)) == NULL)
                rc = st.code;
        }
        /* A graph that reads its own input: its queue runners fill the queues from records
         * (the given file, else synthetic ones shaped like its ParseExample's features). */
        char input_note[200] = "";
        char synth[3 * 64] = ""; /* records, and text and fixed-length files (tf.data) */
        if (rc == 0 && pst_imported_uses_queues(m, &train, 1))
            rc = start_own_input(m, train, batch, steps, records, synth, input_note,
                                 sizeof input_note, &st);
        else if (rc == 0 && pst_imported_uses_datasets(m, &train, 1))
            rc = start_datasets(m, train, steps, records, synth, feeds, nph, input_note,
                                sizeof input_note, &st);
        double first = NAN, last = NAN;
        for (int s = 0; s < steps && rc == 0; s++) {
            pst_tensor *out[1] = {NULL};
            rc = pst_session_run(pst_imported_session(m), feeds, nph, loss.node ? &loss : NULL,
                                 loss.node ? 1 : 0, &train, 1, out, &st);
            if (rc == 0 && out[0]) {
                last = pst_tensor_get_f64(out[0], 0);
                if (s == 0) first = last;
            }
            pst_tensor_unref(out[0]);
        }
        pst_status qst = {0};
        if (pst_imported_stop_queue_runners(m, &qst) < 0 && rc < 0) st = qst; /* the cause */
        for (int k = 0; k < 3; k++)
            if (synth[64 * k]) unlink(synth + 64 * k);
        if (rc < 0) {
            printf("train_step: FAIL %s\n", st.msg);
            ok = 0;
        } else {
            if (loss.node)
                printf("train_step: ok (train op '%s', %d placeholders fed%s, loss '%s' %g -> "
                       "%g)\n", train->name, nph, input_note, loss.node->name, first, last);
            else
                printf("train_step: ok (train op '%s', %d placeholders fed%s, no loss found)\n",
                       train->name, nph, input_note);
        }
        for (int i = 0; i < nph; i++) pst_tensor_unref(feeds[i].value);
        free(feeds);
        free(ph);
    }
    pst_imported_free(m);
    return ok ? 0 : 1;
}

int pst_cmd_meta(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "show") == 0) {
        /* A SavedModel directory (a version directory of an export) stands for its
         * saved_model.pb. */
        struct stat sb;
        if (stat(argv[2], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            char pb[4200];
            snprintf(pb, sizeof pb, "%s/saved_model.pb", argv[2]);
            return meta_show(pb);
        }
        return meta_show(argv[2]);
    }
    if (argc >= 3 && strcmp(argv[1], "check") == 0) return meta_check(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return pst_cmd_meta_export(argc - 1, argv + 1);
    fprintf(stderr, "usage: pstrain meta show FILE   (a .meta file or a saved_model.pb)\n"
                    "       pstrain meta check FILE [--checkpoint PREFIX] [--train-op NAME] "
                    "[--steps N] [--batch B] [--records FILE.tfrecord]\n"
                    "       pstrain meta export OUT.meta [--ps N] [pstrain-worker flags]\n");
    return 2;
}
