/*
 * fuzz_npz — pst_npz_load on arbitrary files (NumPy .npz: a zip archive of .npy arrays). What
 * loads must be n named tensors of supported dtypes.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[4200];
    pst_fuzz_write("arrays.npz", data, size);
    pst_fuzz_path("arrays.npz", path, sizeof path);
    int n;
    char **names;
    pst_tensor **ts;
    pst_status st = {0};
    int rc = pst_npz_load(path, &n, &names, &ts, &st);
    pst_fuzz_check_status(rc, &st, "pst_npz_load");
    if (rc < 0) {
        PST_FUZZ_CHECK(n == 0 && names == NULL && ts == NULL, "a failed load returned arrays");
        return 0;
    }
    for (int i = 0; i < n; i++) {
        PST_FUZZ_CHECK(names[i] != NULL && ts[i] != NULL, "array %d is missing", i);
        PST_FUZZ_CHECK(pst_dtype_valid(ts[i]->dtype), "array '%s' has dtype %d", names[i],
                       (int)ts[i]->dtype);
        free(names[i]);
        pst_tensor_unref(ts[i]);
    }
    free(names);
    free(ts);
    return 0;
}
