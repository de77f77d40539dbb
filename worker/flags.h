/*
 * flags — command-line options of pstrain-worker (and the trainer it runs).
 *
 *     pst_train_flags f;
 *     if (pst_train_flags_parse(argc, argv, &f, err, sizeof err) < 0) { fputs(err, stderr); ... }
 */
#ifndef PST_WORKER_FLAGS_H
#define PST_WORKER_FLAGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pst_train_flags {
    const char *model;          /* --model (simple_cnn) */
    int64_t steps;              /* --steps (2000) */
    int batch;                  /* --batch (100) */
    const char *optimizer;      /* --optimizer (adam) */
    float lr;                   /* --lr (1e-4 for simple_cnn, else 1e-3) */
    int64_t seed;               /* --seed (1) */
    const char *data_dir;       /* --data-dir (/usr/share/datasets/fashion-mnist) */
    float keep_prob;            /* --keep-prob (0.5) */
    float weight_decay;         /* --weight-decay (0) */
    int64_t eval_every;         /* --eval-every (0: only at the end) */
    int threads;                /* --threads (2) */
    int validation;             /* --validation examples held out of training (5000) */
    const char *checkpoint_dir; /* --checkpoint-dir (none) */
    int64_t save_every_steps;   /* --save-every-steps (0: only at the end, with a dir) */
    int max_to_keep;            /* --max-to-keep (5) */
    int quiet;                  /* --quiet: no progress lines */
    const char *cluster;        /* --cluster FILE (distributed) */
    int task;                   /* --task K */
    const char *sync;           /* --mode async|sync */
} pst_train_flags;

/* Fills defaults and parses argv; returns 0, 1 for --help (usage written to err), or -1 with a
 * message naming the flag at fault. */
int pst_train_flags_parse(int argc, char **argv, pst_train_flags *f, char *err, size_t errlen);
void pst_train_flags_usage(char *buf, size_t len);

#endif
