/* pstrain: the command line. Subcommands dispatch to their own files. */
#include <stdio.h>
#include <string.h>

#include "memtune.h"
#include "ckpt.h"
#include "data.h"
#include "export.h"
#include "dist_ops.h"
#include "inspect.h"
#include "launch.h"
#include "meta.h"
#include "train.h"
#include "ops.h"
#include "eval_cmd.h"
#include "token.h"

static int usage(void) {
    fprintf(stderr, "usage: pstrain <command> [args]\n"
                    "commands:\n"
                    "  launch JOB.json [--run-dir DIR]     start a job, supervise it, show progress\n"
                    "  status RUN                          tasks, addresses, states, step, rate\n"
                    "  stop RUN                            checkpoint, then every task exits\n"
                    "  resume RUN [--ps N] [--workers M]   restart from the newest checkpoint\n"
                    "  scale RUN --workers N               grow or shrink a running job\n"
                    "  logs RUN [TASK]                     the tasks' logs (ps0, worker1, ...)\n"
                    "  eval RUN | --checkpoint-dir DIR     evaluate each new checkpoint on the\n"
                    "                                      test set (--max-evals N)\n"
                    "  ckpt ls DIR                         list a directory's checkpoints\n"
                    "  ckpt show PREFIX [--tensor NAME] [--values]\n"
                    "  ckpt verify PREFIX                  exit 0 only when every checksum holds\n"
                    "  ckpt diff A B [--tolerance X]       exit 0 when every tensor of A is B's\n"
                    "  data convert --from idx --to tfrecord --out DIR [--split train|test|all]\n"
                    "       [--data-dir DIR] [--float] [--compression none|zlib|gzip]\n"
                    "                                      Fashion-MNIST IDX files to TFRecord\n"
                    "                                      files of tf.train.Example\n"
                    "  data show FILE [--limit N]          a TFRecord file's records and features\n"
                    "  meta show FILE                      variables and collections of a .meta\n"
                    "                                      file or a saved_model.pb\n"
                    "  train --meta FILE --feed PH=FILE.tfrecord:FEATURE ... [--checkpoint PREFIX]\n"
                    "        [--train-op NAME] [--steps N] [--batch B] [--save PREFIX]\n"
                    "                                      train a TensorFlow user's graph\n"
                    "  export saved-model --checkpoint PREFIX|DIR --export-dir DIR [--version N]\n"
                    "       [pstrain-worker flags]        a trained model as a SavedModel\n"
                    "                                      (DIR/N/) for TensorFlow Serving\n"
                    "  meta export OUT.meta [--ps N] [pstrain-worker flags]\n"
                    "                                      the training graph as a .meta file\n"
                    "                                      TensorFlow imports (trains nothing)\n"
                    "  inspect placement --job FILE --dry-run\n"
                    "                                      which PS task holds each variable of\n"
                    "                                      the job's model (starts nothing)\n"
                    "  token new FILE                      a new job token (mode 0600) for\n"
                    "                                      PST_JOB_TOKEN_FILE\n");
    return 2;
}

int main(int argc, char **argv) {
    pst_memtune_process(); /* large buffers stay in the heap (base/memtune.h) */
    pst_ops_init();      /* the built-in op families, before any graph */
    pst_dist_ops_init(); /* and the distributed ones: a sync job's .meta holds PstSync ops */
    if (argc < 2) return usage();
    if (strcmp(argv[1], "launch") == 0) return pst_cmd_launch(argc - 1, argv + 1);
    if (strcmp(argv[1], "resume") == 0) return pst_cmd_resume(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0) return pst_cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "stop") == 0) return pst_cmd_stop(argc - 1, argv + 1);
    if (strcmp(argv[1], "scale") == 0) return pst_cmd_scale(argc - 1, argv + 1);
    if (strcmp(argv[1], "logs") == 0) return pst_cmd_logs(argc - 1, argv + 1);
    if (strcmp(argv[1], "ckpt") == 0) return pst_cmd_ckpt(argc - 1, argv + 1);
    if (strcmp(argv[1], "data") == 0) return pst_cmd_data(argc - 1, argv + 1);
    if (strcmp(argv[1], "meta") == 0) return pst_cmd_meta(argc - 1, argv + 1);
    if (strcmp(argv[1], "train") == 0) return pst_cmd_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "export") == 0) return pst_cmd_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "inspect") == 0) return pst_cmd_inspect(argc - 1, argv + 1);
    if (strcmp(argv[1], "token") == 0) return pst_cmd_token(argc - 1, argv + 1);
    if (strcmp(argv[1], "eval") == 0) return pst_cmd_eval(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage();
        return 0;
    }
    fprintf(stderr, "pstrain: unknown command '%s'\n", argv[1]);
    return usage();
}
