/*
 * sstable — the LevelDB sorted-table format TensorFlow uses for checkpoint indexes: prefix-
 * compressed blocks with restart points, a 5-byte trailer per block (compression type and
 * masked CRC-32C), an index block of block handles, and a 48-byte footer with the magic number.
 * The writer never compresses; the reader also accepts Snappy-compressed blocks.
 *
 *     pst_sstable_builder *b = pst_sstable_builder_new();
 *     pst_sstable_add(b, key, klen, val, vlen);      // keys in increasing order
 *     pst_sstable_finish(b, &buf, &len);              // the whole file, caller frees buf
 *     pst_sstable *t;  pst_sstable_parse(buf, len, "x.index", &t, &st);
 */
#ifndef PST_SSTABLE_H
#define PST_SSTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct pst_sstable_builder pst_sstable_builder;

pst_sstable_builder *pst_sstable_builder_new(void);
/* Keys must be added in strictly increasing byte order; returns -1 otherwise. */
int pst_sstable_add(pst_sstable_builder *b, const void *key, size_t klen, const void *val,
                    size_t vlen);
/* Produces the table bytes (malloc'd) and frees the builder. */
void pst_sstable_finish(pst_sstable_builder *b, uint8_t **out, size_t *len);

typedef struct pst_sstable_entry {
    char *key; /* NUL-terminated copy (keys may contain NUL: use klen) */
    size_t klen;
    uint8_t *val;
    size_t vlen;
} pst_sstable_entry;

typedef struct pst_sstable {
    int n;
    pst_sstable_entry *entries; /* sorted */
} pst_sstable;

/* Parses and verifies a whole table; `what` names it in errors. Every byte is checked: the
 * footer's magic, canonical handles, zero padding and a layout the handles must describe
 * exactly (data blocks from offset 0, metaindex, index, footer), each block's CRC, restart
 * arrays against their entries, keys strictly increasing and within their index separators.
 * A single flipped bit anywhere is an error (PST_E_DATA_LOSS). */
int pst_sstable_parse(const uint8_t *buf, size_t len, const char *what, pst_sstable **out,
                      pst_status *st);
void pst_sstable_free(pst_sstable *t);
/* Binary search; NULL when absent. */
const pst_sstable_entry *pst_sstable_find(const pst_sstable *t, const void *key, size_t klen);


#endif
