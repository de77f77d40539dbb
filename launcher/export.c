#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "flags.h"
#include "meta_export.h"
#include "model.h"
#include "nets.h"
#include "saver.h"

static int usage(void) {
    fprintf(stderr,
            "usage: pstrain export saved-model --checkpoint PREFIX|DIR --export-dir DIR\n"
            "           [--version N] [pstrain-worker flags: --model M ...]\n"
            "  Restores the model's variables from a checkpoint (a directory: its newest intact\n"
            "  one) into the serving graph (images -> probabilities, classes) and writes\n"
            "  DIR/N/saved_model.pb and DIR/N/variables/, the layout TensorFlow Serving loads\n"
            "  (N: --version, else the checkpoint's global step).\n");
    return 2;
}

/* The checkpoint's global_step, or -1 when it has none. */
static int64_t checkpoint_step(const char *prefix) {
    pst_status st = {0};
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    if (r == NULL) return -1;
    int64_t step = -1;
    pst_tensor *t = pst_bundle_reader_find(r, "global_step")
                        ? pst_bundle_reader_read(r, "global_step", &st) : NULL;
    if (t && t->n == 1) step = pst_tensor_get_i64(t, 0);
    pst_tensor_unref(t);
    pst_bundle_reader_free(r);
    return step;
}

static int export_saved_model(int argc, char **argv) {
    const char *ckpt = NULL, *export_dir = NULL;
    int64_t version = -1;
    char **args = calloc((size_t)argc + 2, sizeof *args);
    int n = 0;
    args[n++] = "pstrain-worker";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) {
            ckpt = argv[++i];
        } else if (strcmp(argv[i], "--export-dir") == 0 && i + 1 < argc) {
            export_dir = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0) {
                fprintf(stderr, "pstrain export: --version: '%s' is not a version number "
                                "(an integer >= 0)\n", argv[i]);
                free(args);
                return 2;
            }
            version = v;
        } else {
            args[n++] = argv[i];
        }
    }
    if (ckpt == NULL || export_dir == NULL) {
        free(args);
        return usage();
    }
    pst_train_flags f;
    int prc = pst_launcher_trainer_flags("pstrain export", n, args, &f);
    if (prc >= 0) return prc;
    pst_status st = {0};
    serving_model m = {0};
    pst_session *sess = NULL;
    pst_saver *sv = NULL;
    int rc = 1;
    char prefix[4096], out[4300];
    const pst_net_def *net = pst_net_lookup(f.model);
    struct stat sb;
    if (net == NULL) {
        pst_status_set(&st, PST_E_INVALID, "--model: unknown model '%s' (softmax, mlp, "
                       "simple_cnn, cnn5, lenet5, vgg16, bag_of_ids)", f.model);
        goto done;
    }
    snprintf(prefix, sizeof prefix, "%s", ckpt);
    if (stat(ckpt, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char warn[1024] = "";
        int lrc = pst_latest_checkpoint(ckpt, 0, prefix, sizeof prefix, warn, sizeof warn, &st);
        if (warn[0]) fprintf(stderr, "pstrain export: %s\n", warn);
        if (lrc < 0) goto done;
        if (lrc == 1) {
            pst_status_set(&st, PST_E_NOT_FOUND, "%s holds no checkpoint", ckpt);
            goto done;
        }
    }
    if (version < 0) version = checkpoint_step(prefix);
    if (version < 0) version = 1;
    if (pst_worker_build_serving_model(&f, net, &m, &st) < 0) goto done;
    if ((sess = pst_session_new(m.g, NULL, &st)) == NULL) goto done;
    if ((sv = pst_saver_new(m.g, NULL, &st)) == NULL) goto done;
    if (pst_saver_restore(sv, sess, prefix, &st) < 0) goto done;
    pst_signature_tensor in[1] = {{"images", m.images}};
    pst_signature_tensor outs[2] = {{"classes", m.classes}, {"probabilities", m.probabilities}};
    pst_signature_def sig = {.name = "serving_default",
                             .method_name = "tensorflow/serving/predict",
                             .n_inputs = 1,
                             .n_outputs = 2,
                             .inputs = in,
                             .outputs = outs};
    if (pst_saver_export_saved_model(sv, sess, export_dir, version, 1, &sig, out, sizeof out,
                                     &st) < 0)
        goto done;
    printf("exported %s (model %s from %s): saved_model.pb, variables/; signature "
           "serving_default: images -> classes, probabilities\n", out, net->name, prefix);
    rc = 0;
done:
    if (rc) fprintf(stderr, "pstrain export: %s\n", st.msg);
    pst_saver_free(sv);
    pst_session_free(sess);
    pst_graph_free(m.g);
    pst_train_flags_destroy(&f);
    return rc;
}

int pst_cmd_export(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "saved-model") == 0) return export_saved_model(argc - 1, argv + 1);
    return usage();
}
