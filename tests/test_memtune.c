/* memtune: the binaries' allocator settings keep large blocks in the heap (base/memtune.h). */
#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memtune.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define PST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PST_UNDER_ASAN 1
#endif
#endif

/* Bytes of blocks glibc serves with their own mapping after allocating (and touching) 8 MB. */
static size_t mapped_bytes_for_8mb(void) {
    size_t before = mallinfo2().hblkhd;
    char *p = malloc(8 << 20);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 8 << 20);
    size_t after = mallinfo2().hblkhd;
    free(p);
    return after - before;
}

START_TEST(test_disabled_by_environment) {
    setenv("PST_MALLOC_TUNE", "0", 1);
    ck_assert_int_eq(pst_memtune_process(), 0);
    unsetenv("PST_MALLOC_TUNE");
}
END_TEST

START_TEST(test_large_blocks_stay_in_heap) {
#ifdef PST_UNDER_ASAN
    return; /* the sanitizer's allocator takes no glibc settings */
#endif
    /* glibc's default, in a child: an 8 MB block is its own mapping */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(mapped_bytes_for_8mb() >= (8u << 20) ? 0 : 1);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* tuned: it comes from the heap, and stays there for the next one */
    ck_assert_int_eq(pst_memtune_process(), 1);
    ck_assert_uint_eq(mapped_bytes_for_8mb(), 0);
    size_t heap = mallinfo2().arena;
    ck_assert_uint_ge(heap, 8u << 20);
    ck_assert_uint_eq(mapped_bytes_for_8mb(), 0);
    ck_assert_uint_eq(mallinfo2().arena, heap);
}
END_TEST

int main(void) {
    Suite *s = suite_create("memtune");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_disabled_by_environment);
    tcase_add_test(tc, test_large_blocks_stay_in_heap);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
