/* ops_io: ReadFile, WriteFile and the confinement of file ops (see ops_io.h). */
#include "ops_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "ops.h"

int pst_ops_file_allowed(pst_kernel_ctx *c, const char *path, int writing) {
    if (!c->files_confined) return 0;
    pst_status st = {0};
    if (c->file_root && c->file_root[0]) {
        if (pst_file_check_inside(c->file_root, path, &st) < 0)
            return pst_kctx_error(c, st.code, "%s (a graph run for a remote peer touches files "
                                  "only inside this task's --checkpoint-dir)", st.msg);
        return 0;
    }
    if (strstr(path, "..") != NULL)
        return pst_kctx_error(c, PST_E_PERMISSION, "path %s holds \"..\" (refused in a graph "
                              "run for a remote peer)", path);
    if (!writing) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) return 0;
    if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
    return pst_kctx_error(c, PST_E_PERMISSION, "directory %s does not exist (a graph run for a "
                          "remote peer on a task without --checkpoint-dir creates none)", dir);
}

static int scalar_string(pst_kernel_ctx *c, int i, const char *what, const char **s, size_t *len) {
    const pst_tensor *t = c->inputs[i];
    char b[96];
    if (t->dtype != PST_STRING || t->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "%s must be a string scalar, but has shape %s",
                              what, pst_shape_str(&t->shape, b, sizeof b));
    const pst_tstring *v = pst_tensor_str(t);
    *s = v->len ? v->p : "";
    *len = v->len;
    if (i == 0 && memchr(*s, 0, *len))
        return pst_kctx_error(c, PST_E_INVALID, "%s holds a NUL byte", what);
    return 0;
}

/* ---- ReadFile(filename) -> contents ------------------------------------------------------- */
static int read_file_kernel(pst_kernel_ctx *c) {
    const char *path = "";
    size_t plen = 0;
    if (scalar_string(c, 0, "filename", &path, &plen) < 0 ||
        pst_ops_file_allowed(c, path, 0) < 0)
        return c->status->code;
    uint8_t *buf = NULL;
    size_t len = 0;
    pst_status st = {0};
    if (pst_file_read(path, ((size_t)1 << 31) - 1, &buf, &len, &st) < 0)
        return pst_kctx_error(c, st.code, "%s", st.msg);
    pst_tensor *o = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status);
    int rc = o ? pst_tstring_set(pst_tensor_str(o), buf, len) : c->status->code;
    free(buf);
    if (o == NULL || rc < 0) {
        pst_tensor_unref(o);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory reading %s", path);
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- WriteFile(filename, contents): as TF, the parent directories are created ------------ */
static int write_file_kernel(pst_kernel_ctx *c) {
    const char *path = "", *data = "";
    size_t plen = 0, len = 0;
    if (scalar_string(c, 0, "filename", &path, &plen) < 0 ||
        scalar_string(c, 1, "contents", &data, &len) < 0 || pst_ops_file_allowed(c, path, 1) < 0)
        return c->status->code;
    pst_status st = {0};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (pst_file_make_dirs(dir, &st) < 0) return pst_kctx_error(c, st.code, "%s", st.msg);
    }
    if (pst_file_write_atomic(path, data, len, &st) < 0)
        return pst_kctx_error(c, st.code, "%s", st.msg);
    return 0;
}

static int read_file_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "filename must be a string");
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int write_file_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING || pst_node_in_dtype(n, 1) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "filename and contents must be strings");
    return 0;
}

#define FF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
static const pst_op_def io_ops[] = {
    {.name = "ReadFile", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = read_file_shape, .kernel = read_file_kernel, .flags = FF},
    {.name = "WriteFile", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .shape = write_file_shape, .kernel = write_file_kernel, .flags = FF},
};

void pst__register_io_file_ops(void) {
    for (size_t i = 0; i < sizeof io_ops / sizeof io_ops[0]; i++) pst_op_register(&io_ops[i]);
}
