#include "meta_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"
#include "model.h"
#include "nets.h"
#include "saver.h"

static int usage(void) {
    fprintf(stderr,
            "usage: pstrain meta export OUT.meta [--ps N] [pstrain-worker flags]\n"
            "  Writes the training graph pstrain-worker builds for those flags (model,\n"
            "  optimizer, --job FILE, --partition-min-bytes, ...) as the .meta a checkpoint\n"
            "  would carry, with TensorFlow's saver subgraph; trains nothing. --ps N (or the\n"
            "  job file's PS count) places the variables as worker 0 of such a job does.\n");
    return 2;
}

int pst_launcher_trainer_flags(const char *cmd, int n, char **args, pst_train_flags *f) {
    char err[1024] = "";
    int prc = pst_train_flags_parse(n, args, f, err, sizeof err);
    free(args);
    if (prc == 0) return -1;
    fprintf(stderr, "%s: %s%s", cmd, err, err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
    pst_train_flags_destroy(f);
    return prc == 1 ? 0 : 2;
}

int pst_cmd_meta_export(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage();
    const char *out = argv[1];
    int num_ps = -1;
    /* The flags after OUT go to the trainer's own parser, minus --ps. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    args[n++] = "pstrain-worker";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--ps") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 1024) {
                fprintf(stderr, "pstrain meta export: --ps: '%s' is not a PS count\n", argv[i]);
                free(args);
                return 2;
            }
            num_ps = (int)v;
        } else {
            args[n++] = argv[i];
        }
    }
    pst_train_flags f;
    int prc = pst_launcher_trainer_flags("pstrain meta export", n, args, &f);
    if (prc >= 0) return prc;
    if (num_ps < 0) num_ps = f.job_ps;
    pst_status st = {0};
    model m = {0};
    pst_replica_setter *rs = NULL;
    pst_saver *sv = NULL;
    int rc = 1;
    const pst_net_def *net = pst_net_lookup(f.model);
    if (net == NULL) {
        pst_status_set(&st, PST_E_INVALID, "--model: unknown model '%s' (softmax, mlp, "
                       "simple_cnn, cnn5, lenet5, vgg16, bag_of_ids)", f.model);
        goto done;
    }
    if (pst_worker_build_model_on_ps(&f, net, num_ps, &m, &rs, &st) < 0) goto done;
    if ((sv = pst_saver_new(m.g, NULL, &st)) == NULL) goto done;
    if (pst_saver_write_meta(sv, out, &st) < 0) goto done;
    printf("wrote %s: model %s, %d nodes%s\n", out, net->name, pst_graph_num_nodes(m.g),
           num_ps > 0 ? ", variables placed on the PS" : "");
    rc = 0;
done:
    if (rc) fprintf(stderr, "pstrain meta export: %s\n", st.msg);
    pst_saver_free(sv);
    pst_graph_free(m.g);
    pst_replica_setter_free(rs);
    pst_train_flags_destroy(&f);
    return rc;
}
