/*
 * fuzz_device — pst_device_parse on arbitrary text (device strings come from GraphDefs, cluster
 * specs and the command line). A spec that parses must print canonically as a spec that parses
 * to the same canonical string, and its fully specified form must parse too.
 */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = pst_fuzz_cstr(data, size);
    pst_device_name d;
    pst_status st = {0};
    int rc = pst_device_parse(spec, &d, &st);
    pst_fuzz_check_status(rc, &st, "pst_device_parse");
    if (rc == 0) {
        char canon[512], again[512], full[512];
        pst_device_str(&d, canon, sizeof canon);
        rc = pst_device_canonical(canon, again, sizeof again, &st);
        PST_FUZZ_CHECK(rc == 0, "canonical '%s' of '%s' does not parse: %s", canon, spec, st.msg);
        PST_FUZZ_CHECK(strcmp(canon, again) == 0, "'%s' is canonical '%s' but prints as '%s'",
                       spec, canon, again);
        pst_device_full_str(&d, full, sizeof full);
        pst_device_name f;
        rc = pst_device_parse(full, &f, &st);
        PST_FUZZ_CHECK(rc == 0, "full form '%s' of '%s' does not parse: %s", full, spec, st.msg);
        PST_FUZZ_CHECK(pst_device_same_task(&d, &f) || d.job[0] == '\0',
                       "'%s' and its full form '%s' name different tasks", spec, full);
        char task[512];
        pst_status tst = {0};
        rc = pst_device_task(spec, "/job:localhost", task, sizeof task, &tst);
        pst_fuzz_check_status(rc, &tst, "pst_device_task");
    }
    free(spec);
    return 0;
}
