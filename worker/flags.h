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

struct pst_jobfile;
struct pst_lr_schedule;

#define PST_MAX_FEEDS 32

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
    const char *lr_decay;       /* --lr-decay none|exponential|cosine|polynomial (none): the
                                   learning rate as a function of the global step */
    int64_t lr_decay_steps;     /* --lr-decay-steps N (0: --steps) */
    float lr_decay_rate;        /* --lr-decay-rate R: exponential's factor per N steps (0.96) */
    float lr_end;               /* --lr-end X: cosine/polynomial's rate after N steps (0) */
    int lr_staircase;           /* --lr-staircase: exponential decays in whole periods */
    int64_t eval_every;         /* --eval-every (0: only at the end) */
    int threads;                /* --threads (2) */
    int inter_op_threads;       /* --inter-op-threads (0: $PST_INTER_OP_THREADS or 1) */
    int validation;             /* --validation examples held out of training (5000) */
    const char *checkpoint_dir; /* --checkpoint-dir (none) */
    int64_t save_every_steps;   /* --save-every-steps (0: only at the end, with a dir) */
    int64_t save_every_secs;    /* --save-every-secs (0: none; with steps, whichever comes first) */
    int max_to_keep;            /* --max-to-keep (5) */
    int start_fresh;            /* --start-fresh: restore nothing from --checkpoint-dir, start
                                   at step 0 (its checkpoints stay on disk) */
    int quiet;                  /* --quiet: no progress lines */
    const char *cluster;        /* --cluster FILE (distributed) */
    int task;                   /* --task K */
    const char *sync;           /* --mode async|sync|allreduce|hybrid */
    /* distributed (with --cluster or TF_CONFIG) */
    int task_given;             /* --task was on the command line */
    int replicas_to_aggregate;  /* --replicas-to-aggregate (sync; default: every worker) */
    int sync_total;             /* set by the worker: replicas in all (backup workers count) */
    int sync_elastic;           /* set by the worker: a launched sync job (rounds of members) */
    int64_t sync_member;        /* set by the worker: its id, and its process's incarnation */
    uint64_t sync_incarnation;
    int lr_scale_base;          /* set by the worker: --lr-scaling linear's reference count */
    const char *lr_scaling;     /* --lr-scaling none|linear: elastic sync, fixed per-worker
                                   batch: lr times members / the job file's workers */
    int global_batch;           /* --global-batch N: elastic sync keeps the examples of a
                                   round at N (each worker's batch N / members); 0: the
                                   per-worker batch stays --batch */
    const char *example_log;    /* --example-log DIR: each step's round and example ids, one
                                   file per worker process */
    const char *replay;         /* --replay-batches FILE (one process): step i trains on the
                                   examples listed on line i (indices into the training file) */
    const char *placement;      /* --placement round_robin|greedy */
    int64_t connect_timeout_ms; /* --connect-timeout-ms: peers unreachable this long fail (30000) */
    int64_t ready_timeout_ms;   /* --ready-timeout-ms: non-chief waits for init this long (300000) */
    int64_t recv_timeout_ms;    /* --recv-timeout-ms: a step waits this long for a tensor (60000) */
    int ps_status;              /* --status: print every task's status at the end */
    int64_t partition_min_bytes; /* --partition-min-bytes N: partition layer weights of at
                                   least 2N bytes along axis 0 into parts of >= N bytes */
    int partition_max_parts;    /* --partition-max-parts K (default: the number of PS) */
    int no_shuffle;             /* --no-shuffle: read examples in order (for exact comparisons) */
    int serve_only;             /* --serve-only: train nothing, run partitions others place here
                                   until the chief finishes */
    const char *layer_device;   /* --layer-device SCOPE=DEV: model parallelism, the ops under
                                   name scope SCOPE run on DEV (e.g. mlp/fc2=/job:worker/task:1) */
    const char *job;            /* --job FILE: the job file's settings, overridden by flags */
    struct pst_jobfile *jobfile; /* owned (pst_train_flags_destroy) */
    int job_ps, job_workers;    /* task counts of the job file's cluster (0: none) */
    const char *port_file;      /* --port-file FILE: write the port this task serves on (a
                                   cluster entry with port 0 picks a free one) */
    /* security (see README "Security") */
    const char *token_file;     /* --token-file FILE (else $PST_JOB_TOKEN_FILE / $PST_JOB_TOKEN) */
    int token_stdin;            /* --token-stdin: the token's line on stdin (ssh launches) */
    const char *tls_dir;        /* --tls-dir DIR: mutual TLS (ca.crt, task.crt, task.key) */
    int insecure;               /* --insecure: cleartext to non-loopback addresses */
    const char *listen;         /* --listen HOST:PORT: serve there, not at the cluster address */
    /* started by pstrain launch */
    const char *coordinator;    /* --coordinator ADDR: the launcher's coordination service */
    const char *bind;           /* --bind HOST:PORT: serve there (port 0: any), register it */
    int64_t heartbeat_ms;       /* --heartbeat-ms N (1000) */
    const char *events_dir;     /* --events-dir DIR: the chief's TensorBoard event files */
    const char *join;           /* --join ADDR: join a running job's coordination service by
                                   hand (a worker id and the job's settings come from it) */
    /* MPI (see README "MPI") */
    const char *transport;      /* --transport grpc|mpi (grpc) */
    int mpi_ps;                 /* --ps N: ranks 0..N-1 of an MPI job are the PS (default: the
                                   job file's "ps" count) */
    int64_t fusion_bytes;       /* --fusion-threshold-bytes N: allreduce fusion buffer (64 MiB;
                                   0: one allreduce per gradient) */
    double cycle_ms;            /* --cycle-time-ms X: how often ready gradients are fused and
                                   reduced (5) */
    /* a TensorFlow user's graph instead of a model-zoo network (README "TensorFlow users'
     * graphs"): its placeholders fed from TFRecord files of tf.train.Example */
    const char *meta;           /* --meta FILE: the .meta (or saved_model.pb) to train */
    const char *feeds[PST_MAX_FEEDS]; /* --feed PLACEHOLDER=FILE.tfrecord:FEATURE (repeated) */
    int n_feeds;
    const char *train_op;       /* --train-op NAME (default: found as pstrain train finds it) */
    const char *loss;           /* --loss NAME (default: the loss tf.gradients started from) */
    const char *init_checkpoint; /* --init-checkpoint PREFIX: a TF checkpoint the chief starts
                                   from when --checkpoint-dir holds none */
    const char *records;        /* --records FILE.tfrecord: a graph that reads its own input
                                   (queues, tf.data) reads this file, each worker its share */
    /* input */
    int data_format;            /* --data-format idx|tfrecord (pst_data_format; idx): the IDX
                                   files of --data-dir, or its train/test .tfrecord[.gz|.zlib]
                                   files of tf.train.Example (pstrain data convert writes them) */
} pst_train_flags;

/* Room for the usage text pst_train_flags_parse writes to err on --help (a smaller err cuts it
 * short). */
#define PST_TRAIN_USAGE_MAX 8192

/* Fills defaults and parses argv; returns 0, 1 for --help (usage written to err), or -1 with a
 * message naming the flag at fault. */
int pst_train_flags_parse(int argc, char **argv, pst_train_flags *f, char *err, size_t errlen);
void pst_train_flags_usage(char *buf, size_t len);
/* Frees what parsing allocated (the job file's settings). */
void pst_train_flags_destroy(pst_train_flags *f);

/* The learning-rate schedule the flags ask for (common/train/lr_schedule.h). */
struct pst_lr_schedule pst_train_flags_lr(const pst_train_flags *f);
/* ", cosine decay over N steps to X" (empty without a schedule), for progress lines. */
const char *pst_train_flags_lr_schedule(const pst_train_flags *f, char *buf, size_t len);

#endif
