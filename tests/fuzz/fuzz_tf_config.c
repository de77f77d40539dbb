/*
 * fuzz_tf_config — pst_cluster_from_env with arbitrary text as TF_CONFIG (up to its first NUL,
 * as an environment variable holds). Unset or blank gives no cluster and no error; a task
 * that comes back must be a task of the cluster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fuzz.h"

/* "TF_CONFIG=<input>" for putenv: setenv would keep a copy of every value for the life of the
 * process (glibc never frees them), millions of them in a long run. */
static char *env;
static size_t env_cap;

static void set_tf_config(const char *text) {
    size_t need = strlen("TF_CONFIG=") + strlen(text) + 1;
    char *old = NULL;
    if (need > env_cap) {
        old = env;
        env_cap = need * 2;
        env = malloc(env_cap);
        PST_FUZZ_CHECK(env != NULL, "out of memory");
    }
    snprintf(env, env_cap, "TF_CONFIG=%s", text);
    PST_FUZZ_CHECK(putenv(env) == 0, "putenv");
    free(old); /* no longer in the environment */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = pst_fuzz_cstr(data, size);
    set_tf_config(text);
    char type[64];
    int index;
    pst_status st = {0};
    pst_cluster *c = pst_cluster_from_env(NULL, type, sizeof type, &index, &st);
    if (c == NULL && st.code == 0) {
        PST_FUZZ_CHECK(text[strspn(text, " \t\r\n")] == '\0', "no cluster and no error for '%s'",
                       text);
    } else {
        pst_fuzz_check_status(c ? 0 : -1, &st, "pst_cluster_from_env");
    }
    if (c) {
        if (index >= 0) {
            pst_status tst = {0};
            PST_FUZZ_CHECK(pst_cluster_check_task(c, type, index, &tst) == 0, "%s", tst.msg);
        } else {
            PST_FUZZ_CHECK(type[0] == '\0', "task type '%s' without an index", type);
        }
        pst_cluster_free(c);
    }
    free(text);
    return 0;
}
