#include "memtune.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

int pst_memtune_process(void) {
    const char *e = getenv("PST_MALLOC_TUNE");
    if (e && strcmp(e, "0") == 0) return 0;
    int ok = mallopt(M_MMAP_THRESHOLD, PST_MEMTUNE_MMAP_MB << 20);
    ok &= mallopt(M_TRIM_THRESHOLD, PST_MEMTUNE_TRIM_MB << 20);
    return ok ? 1 : 0;
}
