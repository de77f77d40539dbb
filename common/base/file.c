/* file: whole-file reads and durable writes (see file.h). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pst_file_read(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                  pst_status *st) {
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO with no writer must not hang; regular files ignore it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return pst_status_set(st, errno == ENOENT ? PST_E_NOT_FOUND : PST_E_IO, "cannot open %s: %s",
                              path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return pst_status_set(st, PST_E_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return pst_status_set(st, PST_E_INVALID, "%s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        close(fd);
        return pst_status_set(st, PST_E_INVALID, "%s has %lld bytes, more than the %zu allowed",
                              path, (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size, off = 0;
    uint8_t *b = malloc(n ? n : 1);
    if (b == NULL) {
        close(fd);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s (%zu bytes)", path, n);
    }
    while (off < n) {
        ssize_t r = read(fd, b + off, n - off);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) {
            int e = errno;
            free(b);
            close(fd);
            return pst_status_set(st, PST_E_IO, "reading %s: %s", path,
                                  r < 0 ? strerror(e) : "the file shrank while being read");
        }
        off += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

int pst_file_fsync_dir_of(const char *path, pst_status *st) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *dir = dirname(tmp);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pst_status_set(st, PST_E_IO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd) < 0 ? pst_status_set(st, PST_E_IO, "fsync %s: %s", dir, strerror(errno)) : 0;
    close(fd);
    return rc;
}

int pst_file_write_all(int fd, const void *buf, size_t len, const char *path, pst_status *st) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return pst_status_set(st, PST_E_IO, "writing %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int pst_file_write_atomic(const char *path, const void *buf, size_t len, pst_status *st) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pst_status_set(st, PST_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    int rc = pst_file_write_all(fd, buf, len, tmp, st);
    if (rc == 0 && fsync(fd) < 0)
        rc = pst_status_set(st, PST_E_IO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = pst_status_set(st, PST_E_IO, "rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    return rc ? rc : pst_file_fsync_dir_of(path, st);
}

int pst_file_make_dirs(const char *dir, pst_status *st) {
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0) return 0;
    if (len >= sizeof path)
        return pst_status_set(st, PST_E_INVALID, "directory name too long: %.64s...", dir);
    memcpy(path, dir, len + 1);
    /* Each prefix ending at a '/' (and the whole path), shortest first. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        struct stat sb;
        if (stat(path, &sb) != 0) {
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return pst_status_set(st, PST_E_IO, "cannot create directory %s: %s", path,
                                      strerror(errno));
        } else if (!S_ISDIR(sb.st_mode)) {
            return pst_status_set(st, PST_E_IO, "cannot create directory %s: a file has that name",
                                  path);
        }
        path[i] = c;
    }
    return 0;
}

static int has_dotdot(const char *p) {
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') return 1;
        c += n + (e != NULL);
    }
    return 0;
}

int pst_file_check_inside(const char *root, const char *path, pst_status *st) {
    size_t len = strlen(path);
    if (len == 0) return pst_status_set(st, PST_E_INVALID, "an empty path");
    if (len >= PATH_MAX) return pst_status_set(st, PST_E_INVALID, "path too long: %.64s...", path);
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return pst_status_set(st, PST_E_INVALID, "path '%.64s' has a control character",
                                  path);
    if (has_dotdot(path))
        return pst_status_set(st, PST_E_PERMISSION, "path '%s' has a '..' component", path);
    if (!root || !root[0]) return 0;
    char rr[PATH_MAX], dir[PATH_MAX], rp[PATH_MAX];
    if (!realpath(root, rr))
        return pst_status_set(st, PST_E_IO, "directory %s: %s", root, strerror(errno));
    /* the nearest existing ancestor of the path's directory */
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    while (!realpath(dir, rp)) {
        if (errno != ENOENT && errno != ENOTDIR)
            return pst_status_set(st, PST_E_IO, "path '%s': %s: %s", path, dir, strerror(errno));
        slash = strrchr(dir, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) dir[1] = '\0';
        else *slash = '\0';
    }
    size_t n = strlen(rr);
    int inside = strcmp(rr, "/") == 0 ||
                 (strncmp(rp, rr, n) == 0 && (rp[n] == '\0' || rp[n] == '/'));
    if (!inside)
        return pst_status_set(st, PST_E_PERMISSION, "path '%s' is outside %s (it resolves to %s)",
                              path, root, rp);
    return 0;
}
