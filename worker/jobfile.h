/*
 * jobfile — a job file's training settings as trainer flags, so `pstrain-worker --job FILE`,
 * `pstrain launch FILE` and `pstrain inspect placement --job FILE --dry-run` read one file the
 * same way: every setting becomes the flag of the same name and goes through the flag parser
 * (same defaults, same validation, same error texts naming the key).
 *
 *     {"cluster": {"ps": 2, "worker": 2},            // counts (launch picks ports) or addresses
 *      "model": "simple_cnn", "optimizer": "adam", "learning_rate": 1e-4, "batch": 100,
 *      "steps": 2000, "placement": "round_robin", "mode": "async", "checkpoint_dir": "ckpt"}
 *
 *     pst_jobfile jf;
 *     if (pst_jobfile_load("job.json", &jf, &st) < 0) ...
 *     // jf.argv: {"--model", "simple_cnn", "--optimizer", "adam", "--lr", "0.0001", ...}
 *     pst_jobfile_destroy(&jf);
 *
 * Keys the trainer does not know are errors naming the file and the key, except the
 * launcher's own (listed in jobfile.c), which the launcher reads. A bare cluster spec
 * ({"ps": [...], "worker": [...]}) is a job file with every default.
 */
#ifndef PST_WORKER_JOBFILE_H
#define PST_WORKER_JOBFILE_H

#include "cluster.h"
#include "status.h"

typedef struct pst_jobfile {
    char *path;
    char *text;             /* the file's JSON text (NUL-terminated) */
    int n_ps, n_workers;    /* from "cluster": counts or the lengths of address lists */
    int n_evaluators;       /* "cluster": {"evaluator": 1}: `pstrain launch` runs `pstrain eval` */
    pst_cluster *cluster;   /* when "cluster" lists addresses; NULL for counts */
    int argc;               /* trainer flags from the settings, in file order */
    char **argv;
    const char **keys;      /* keys[i]: the job-file key argv[i] came from (for errors) */
} pst_jobfile;

int pst_jobfile_load(const char *path, pst_jobfile *out, pst_status *st);
/* The same from JSON text (origin names it in errors). */
int pst_jobfile_parse(const char *text, const char *origin, pst_jobfile *out, pst_status *st);
void pst_jobfile_destroy(pst_jobfile *jf);

#endif
