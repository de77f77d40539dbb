#include "flags.h"

#include "fashion_mnist.h"
#include "jobfile.h"
#include "lr_schedule.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timeouts above about 34 years are surely typos (and would overflow deadline arithmetic). */
#define PST_MAX_TIMEOUT_MS (INT64_C(1) << 40)

void pst_train_flags_usage(char *buf, size_t len) {
    snprintf(buf, len,
             "usage: pstrain-worker [--job FILE] [--model softmax|mlp|simple_cnn|cnn5|lenet5|vgg16]\n"
             "         [--steps N] [--batch B] [--optimizer adam|sgd|momentum|adagrad|rmsprop]\n"
             "         [--lr X] [--seed S] [--data-dir DIR] [--data-format idx|tfrecord]\n"
             "         [--keep-prob P] [--weight-decay W]\n"
             "         [--lr-decay none|exponential|cosine|polynomial] [--lr-decay-steps N]\n"
             "         [--lr-decay-rate R] [--lr-end X] [--lr-staircase]\n"
             "         [--eval-every N] [--validation N] [--threads T] [--quiet]\n"
             "         [--inter-op-threads T]\n"
             "         [--checkpoint-dir DIR] [--save-every-steps N] [--save-every-secs S]\n"
             "         [--max-to-keep K] [--start-fresh]\n"
             "distributed (between-graph replication; see README):\n"
             "         --cluster FILE --task K  (or TF_CONFIG)  [--mode async|sync|allreduce]\n"
             "         (under srun: --cluster-from slurm [--ps P] [--port-base B])\n"
             "         [--replicas-to-aggregate N] [--placement round_robin|greedy]\n"
             "         [--connect-timeout-ms N] [--ready-timeout-ms N] [--recv-timeout-ms N]\n"
             "         [--status] [--serve-only] [--layer-device SCOPE=/job:worker/task:1]\n"
             "         [--no-shuffle] [--partition-min-bytes N] [--partition-max-parts K]\n"
             "         [--port-file FILE]  (the port served on, for a cluster entry with port 0)\n"
             "security: [--token-file FILE | --token-stdin] [--tls-dir DIR] [--insecure]\n"
             "         [--listen HOST:PORT]  (token from $PST_JOB_TOKEN_FILE by default)\n"
             "launched: --coordinator ADDR --bind HOST:PORT [--heartbeat-ms N] [--events-dir DIR]\n"
             "elastic sync (launched): [--lr-scaling none|linear] [--global-batch N]\n"
             "         [--example-log DIR]  (each step's round and example ids)\n"
             "one process: [--replay-batches FILE]  (step i trains on the examples of line i)\n"
             "joining a running job by hand: --join ADDR [--bind HOST:0] (the job's token;\n"
             "         the worker id and the job's settings come from the coordination service)\n"
             "a TensorFlow user's graph (distributed): --meta FILE\n"
             "         --feed PLACEHOLDER=FILE.tfrecord:FEATURE ... [--train-op NAME] [--loss NAME]\n"
             "         [--init-checkpoint PREFIX]  (a TF checkpoint to start from)\n"
             "         [--records FILE.tfrecord]  (a graph reading its own input: its readers\n"
             "         and TFRecordDatasets read this file, a share per worker)\n"
             "MPI (under mpirun; see README \"MPI\"): [--transport grpc|mpi] [--ps N]\n"
             "         --mode allreduce [--fusion-threshold-bytes N] [--cycle-time-ms X]\n"
             "         --mode hybrid --ps N  (embeddings on the PS, dense gradients allreduced)\n"
             "Trains on Fashion-MNIST and prints test_accuracy=0.XXXX at the end.\n");
}

/* An integer flag in [lo, hi]: anything else (out of range, trailing text, overflow) is an
 * error naming the flag, never a value silently cut to fit a narrower type. */
static int parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out,
                     char *err, size_t errlen) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        snprintf(err, errlen, "%s: '%s' is not an integer in [%lld, %lld]\n", flag, v,
                 (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_f(const char *flag, const char *v, float lo, float hi, float *out, char *err,
                   size_t errlen) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi)) {
        snprintf(err, errlen, "%s: '%s' is not a number in [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* Parses argv[first..argc) into f (which holds defaults or earlier values). */
static int parse_args(int argc, char **argv, int first, pst_train_flags *f, char *err,
                      size_t errlen) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        int64_t v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            pst_train_flags_usage(err, errlen);
            return 1;
        }
        if (strcmp(a, "--quiet") == 0) {
            f->quiet = 1;
            continue;
        }
        if (strcmp(a, "--no-shuffle") == 0) {
            f->no_shuffle = 1;
            continue;
        }
        if (strcmp(a, "--serve-only") == 0) {
            f->serve_only = 1;
            continue;
        }
        if (strcmp(a, "--token-stdin") == 0) {
            f->token_stdin = 1;
            continue;
        }
        if (strcmp(a, "--insecure") == 0) {
            f->insecure = 1;
            continue;
        }
        if (strcmp(a, "--status") == 0) {
            f->ps_status = 1;
            continue;
        }
        if (strcmp(a, "--lr-staircase") == 0) {
            f->lr_staircase = 1;
            continue;
        }
        if (strcmp(a, "--start-fresh") == 0) {
            f->start_fresh = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value\n", a);
            return -1;
        }
        const char *val = argv[++i];
        if (strcmp(a, "--job") == 0)
            continue; /* read before the other flags (pst_train_flags_parse) */
        else if (strcmp(a, "--token-file") == 0)
            f->token_file = val;
        else if (strcmp(a, "--tls-dir") == 0)
            f->tls_dir = val;
        else if (strcmp(a, "--listen") == 0)
            f->listen = val;
        else if (strcmp(a, "--coordinator") == 0)
            f->coordinator = val;
        else if (strcmp(a, "--bind") == 0)
            f->bind = val;
        else if (strcmp(a, "--join") == 0)
            f->join = val;
        else if (strcmp(a, "--example-log") == 0)
            f->example_log = val;
        else if (strcmp(a, "--replay-batches") == 0)
            f->replay = val;
        else if (strcmp(a, "--lr-scaling") == 0) {
            if (strcmp(val, "none") != 0 && strcmp(val, "linear") != 0) {
                snprintf(err, errlen, "--lr-scaling: '%s' is not none or linear\n", val);
                return -1;
            }
            f->lr_scaling = val;
        } else if (strcmp(a, "--global-batch") == 0) {
            if (parse_i64(a, val, 1, 1 << 24, &v, err, errlen) < 0)
                return -1;
            f->global_batch = (int)v;
        }
        else if (strcmp(a, "--events-dir") == 0)
            f->events_dir = val;
        else if (strcmp(a, "--heartbeat-ms") == 0) {
            if (parse_i64(a, val, 10, 600000, &f->heartbeat_ms, err, errlen) < 0) return -1;
        }
        else if (strcmp(a, "--model") == 0)
            f->model = val;
        else if (strcmp(a, "--meta") == 0)
            f->meta = val;
        else if (strcmp(a, "--feed") == 0) {
            if (f->n_feeds == PST_MAX_FEEDS) {
                snprintf(err, errlen, "--feed: at most %d\n", PST_MAX_FEEDS);
                return -1;
            }
            f->feeds[f->n_feeds++] = val;
        } else if (strcmp(a, "--train-op") == 0)
            f->train_op = val;
        else if (strcmp(a, "--loss") == 0)
            f->loss = val;
        else if (strcmp(a, "--init-checkpoint") == 0)
            f->init_checkpoint = val;
        else if (strcmp(a, "--records") == 0)
            f->records = val;
        else if (strcmp(a, "--optimizer") == 0)
            f->optimizer = val;
        else if (strcmp(a, "--data-dir") == 0)
            f->data_dir = val;
        else if (strcmp(a, "--data-format") == 0) {
            if ((f->data_format = pst_data_format_parse(val)) < 0) {
                snprintf(err, errlen, "--data-format: '%s' is not idx or tfrecord\n", val);
                return -1;
            }
        }
        else if (strcmp(a, "--checkpoint-dir") == 0)
            f->checkpoint_dir = val;
        else if (strcmp(a, "--cluster") == 0)
            f->cluster = val;
        else if (strcmp(a, "--port-file") == 0)
            f->port_file = val;
        else if (strcmp(a, "--mode") == 0) {
            if (strcmp(val, "async") != 0 && strcmp(val, "sync") != 0 &&
                strcmp(val, "allreduce") != 0 && strcmp(val, "hybrid") != 0) {
                snprintf(err, errlen, "--mode: '%s' is not async, sync, allreduce or hybrid\n",
                         val);
                return -1;
            }
            f->sync = val;
        } else if (strcmp(a, "--transport") == 0) {
            if (strcmp(val, "grpc") != 0 && strcmp(val, "mpi") != 0) {
                snprintf(err, errlen, "--transport: '%s' is not grpc or mpi\n", val);
                return -1;
            }
            f->transport = val;
        } else if (strcmp(a, "--ps") == 0) {
            if (parse_i64(a, val, 1, 1 << 20, &v, err, errlen) < 0) return -1;
            f->mpi_ps = (int)v;
        } else if (strcmp(a, "--fusion-threshold-bytes") == 0) {
            if (parse_i64(a, val, 0, INT64_C(1) << 31, &f->fusion_bytes, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--cycle-time-ms") == 0) {
            float x;
            if (parse_f(a, val, 0, 10000, &x, err, errlen) < 0) return -1;
            f->cycle_ms = x;
        } else if (strcmp(a, "--placement") == 0) {
            if (strcmp(val, "round_robin") != 0 && strcmp(val, "greedy") != 0) {
                snprintf(err, errlen, "--placement: '%s' is not round_robin or greedy\n", val);
                return -1;
            }
            f->placement = val;
        } else if (strcmp(a, "--layer-device") == 0)
            f->layer_device = val;
        else if (strcmp(a, "--partition-min-bytes") == 0) {
            if (parse_i64(a, val, 1, INT64_C(1) << 40, &f->partition_min_bytes, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--partition-max-parts") == 0) {
            if (parse_i64(a, val, 1, 1 << 16, &v, err, errlen) < 0)
                return -1;
            f->partition_max_parts = (int)v;
        } else if (strcmp(a, "--replicas-to-aggregate") == 0) {
            if (parse_i64(a, val, 1, 1 << 20, &v, err, errlen) < 0)
                return -1;
            f->replicas_to_aggregate = (int)v;
        } else if (strcmp(a, "--connect-timeout-ms") == 0) {
            if (parse_i64(a, val, 1, PST_MAX_TIMEOUT_MS, &f->connect_timeout_ms, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--ready-timeout-ms") == 0) {
            if (parse_i64(a, val, 1, PST_MAX_TIMEOUT_MS, &f->ready_timeout_ms, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--recv-timeout-ms") == 0) {
            if (parse_i64(a, val, 1, PST_MAX_TIMEOUT_MS, &f->recv_timeout_ms, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--steps") == 0) {
            if (parse_i64(a, val, 0, INT64_C(1) << 53, &f->steps, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_i64(a, val, 1, 1 << 24, &v, err, errlen) < 0)
                return -1;
            f->batch = (int)v;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_i64(a, val, 0, INT64_MAX, &f->seed, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--eval-every") == 0) {
            if (parse_i64(a, val, 0, INT64_C(1) << 53, &f->eval_every, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--validation") == 0) {
            if (parse_i64(a, val, 0, 1 << 30, &v, err, errlen) < 0)
                return -1;
            f->validation = (int)v;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_i64(a, val, 1, 1024, &v, err, errlen) < 0)
                return -1;
            f->threads = (int)v;
        } else if (strcmp(a, "--inter-op-threads") == 0) {
            if (parse_i64(a, val, 1, 1024, &v, err, errlen) < 0)
                return -1;
            f->inter_op_threads = (int)v;
        } else if (strcmp(a, "--save-every-steps") == 0) {
            if (parse_i64(a, val, 0, INT64_C(1) << 53, &f->save_every_steps, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--save-every-secs") == 0) {
            if (parse_i64(a, val, 0, INT64_C(1) << 40, &f->save_every_secs, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--max-to-keep") == 0) {
            if (parse_i64(a, val, 0, 1 << 20, &v, err, errlen) < 0)
                return -1;
            f->max_to_keep = (int)v;
        } else if (strcmp(a, "--task") == 0) {
            if (parse_i64(a, val, 0, 1 << 20, &v, err, errlen) < 0)
                return -1;
            f->task = (int)v;
            f->task_given = 1;
        } else if (strcmp(a, "--lr") == 0) {
            if (parse_f(a, val, 0, 100, &f->lr, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--keep-prob") == 0) {
            if (parse_f(a, val, 1e-6f, 1, &f->keep_prob, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--lr-decay") == 0) {
            if (pst_lr_kind_parse(val) < 0) {
                snprintf(err, errlen, "--lr-decay: '%s' is not none, exponential, cosine or "
                         "polynomial\n", val);
                return -1;
            }
            f->lr_decay = val;
        } else if (strcmp(a, "--lr-decay-steps") == 0) {
            if (parse_i64(a, val, 1, INT64_C(1) << 53, &f->lr_decay_steps, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--lr-decay-rate") == 0) {
            if (parse_f(a, val, 1e-9f, 1, &f->lr_decay_rate, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--lr-end") == 0) {
            if (parse_f(a, val, 0, 100, &f->lr_end, err, errlen) < 0)
                return -1;
        } else if (strcmp(a, "--weight-decay") == 0) {
            if (parse_f(a, val, 0, 1, &f->weight_decay, err, errlen) < 0)
                return -1;
        } else {
            snprintf(err, errlen, "unknown flag '%s' (see --help)\n", a);
            return -1;
        }
    }
    return 0;
}

int pst_train_flags_parse(int argc, char **argv, pst_train_flags *f, char *err, size_t errlen) {
    *f = (pst_train_flags){.model = "simple_cnn",
                           .steps = 2000,
                           .batch = 100,
                           .optimizer = "adam",
                           .lr = -1,
                           .lr_decay = "none",
                           .lr_decay_rate = 0.96f,
                           .seed = 1,
                           .data_dir = "/usr/share/datasets/fashion-mnist",
                           .keep_prob = 0.5f,
                           .threads = 2,
                           .validation = 5000,
                           .max_to_keep = 5,
                           .task = 0,
                           .sync = "async",
                           .lr_scaling = "none",
                           .placement = "round_robin",
                           .connect_timeout_ms = 30000,
                           .ready_timeout_ms = 300000,
                           .recv_timeout_ms = 60000,
                           .heartbeat_ms = 1000,
                           .transport = "grpc",
                           .fusion_bytes = INT64_C(64) << 20,
                           .cycle_ms = 5};
    /* --job FILE first: its settings are flags that the command line may override. */
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--job") != 0) continue;
        pst_jobfile *jf = calloc(1, sizeof *jf);
        pst_status st = {0};
        if (!jf || pst_jobfile_load(argv[i + 1], jf, &st) < 0) {
            snprintf(err, errlen, "--job: %s\n", jf ? st.msg : "out of memory");
            free(jf);
            return -1;
        }
        f->job = argv[i + 1];
        f->jobfile = jf;
        f->job_ps = jf->n_ps;
        f->job_workers = jf->n_workers;
        /* One setting at a time, so an error names the key it came from. */
        for (int k = 0; k < jf->argc;) {
            int sw = strcmp(jf->argv[k], "--no-shuffle") == 0 || strcmp(jf->argv[k], "--quiet") == 0 ||
                     strcmp(jf->argv[k], "--lr-staircase") == 0;
            int n = sw || k + 1 >= jf->argc ? 1 : 2;
            char *args[3] = {"job", jf->argv[k], n == 2 ? jf->argv[k + 1] : NULL};
            char sub[512];
            if (parse_args(n + 1, args, 1, f, sub, sizeof sub) != 0) {
                snprintf(err, errlen, "%s: \"%s\": %s", jf->path, jf->keys[k], sub);
                return -1;
            }
            k += n;
        }
        break;
    }
    int rc = parse_args(argc, argv, 1, f, err, errlen);
    if (rc != 0) return rc;
    if (f->lr < 0) f->lr = strcmp(f->model, "simple_cnn") == 0 ? 1e-4f : 1e-3f;
    if (f->lr_decay_steps == 0) f->lr_decay_steps = f->steps;
    if (strcmp(f->lr_decay, "none") != 0 && f->meta) {
        snprintf(err, errlen, "--lr-decay: a --meta graph brings its own optimizer and learning "
                 "rate; decay it in the graph\n");
        return -1;
    }
    if ((strcmp(f->lr_decay, "cosine") == 0 || strcmp(f->lr_decay, "polynomial") == 0) &&
        f->lr_end > f->lr) {
        snprintf(err, errlen, "--lr-end: %g is above the learning rate %g it decays from\n",
                 (double)f->lr_end, (double)f->lr);
        return -1;
    }
    return 0;
}

const char *pst_train_flags_lr_schedule(const pst_train_flags *f, char *buf, size_t len) {
    if (strcmp(f->lr_decay, "none") == 0)
        snprintf(buf, len, "%s", "");
    else if (strcmp(f->lr_decay, "exponential") == 0)
        snprintf(buf, len, ", exponential decay by %g every %lld steps%s", (double)f->lr_decay_rate,
                 (long long)f->lr_decay_steps, f->lr_staircase ? " (staircase)" : "");
    else
        snprintf(buf, len, ", %s decay over %lld steps to %g", f->lr_decay,
                 (long long)f->lr_decay_steps, (double)f->lr_end);
    return buf;
}

pst_lr_schedule pst_train_flags_lr(const pst_train_flags *f) {
    int kind = pst_lr_kind_parse(f->lr_decay);
    return (pst_lr_schedule){.kind = kind < 0 ? PST_LR_CONSTANT : (pst_lr_kind)kind,
                             .lr = f->lr,
                             .decay_steps = f->lr_decay_steps > 0 ? f->lr_decay_steps : f->steps,
                             .rate = f->lr_decay_rate,
                             .end_lr = f->lr_end,
                             .staircase = f->lr_staircase};
}

void pst_train_flags_destroy(pst_train_flags *f) {
    if (f->jobfile) {
        pst_jobfile_destroy(f->jobfile);
        free(f->jobfile);
        f->jobfile = NULL;
    }
}
