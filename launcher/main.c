/* pstrain: the command line. Subcommands dispatch to their own files. */
#include <stdio.h>
#include <string.h>

#include "ckpt.h"
#include "dist_ops.h"
#include "inspect.h"
#include "meta.h"
#include "ops.h"

static int usage(void) {
    fprintf(stderr, "usage: pstrain <command> [args]\n"
                    "commands:\n"
                    "  ckpt ls DIR                         list a directory's checkpoints\n"
                    "  ckpt show PREFIX [--tensor NAME] [--values]\n"
                    "  ckpt verify PREFIX                  exit 0 only when every checksum holds\n"
                    "  meta show FILE                      variables and collections of a .meta\n"
                    "                                      file or a saved_model.pb\n"
                    "  inspect placement --job FILE --dry-run\n"
                    "                                      which PS task holds each variable of\n"
                    "                                      the job's model (starts nothing)\n");
    return 2;
}

int main(int argc, char **argv) {
    pst_ops_init();      /* the built-in op families, before any graph */
    pst_dist_ops_init(); /* and the distributed ones: a sync job's .meta holds PstSync ops */
    if (argc < 2) return usage();
    if (strcmp(argv[1], "ckpt") == 0) return pst_cmd_ckpt(argc - 1, argv + 1);
    if (strcmp(argv[1], "meta") == 0) return pst_cmd_meta(argc - 1, argv + 1);
    if (strcmp(argv[1], "inspect") == 0) return pst_cmd_inspect(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage();
        return 0;
    }
    fprintf(stderr, "pstrain: unknown command '%s'\n", argv[1]);
    return usage();
}
