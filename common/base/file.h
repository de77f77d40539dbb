/*
 * file — whole-file reads and durable writes, the one copy of each for every layer.
 *
 * A durable write goes to a temporary name beside the target, is fsync'd, renamed over the
 * target and the directory fsync'd (Redis's rule), so a crash leaves the old file or the new
 * one, never a torn one.
 *
 *     uint8_t *buf; size_t len;
 *     if (pst_file_read(path, 1 << 30, &buf, &len, &st) < 0) ...    // caller frees buf
 *     if (pst_file_write_atomic(path, buf, len, &st) < 0) ...
 */
#ifndef PST_FILE_H
#define PST_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Reads a regular file of at most max_bytes whole; *buf is malloc'd (caller frees). A FIFO,
 * device or directory is an error (never a hang), as is a file over the limit: the size is
 * checked before anything is allocated. */
int pst_file_read(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                  pst_status *st);
/* Writes buf to path durably (temporary file, fsync, rename, directory fsync). */
int pst_file_write_atomic(const char *path, const void *buf, size_t len, pst_status *st);
/* Writes all len bytes to fd (retrying short writes and EINTR); errors name path. */
int pst_file_write_all(int fd, const void *buf, size_t len, const char *path, pst_status *st);
/* fsyncs the directory that holds path (so a rename in it is durable). */
int pst_file_fsync_dir_of(const char *path, pst_status *st);
/* mkdir -p: creates dir and its missing parents (0755). A file in the way is an error. */
int pst_file_make_dirs(const char *dir, pst_status *st);
/* Checks that `path` names a file inside directory `root` (or, with root NULL or "", anywhere):
 * no ".." component, no control character, and the path's nearest existing ancestor directory
 * resolves (symbolic links followed) to root or below it. PST_E_PERMISSION names the path when
 * it is outside; PST_E_INVALID when it is malformed. */
int pst_file_check_inside(const char *root, const char *path, pst_status *st);

#endif
