/*
 * fuzz — what every harness in tests/fuzz shares.
 *
 * A harness is one file, fuzz_<name>.c, defining libFuzzer's entry point and nothing else
 * public:
 *
 *     int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
 *         char *text = pst_fuzz_cstr(data, size);          // when the decoder wants a string
 *         pst_status st = {0};
 *         pst_thing *t = pst_thing_parse(text, &st);
 *         pst_fuzz_check_status(t ? 0 : -1, &st, "pst_thing_parse");
 *         ...exercise t, check its invariants with PST_FUZZ_CHECK...
 *         pst_thing_free(t);
 *         free(text);
 *         return 0;
 *     }
 *
 * and its seed corpus is tests/fuzz/corpus/<name>/. tests/fuzz/CMakeLists.txt finds both by
 * name: nothing else to edit. With clang and -DPST_FUZZ=ON the file is linked with libFuzzer;
 * in every other build with replay.c, a main that runs each corpus file once (ctest
 * fuzz_corpus_<name>), so the corpora double as regression tests under gcc and ASan.
 *
 * Harnesses must be deterministic, free everything they allocate, and write files only under
 * pst_fuzz_dir() (a private directory, removed at exit).
 */
#ifndef PST_FUZZ_H
#define PST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* libFuzzer's entry points; fuzz.c defines the initializer for every harness (pst_ops_init,
 * quiet log). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The harness's private directory, pst-fuzz-XXXXXX in $TMPDIR, else in /dev/shm (memory: many
 * times faster per input than a disk), else in /tmp; made on first use and removed with
 * everything in it when the process exits normally (a crash leaves it, with the files of the
 * crashing input). */
const char *pst_fuzz_dir(void);
/* dir/name into out (out_len bytes); returns out. Aborts when it does not fit. */
char *pst_fuzz_path(const char *name, char *out, size_t out_len);
/* Writes len bytes to dir/name, replacing the file (no fsync: speed matters, durability does
 * not). Aborts on an I/O error: the harness cannot go on without its file. */
void pst_fuzz_write(const char *name, const void *data, size_t len);
/* A NUL-terminated copy of data (malloc'd; the caller frees it). Bytes after an embedded NUL
 * are kept but invisible to string functions, as in a C string from a file. */
char *pst_fuzz_cstr(const uint8_t *data, size_t size);

/* An invariant of the code under test; a violation aborts, which the fuzzer reports as a crash
 * with the message. */
#define PST_FUZZ_CHECK(cond, ...)                                                                \
    do {                                                                                          \
        if (!(cond)) pst__fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                      \
    } while (0)
void pst__fuzz_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* The library's error contract: a failure (rc < 0) leaves st with a negative code and a message
 * naming what was wrong; a success leaves st clear. `what` names the call in the report. */
void pst_fuzz_check_status(int rc, const pst_status *st, const char *what);

#endif
