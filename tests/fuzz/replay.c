/*
 * replay — a main for the harnesses where libFuzzer is not linked (gcc, or clang without
 * -DPST_FUZZ=ON): runs LLVMFuzzerTestOneInput once on every file named on the command line, or
 * on every file of a directory named there, in name order, and prints how many ran. A crash
 * or failed invariant aborts as it would under the fuzzer; reproduce one with
 * `build/tests/fuzz/fuzz_NAME crash-file`.
 */
#define _DEFAULT_SOURCE /* scandir, alphasort */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "fuzz.h"

static int run_file(const char *path) {
    uint8_t *buf;
    size_t len;
    pst_status st = {0};
    if (pst_file_read(path, (size_t)64 << 20, &buf, &len, &st) < 0) {
        fprintf(stderr, "replay: %s\n", st.msg);
        return -1;
    }
    /* An exact-size copy, so ASan sees a read one past the input as the fuzzer would. */
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

static int skip_name(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    int runs = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) < 0) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad += run_file(argv[i]) < 0;
            runs++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_name, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: cannot list %s\n", argv[i]);
            bad++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            bad += run_file(path) < 0;
            runs++;
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %d input%s run, %d unreadable\n", runs, runs == 1 ? "" : "s", bad);
    return bad || runs == 0 ? 1 : 0;
}
