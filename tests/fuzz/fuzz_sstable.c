/*
 * fuzz_sstable — pst_sstable_parse on arbitrary bytes (a checkpoint's .index is one). A table
 * that parses must find each of its keys, and must come back equal when written again with
 * the builder and parsed.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sstable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pst_sstable *t;
    pst_status st = {0};
    int rc = pst_sstable_parse(data, size, "fuzz.index", &t, &st);
    pst_fuzz_check_status(rc, &st, "pst_sstable_parse");
    if (rc < 0) {
        PST_FUZZ_CHECK(t == NULL, "a failed parse returned a table");
        return 0;
    }
    pst_sstable_builder *b = pst_sstable_builder_new();
    for (int i = 0; i < t->n; i++) {
        const pst_sstable_entry *e = &t->entries[i];
        PST_FUZZ_CHECK(pst_sstable_find(t, e->key, e->klen) == e, "entry %d is not found", i);
        PST_FUZZ_CHECK(pst_sstable_add(b, e->key, e->klen, e->val, e->vlen) == 0,
                       "entry %d is out of order", i);
    }
    PST_FUZZ_CHECK(pst_sstable_find(t, "\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9) == NULL ||
                       t->n > 0,
                   "an empty table found a key");
    uint8_t *buf;
    size_t len;
    pst_sstable_finish(b, &buf, &len);
    pst_sstable *t2;
    rc = pst_sstable_parse(buf, len, "rewritten.index", &t2, &st);
    PST_FUZZ_CHECK(rc == 0, "a rewritten table does not parse: %s", st.msg);
    PST_FUZZ_CHECK(t2->n == t->n, "%d entries came back as %d", t->n, t2->n);
    for (int i = 0; i < t->n; i++) {
        const pst_sstable_entry *x = &t->entries[i], *y = &t2->entries[i];
        PST_FUZZ_CHECK(x->klen == y->klen && x->vlen == y->vlen &&
                           memcmp(x->key, y->key, x->klen) == 0 &&
                           (x->vlen == 0 || memcmp(x->val, y->val, x->vlen) == 0),
                       "entry %d changed", i);
    }
    pst_sstable_free(t2);
    free(buf);
    pst_sstable_free(t);
    return 0;
}
