/*
 * fuzz_cluster — pst_cluster_parse on arbitrary text (a cluster file or job file). A spec that
 * parses must print as JSON that parses to the same cluster, every task's device string must
 * lead back to its address, and every task must pass pst_cluster_check_task. The text is also
 * tried as a device string against the cluster.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "fuzz.h"

static void check_same(const pst_cluster *a, const pst_cluster *b) {
    int nj = pst_cluster_num_jobs(a);
    PST_FUZZ_CHECK(pst_cluster_num_jobs(b) == nj, "%d jobs came back as %d", nj,
                   pst_cluster_num_jobs(b));
    for (int j = 0; j < nj; j++) {
        const char *name = pst_cluster_job_name(a, j);
        PST_FUZZ_CHECK(strcmp(name, pst_cluster_job_name(b, j)) == 0, "job %d renamed", j);
        int nt = pst_cluster_num_tasks(a, name);
        PST_FUZZ_CHECK(nt >= 1 && pst_cluster_num_tasks(b, name) == nt, "job '%s' changed size",
                       name);
        for (int i = 0; i < nt; i++) {
            const char *x = pst_cluster_address(a, name, i), *y = pst_cluster_address(b, name, i);
            PST_FUZZ_CHECK(strcmp(x, y) == 0, "%s[%d] changed address", name, i);
        }
    }
}

static void check_tasks(const pst_cluster *c) {
    for (int j = 0; j < pst_cluster_num_jobs(c); j++) {
        const char *name = pst_cluster_job_name(c, j);
        int nt = pst_cluster_num_tasks(c, name);
        for (int i = 0; i < nt; i++) {
            pst_status st = {0};
            PST_FUZZ_CHECK(pst_cluster_check_task(c, name, i, &st) == 0, "%s", st.msg);
            char dev[256];
            PST_FUZZ_CHECK(pst_cluster_task_device(c, name, i, dev, sizeof dev) == 0,
                           "no device for %s[%d]", name, i);
            const char *a = pst_cluster_address_of_device(c, dev);
            PST_FUZZ_CHECK(a != NULL && strcmp(a, pst_cluster_address(c, name, i)) == 0,
                           "device %s does not lead to %s[%d]", dev, name, i);
        }
        pst_status st = {0};
        int rc = pst_cluster_check_task(c, name, nt, &st);
        PST_FUZZ_CHECK(rc < 0, "task %d of a job of %d passes", nt, nt);
        pst_fuzz_check_status(rc, &st, "pst_cluster_check_task");
        PST_FUZZ_CHECK(pst_cluster_address(c, name, -1) == NULL, "an address for task -1");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = pst_fuzz_cstr(data, size);
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(text, "fuzz.json", &st);
    pst_fuzz_check_status(c ? 0 : -1, &st, "pst_cluster_parse");
    if (c) {
        PST_FUZZ_CHECK(pst_cluster_num_jobs(c) >= 1, "a cluster without jobs");
        check_tasks(c);
        char *json = pst_cluster_to_json(c);
        PST_FUZZ_CHECK(json != NULL, "pst_cluster_to_json failed");
        pst_cluster *c2 = pst_cluster_parse(json, "printed", &st);
        PST_FUZZ_CHECK(c2 != NULL, "the printed spec %s does not parse: %s", json, st.msg);
        check_same(c, c2);
        pst_cluster_free(c2);
        free(json);
        (void)pst_cluster_address_of_device(c, text);
        pst_status tst = {0};
        int rc = pst_cluster_check_task(c, text, 0, &tst);
        pst_fuzz_check_status(rc, &tst, "pst_cluster_check_task");
        pst_cluster_free(c);
    }
    free(text);
    return 0;
}
