/*
 * bundle — TensorFlow's V2 checkpoint format ("tensor bundle"): `PREFIX.index` (a sorted
 * table of BundleEntryProto, header under the empty key) and `PREFIX.data-0000K-of-0000N`
 * (raw little-endian tensor bytes). Every tensor carries a masked CRC-32C.
 *
 * Writing is durable and atomic: data then index go to temporary names, are fsync'd, renamed,
 * and the directory fsync'd; the index is the commit point.
 *
 *     pst_bundle_writer *w = pst_bundle_writer_new("/ckpt/model.ckpt-100", &st);
 *     pst_bundle_writer_add(w, "dense/kernel", t, &st);
 *     pst_bundle_writer_finish(w, &st);
 *     pst_bundle_reader *r = pst_bundle_reader_open("/ckpt/model.ckpt-100", &st);
 *     pst_tensor *k = pst_bundle_reader_read(r, "dense/kernel", &st);
 *
 * Reading validates everything with checked arithmetic (dims, offsets past the end of a
 * shard, sizes that do not match dtype and shape, bad magic, block and tensor checksums) and
 * names the file and tensor at fault.
 */
#ifndef PST_BUNDLE_H
#define PST_BUNDLE_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_bundle_writer pst_bundle_writer;
typedef struct pst_bundle_reader pst_bundle_reader;

/* Creates the prefix's directory (and its parents) when missing. */
pst_bundle_writer *pst_bundle_writer_new(const char *prefix, pst_status *st);
/* Copies t's bytes to the data file now; names must be unique. */
int pst_bundle_writer_add(pst_bundle_writer *w, const char *name, const pst_tensor *t,
                          pst_status *st);
/* Adds one slice of a partitioned variable: its data under the encoded slice key and the
 * slice in the full name's entry (dtype, full shape, slices), as TensorFlow stores them. */
int pst_bundle_writer_add_slice(pst_bundle_writer *w, const char *full_name, pst_shape full_shape,
                                const int64_t *start, const int64_t *len, const pst_tensor *t,
                                pst_status *st);
/* The checkpoint key of a slice (FORMATS.md); out needs room for twice the name's length plus
 * 5 bytes plus 20 bytes per dimension. Returns its length. */
size_t pst_bundle_slice_key(const char *name, int rank, const int64_t *start, const int64_t *len,
                            uint8_t *out);
/* Writes the index and commits; frees the writer whatever happens. */
int pst_bundle_writer_finish(pst_bundle_writer *w, pst_status *st);
/* Drops a writer without committing (its temporary files are removed). */
void pst_bundle_writer_abort(pst_bundle_writer *w);

typedef struct pst_bundle_entry {
    const char *name;
    pst_dtype dtype;
    pst_shape shape;
    int shard_id;
    int64_t offset, size;
    uint32_t crc32c; /* unmasked */
    int n_slices;    /* > 0 for a partitioned variable's full-name entry */
} pst_bundle_entry;

pst_bundle_reader *pst_bundle_reader_open(const char *prefix, pst_status *st);
void pst_bundle_reader_free(pst_bundle_reader *r);
int pst_bundle_reader_num_shards(const pst_bundle_reader *r);
int pst_bundle_reader_num_entries(const pst_bundle_reader *r);
/* Entry i in key order (0 <= i < num_entries). */
const pst_bundle_entry *pst_bundle_reader_entry(const pst_bundle_reader *r, int i);
const pst_bundle_entry *pst_bundle_reader_find(const pst_bundle_reader *r, const char *name);
/* Reads and checksums one tensor (assembling a partitioned variable from its slices); errors
 * name the data file and the tensor. */
pst_tensor *pst_bundle_reader_read(pst_bundle_reader *r, const char *name, pst_status *st);
/* Reads every tensor and checks every checksum; 0 when all hold. */
int pst_bundle_verify(pst_bundle_reader *r, pst_status *st);

/* Merges single-shard bundles (each written by one task, e.g. one parameter server) into one
 * checkpoint: shard k's data becomes PREFIX.data-0000k-of-0000N and one index lists every
 * entry with its shard id (a partitioned variable's slices from several shards are joined).
 * The shards' index files are removed. */
int pst_bundle_merge(int n, const char *const *shards, const char *prefix, pst_status *st);


#endif
