/*
 * fuzz_bundle — the checkpoint (tensor bundle) reader on arbitrary files.
 *
 * Input: a 4-byte little-endian length L, then L bytes of PREFIX.index, then the bytes of the
 * data file (when L exceeds what follows, everything is the index and the data is empty).
 * The data file is every shard of a checkpoint of up to 4 shards (PREFIX.data-0000k-of-0000N
 * are symbolic links to it, made once), so multi-shard indexes read real bytes too. The
 * harness opens the bundle, lists it, finds and reads every entry and verifies it; errors
 * must name what is at fault, and an entry listed must be found under its name.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "fuzz.h"

#define MAX_SHARDS 4

static char prefix[4200];

static void setup(void) {
    char target[4200], link_path[4300];
    pst_fuzz_path("ckpt", prefix, sizeof prefix);
    pst_fuzz_path("data", target, sizeof target);
    for (int n = 1; n <= MAX_SHARDS; n++)
        for (int k = 0; k < n; k++) {
            snprintf(link_path, sizeof link_path, "%s.data-%05d-of-%05d", prefix, k, n);
            PST_FUZZ_CHECK(symlink(target, link_path) == 0, "cannot link %s", link_path);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (prefix[0] == '\0') setup();
    size_t ilen = size;
    if (size >= 4) {
        uint32_t l = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                     (uint32_t)data[3] << 24;
        data += 4;
        size -= 4;
        ilen = l < size ? l : size;
    }
    pst_fuzz_write("ckpt.index", data, ilen);
    pst_fuzz_write("data", data + ilen, size - ilen);

    pst_status st = {0};
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    pst_fuzz_check_status(r ? 0 : -1, &st, "pst_bundle_reader_open");
    if (r == NULL) return 0;
    int shards = pst_bundle_reader_num_shards(r), n = pst_bundle_reader_num_entries(r);
    PST_FUZZ_CHECK(shards >= 1 && n >= 0, "%d shards, %d entries", shards, n);
    PST_FUZZ_CHECK(pst_bundle_reader_entry(r, n) == NULL && pst_bundle_reader_entry(r, -1) == NULL,
                   "an entry out of range");
    for (int i = 0; i < n; i++) {
        const pst_bundle_entry *e = pst_bundle_reader_entry(r, i);
        PST_FUZZ_CHECK(e != NULL && e->name != NULL, "entry %d is missing", i);
        PST_FUZZ_CHECK(e->shard_id >= 0 && e->shard_id < shards, "entry '%s' has shard %d of %d",
                       e->name, e->shard_id, shards);
        PST_FUZZ_CHECK(pst_bundle_reader_find(r, e->name) != NULL, "entry '%s' is not found",
                       e->name);
        pst_status rst = {0};
        pst_tensor *t = pst_bundle_reader_read(r, e->name, &rst);
        pst_fuzz_check_status(t ? 0 : -1, &rst, "pst_bundle_reader_read");
        if (t) {
            PST_FUZZ_CHECK(t->dtype == e->dtype && pst_shape_equal(&t->shape, &e->shape),
                           "tensor '%s' does not match its entry", e->name);
            pst_tensor_unref(t);
        }
    }
    pst_status vst = {0};
    int rc = pst_bundle_verify(r, &vst);
    pst_fuzz_check_status(rc, &vst, "pst_bundle_verify");
    pst_bundle_reader_free(r);
    return 0;
}
