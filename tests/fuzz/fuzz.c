/* fuzz: the helpers every harness shares (see fuzz.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ops.h"

static char fuzz_dir[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    pst_ops_init();
    /* Rejected inputs are the normal case here: millions of warnings would only cost time. */
    pst_log_set_level(PST_LOG_QUIET);
    return 0;
}

void pst__fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void pst_fuzz_check_status(int rc, const pst_status *st, const char *what) {
    if (rc < 0) {
        PST_FUZZ_CHECK(st->code < 0, "%s failed (%d) without setting the status", what, rc);
        PST_FUZZ_CHECK(st->msg[0] != '\0', "%s failed (%d) with an empty message", what, rc);
    } else {
        PST_FUZZ_CHECK(st->code == 0, "%s succeeded but left an error: %s", what, st->msg);
    }
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *f) {
    (void)sb;
    (void)type;
    (void)f;
    remove(path);
    return 0;
}

static void remove_dir(void) {
    if (fuzz_dir[0]) nftw(fuzz_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *pst_fuzz_dir(void) {
    if (fuzz_dir[0]) return fuzz_dir;
    /* Memory-backed /dev/shm first: on a disk file system each input's writes, truncations
     * and opens cost ~10x what the decoder does. */
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    int n = snprintf(fuzz_dir, sizeof fuzz_dir, "%s/pst-fuzz-XXXXXX", tmp);
    PST_FUZZ_CHECK(n > 0 && (size_t)n < sizeof fuzz_dir, "TMPDIR is too long");
    PST_FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL, "cannot make a directory in %s: %s", tmp,
                   strerror(errno));
    atexit(remove_dir);
    return fuzz_dir;
}

char *pst_fuzz_path(const char *name, char *out, size_t out_len) {
    int n = snprintf(out, out_len, "%s/%s", pst_fuzz_dir(), name);
    PST_FUZZ_CHECK(n > 0 && (size_t)n < out_len, "path of %s does not fit", name);
    return out;
}

void pst_fuzz_write(const char *name, const void *data, size_t len) {
    char path[4200];
    pst_fuzz_path(name, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    PST_FUZZ_CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        PST_FUZZ_CHECK(w > 0, "writing %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    PST_FUZZ_CHECK(close(fd) == 0, "closing %s: %s", path, strerror(errno));
}

char *pst_fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    PST_FUZZ_CHECK(s != NULL, "out of memory copying %zu bytes", size);
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
