/*
 * fuzz_ckpt_state — pst_checkpoint_list on an arbitrary `checkpoint` state file (TensorFlow's
 * text CheckpointState: model_checkpoint_path and all_model_checkpoint_paths lines). Paths
 * that come back are resolved against the directory, the newest last.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "saver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pst_fuzz_write("checkpoint", data, size);
    char **paths;
    pst_status st = {0};
    int n = pst_checkpoint_list(pst_fuzz_dir(), &paths, &st);
    pst_fuzz_check_status(n, &st, "pst_checkpoint_list");
    if (n < 0) return 0;
    for (int i = 0; i < n; i++) {
        PST_FUZZ_CHECK(paths[i] != NULL, "path %d is missing", i);
        free(paths[i]);
    }
    free(paths);
    return 0;
}
