/*
 * ops_io — TF's whole-file ops: ReadFile (an image pipeline's bytes for DecodeJpeg/DecodePng)
 * and WriteFile, and the rule every file-touching kernel follows when its session runs a graph
 * on behalf of a remote peer (pst_session_opts.files_confined, set by a task for registered
 * partitions): a file inside the session's file_root (the task's --checkpoint-dir) only, or,
 * without one, any file to read but only directories that exist to write into, exactly as the
 * task's Save and Restore requests are confined. Local sessions are not confined.
 *
 *     if (pst_ops_file_allowed(c, path, 0) < 0) return c->status->code;   // in a kernel
 */
#ifndef PST_OPS_IO_H
#define PST_OPS_IO_H

#include "op.h"

/* 0 when the kernel's session may read (writing 0) or write path, else an error recorded in
 * c naming the path and the rule (PST_E_PERMISSION). */
int pst_ops_file_allowed(pst_kernel_ctx *c, const char *path, int writing);

#endif
