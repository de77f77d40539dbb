#include "saver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "kernels_ew.h"
#include "metagraph.h"
#include "op.h"
#include "device.h"
#include "varstore.h"
#include "file.h"
#include "device.h"

struct pst_saver {
    pst_graph *g;
    pst_graph *meta_g; /* written as the .meta when set (pst_saver_opts.meta_graph) */
    int n;
    pst_output *vars;
    char **names;
    int max_to_keep;
    double keep_hours;
    int write_meta;
    int sharded;
    char **kept; /* our checkpoints, oldest first */
    int n_kept;
    char *dir;   /* the directory of the last save, for recovery */
    double last_kept_time;
    int (*write_fn)(void *ctx, const char *prefix, pst_status *st);
    void *write_ctx;
};

pst_saver *pst_saver_new(pst_graph *g, const pst_saver_opts *o, pst_status *st) {
    pst_saver *s = calloc(1, sizeof *s);
    PST_ASSERT(s != NULL);
    s->g = g;
    s->meta_g = o ? o->meta_graph : NULL;
    const pst_output *vars = o ? o->vars : NULL;
    int n = o ? o->n_vars : 0;
    if (vars == NULL) vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    s->n = n;
    s->vars = calloc((size_t)n + 1, sizeof *s->vars);
    s->names = calloc((size_t)n + 1, sizeof *s->names);
    PST_ASSERT(s->vars && s->names);
    for (int i = 0; i < n; i++) {
        if (vars[i].node == NULL || !(vars[i].node->op->flags & PST_OP_VARIABLE)) {
            pst_status_set(st, PST_E_INVALID, "saver: item %d is not a variable", i);
            pst_saver_free(s);
            return NULL;
        }
        s->vars[i] = vars[i];
        /* A part of a partitioned variable is stored as a slice of its full name. */
        const char *full = pst_node_attr_s(vars[i].node, "_save_slice_full_name", NULL);
        s->names[i] = strdup(o && o->names ? o->names[i] : full ? full : vars[i].node->name);
    }
    s->max_to_keep = o && o->max_to_keep ? o->max_to_keep : 5;
    s->keep_hours = o ? o->keep_checkpoint_every_n_hours : 0;
    s->write_meta = o ? o->write_meta : 1;
    s->sharded = o ? o->sharded : 0;
    s->write_fn = o ? o->write_fn : NULL;
    s->write_ctx = o ? o->write_ctx : NULL;
    s->last_kept_time = (double)time(NULL);
    return s;
}

void pst_saver_free(pst_saver *s) {
    if (s == NULL) return;
    for (int i = 0; i < s->n; i++) free(s->names[i]);
    for (int i = 0; i < s->n_kept; i++) free(s->kept[i]);
    free(s->kept);
    free(s->names);
    free(s->vars);
    free(s->dir);
    free(s);
}

static void split_dir(const char *path, char *dir, size_t len) {
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, len, ".");
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int pst_checkpoint_state_write(const char *dir, int n, char *const *paths, pst_status *st) {
    size_t cap = 256 + (size_t)n * 4200;
    char *buf = malloc(cap);
    PST_ASSERT(buf != NULL);
    size_t off = 0;
    if (n > 0)
        off += (size_t)snprintf(buf + off, cap - off, "model_checkpoint_path: \"%s\"\n",
                                base_name(paths[n - 1]));
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "all_model_checkpoint_paths: \"%s\"\n",
                                base_name(paths[i]));
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    int rc = pst_file_write_atomic(path, buf, off, st);
    free(buf);
    return rc;
}

/* ---- The checkpoint directory: state file, scan, temporary files, resume ------------------ */

#define STATE_FILE_MAX ((size_t)16 << 20) /* a state file lists paths: megabytes at most */

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Length of s[0..n) once a trailing `tag` followed by one or more digits is removed, or n
 * when s does not end that way. */
static size_t strip_numbered(const char *s, size_t n, const char *tag) {
    size_t d = n;
    while (d > 0 && s[d - 1] >= '0' && s[d - 1] <= '9') d--;
    size_t k = strlen(tag);
    if (d == n || d < k || memcmp(s + d - k, tag, k) != 0) return n;
    return d - k;
}

/* Length of s[0..n) without a trailing ".data-NNNNN-of-NNNNN", or n. */
static size_t strip_data_suffix(const char *s, size_t n) {
    static const char pat[] = ".data-#####-of-#####";
    size_t k = sizeof pat - 1;
    if (n < k) return n;
    for (size_t i = 0; i < k; i++) {
        char c = s[n - k + i];
        if (pat[i] == '#' ? !(c >= '0' && c <= '9') : c != pat[i]) return n;
    }
    return n - k;
}

/* Whether a file name is one of pstrain's temporary names in a checkpoint directory, and the
 * checkpoint it belongs to (its prefix's base name, into owner; "" for the state file's):
 *   X.index.tmpPID, X.meta.tmpPID, checkpoint.tmpPID       (durable writes, file.c)
 *   X.data-NNNNN-of-NNNNN.tempstatePID                     (the bundle writer's data file)
 *   X_temp_shardK.index, X_temp_shardK.data-NNNNN-of-NNNNN (a distributed save's shards,
 *                                                           and their own temporary names)
 * Nothing else matches, so nothing else is ever removed. */
static int temp_owner(const char *name, char *owner, size_t owner_len) {
    size_t n = strlen(name), m;
    int temp = 0;
    if ((m = strip_numbered(name, n, ".tmp")) != n) {
        if (m == 10 && memcmp(name, "checkpoint", 10) == 0) {
            if (owner) snprintf(owner, owner_len, "%s", "");
            return 1;
        }
        if (!ends_with(name, m, ".index") && !ends_with(name, m, ".meta")) return 0;
        n = m;
        temp = 1;
    } else if ((m = strip_numbered(name, n, ".tempstate")) != n) {
        if (strip_data_suffix(name, m) == m) return 0;
        n = m;
        temp = 1;
    }
    /* n now ends with the kind of file: .index, .meta or .data-... */
    if (ends_with(name, n, ".index"))
        n -= 6;
    else if (ends_with(name, n, ".meta"))
        n -= 5;
    else if ((m = strip_data_suffix(name, n)) != n)
        n = m;
    else
        return 0;
    if ((m = strip_numbered(name, n, "_temp_shard")) != n) {
        n = m;
        temp = 1;
    }
    if (!temp || n == 0) return 0;
    if (owner) snprintf(owner, owner_len, "%.*s", (int)n, name);
    return 1;
}

int pst_checkpoint_is_temp_file(const char *name) { return temp_owner(name, NULL, 0); }

/* Removes the temporary files in dir (all, or only those of checkpoint `owner`, a prefix's base
 * name); returns how many, or a negative error when dir cannot be listed. */
static int remove_temps(const char *dir, const char *owner, pst_status *st) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : pst_status_set(st, PST_E_IO, "cannot list %s: %s", dir,
                                                     strerror(errno));
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        char who[4096];
        if (!temp_owner(de->d_name, who, sizeof who) || (owner && strcmp(who, owner) != 0))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            unlinkat(dirfd(d), de->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int pst_checkpoint_remove_temp_files(const char *dir, pst_status *st) {
    return remove_temps(dir, NULL, st);
}

/* Whether name is one of checkpoint base's own files: base.index, base.meta or a data shard. */
static int file_of(const char *name, const char *base) {
    size_t b = strlen(base), n = strlen(name);
    if (n <= b || memcmp(name, base, b) != 0 || name[b] != '.') return 0;
    const char *rest = name + b;
    return strcmp(rest, ".index") == 0 || strcmp(rest, ".meta") == 0 ||
           strip_data_suffix(name, n) == b;
}

/* The files of one checkpoint as (device, inode) pairs: what a save may replace. */
typedef struct file_set {
    int n;
    char (*names)[256];
    dev_t *dev;
    ino_t *ino;
} file_set;

static void file_set_free(file_set *fs) {
    free(fs->names);
    free(fs->dev);
    free(fs->ino);
    memset(fs, 0, sizeof *fs);
}

static void files_of(const char *prefix, file_set *fs) {
    char dir[4096];
    split_dir(prefix, dir, sizeof dir);
    const char *base = base_name(prefix);
    memset(fs, 0, sizeof *fs);
    DIR *d = opendir(dir);
    if (d == NULL) return;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        struct stat sb;
        if (strlen(de->d_name) >= 256 || !file_of(de->d_name, base) ||
            fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        fs->names = realloc(fs->names, (size_t)(fs->n + 1) * sizeof *fs->names);
        fs->dev = realloc(fs->dev, (size_t)(fs->n + 1) * sizeof *fs->dev);
        fs->ino = realloc(fs->ino, (size_t)(fs->n + 1) * sizeof *fs->ino);
        PST_ASSERT(fs->names && fs->dev && fs->ino);
        snprintf(fs->names[fs->n], 256, "%s", de->d_name);
        fs->dev[fs->n] = sb.st_dev;
        fs->ino[fs->n] = sb.st_ino;
        fs->n++;
    }
    closedir(d);
}

static void delete_checkpoint(const char *prefix) {
    char dir[4096], path[4400];
    split_dir(prefix, dir, sizeof dir);
    file_set fs;
    files_of(prefix, &fs);
    for (int i = 0; i < fs.n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, fs.names[i]);
        unlink(path);
    }
    file_set_free(&fs);
}

/* Undoes a failed save of prefix: its temporary files go, and so does every file of the
 * checkpoint that the save created or replaced (a file `before` does not list with the same
 * inode: saves write new files and rename them into place). */
static void remove_failed_save(const char *prefix, const file_set *before) {
    char dir[4096], path[4400];
    split_dir(prefix, dir, sizeof dir);
    remove_temps(dir, base_name(prefix), NULL);
    file_set now;
    files_of(prefix, &now);
    for (int i = 0; i < now.n; i++) {
        int kept = 0;
        for (int j = 0; j < before->n && !kept; j++)
            kept = now.dev[i] == before->dev[j] && now.ino[i] == before->ino[j];
        if (kept) continue;
        snprintf(path, sizeof path, "%s/%s", dir, now.names[i]);
        unlink(path);
    }
    file_set_free(&now);
}

/* Whether path's parent directory, made canonical (links and all), is real_dir or below it.
 * A parent that does not exist is judged as written: a relative entry (no "..", checked by the
 * caller) stays inside; an absolute one must start with real_dir. */
static int parent_inside(const char *path, int relative, const char *real_dir) {
    char parent[4096], real[PATH_MAX];
    split_dir(path, parent, sizeof parent);
    const char *p = realpath(parent, real);
    if (p == NULL) {
        if (relative) return 1;
        p = parent;
    }
    size_t n = strlen(real_dir);
    if (n == 1 && real_dir[0] == '/') return 1;
    return strncmp(p, real_dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* A state-file entry as a path: relative ones are relative to dir. An entry that leaves dir
 * (a ".." component, or an absolute path or symbolic link elsewhere) is refused: restoring
 * another directory's checkpoint, or deleting its files for max_to_keep, is never right. */
static int resolve_entry(const char *dir, const char *state, const char *entry, char *out,
                         size_t len, pst_status *st) {
    if (entry[0] == '\0')
        return pst_status_set(st, PST_E_DATA_LOSS, "%s names an empty path", state);
    for (const char *p = entry; *p;) {
        const char *slash = strchr(p, '/');
        size_t k = slash ? (size_t)(slash - p) : strlen(p);
        if (k == 2 && p[0] == '.' && p[1] == '.')
            return pst_status_set(st, PST_E_PERMISSION, "%s names %s, which leaves the directory "
                                  "%s (remove the state file to restore the newest checkpoint "
                                  "found in the directory)", state, entry, dir);
        p += k;
        while (*p == '/') p++;
    }
    if (entry[0] == '/')
        snprintf(out, len, "%s", entry);
    else
        snprintf(out, len, "%s/%s", dir, entry);
    char real_dir[PATH_MAX];
    if (realpath(dir, real_dir) == NULL) return 0; /* no directory: nothing to restore anyway */
    if (!parent_inside(out, entry[0] != '/', real_dir))
        return pst_status_set(st, PST_E_PERMISSION, "%s names %s, which is outside the directory "
                              "%s (a moved directory? remove the state file to restore the newest "
                              "checkpoint found in the directory)", state, entry, dir);
    return 0;
}

/* How the state file reads. */
typedef enum {
    STATE_MISSING,  /* no state file */
    STATE_OK,       /* parsed; lists 0 or more checkpoints */
    STATE_UNUSABLE, /* empty of text, garbage, unreadable: the directory is scanned instead */
    STATE_REFUSED,  /* not a regular file, or names paths outside the directory: an error */
} state_kind;

/* Reads dir's state file into *paths (resolved, oldest first, the newest last); returns the
 * kind. For UNUSABLE and REFUSED, st says why (naming the state file). */
static state_kind read_state(const char *dir, char ***paths, int *n_out, pst_status *st) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    *paths = NULL;
    *n_out = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) return STATE_MISSING;
        pst_status_set(st, PST_E_IO, "cannot stat %s: %s", path, strerror(errno));
        return STATE_UNUSABLE;
    }
    if (!S_ISREG(sb.st_mode)) {
        pst_status_set(st, PST_E_INVALID, "%s is not a regular file", path);
        return STATE_REFUSED;
    }
    uint8_t *buf;
    size_t len;
    pst_status rst = {0};
    if (pst_file_read(path, STATE_FILE_MAX, &buf, &len, &rst) < 0) {
        pst_status_set(st, rst.code, "%s", rst.msg);
        /* It turned into something else between stat and open: refuse, do not guess. */
        return rst.code == PST_E_INVALID && strstr(rst.msg, "not a regular file") ? STATE_REFUSED
                                                                                : STATE_UNUSABLE;
    }
    if (memchr(buf, 0, len) != NULL) {
        free(buf);
        pst_status_set(st, PST_E_DATA_LOSS, "%s holds NUL bytes (a torn or zeroed file)", path);
        return STATE_UNUSABLE;
    }
    char *text = malloc(len + 1);
    PST_ASSERT(text != NULL);
    if (len) memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    char **list = NULL, *model = NULL;
    int n = 0, lineno = 0;
    state_kind kind = STATE_OK;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && kind == STATE_OK;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        while (*line == ' ' || *line == '\t' || *line == '\r') line++;
        if (*line == '\0') continue;
        char *colon = strchr(line, ':'), *q1 = colon ? strchr(colon, '"') : NULL;
        char *q2 = q1 ? strrchr(q1 + 1, '"') : NULL;
        if (!colon || !q1 || !q2 || q2 == q1) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: line %d is not 'key: \"value\"'", path,
                           lineno);
            kind = STATE_UNUSABLE;
            break;
        }
        *q2 = '\0';
        size_t klen = (size_t)(colon - line);
        while (klen > 0 && (line[klen - 1] == ' ' || line[klen - 1] == '\t')) klen--;
        int is_model = klen == 21 && strncmp(line, "model_checkpoint_path", 21) == 0;
        int is_all = klen == 26 && strncmp(line, "all_model_checkpoint_paths", 26) == 0;
        if (!is_model && !is_all) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: line %d has an unknown field", path, lineno);
            kind = STATE_UNUSABLE;
            break;
        }
        char full[4200];
        if (resolve_entry(dir, path, q1 + 1, full, sizeof full, st) < 0) {
            kind = st && st->code == PST_E_PERMISSION ? STATE_REFUSED : STATE_UNUSABLE;
            break;
        }
        if (is_model) {
            free(model);
            model = strdup(full);
        } else {
            list = realloc(list, (size_t)(n + 1) * sizeof *list);
            list[n++] = strdup(full);
        }
    }
    free(text);
    if (kind == STATE_OK && model == NULL && n > 0) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: no model_checkpoint_path", path);
        kind = STATE_UNUSABLE;
    }
    if (kind == STATE_OK && model) {
        /* The newest goes last, as TensorFlow keeps it. */
        int at = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(list[i], model) == 0) at = i;
        if (at < 0) {
            list = realloc(list, (size_t)(n + 1) * sizeof *list);
            list[n++] = strdup(model);
        } else {
            char *m = list[at];
            memmove(&list[at], &list[at + 1], (size_t)(n - at - 1) * sizeof *list);
            list[n - 1] = m;
        }
    }
    free(model);
    if (kind != STATE_OK) {
        for (int i = 0; i < n; i++) free(list[i]);
        free(list);
        return kind;
    }
    *paths = list;
    *n_out = n;
    return STATE_OK;
}

int pst_checkpoint_list(const char *dir, char ***paths, pst_status *st) {
    int n;
    state_kind k = read_state(dir, paths, &n, st);
    if (k == STATE_MISSING) return 0;
    if (k != STATE_OK) return st && st->code ? st->code : PST_E_DATA_LOSS;
    return n;
}

/* A checkpoint found by listing the directory: an .index that is not a temporary name. */
typedef struct found {
    char *prefix;
    int64_t step; /* from a `-N` suffix, else -1 */
    time_t mtime;
    long mtime_ns;
} found;

static int cmp_found(const void *a, const void *b) {
    const found *x = a, *y = b;
    if (x->step != y->step) return x->step > y->step ? -1 : 1;
    if (x->mtime != y->mtime) return x->mtime > y->mtime ? -1 : 1;
    if (x->mtime_ns != y->mtime_ns) return x->mtime_ns > y->mtime_ns ? -1 : 1;
    return -strcmp(x->prefix, y->prefix);
}

/* The checkpoints in dir, newest first: highest global step (the `-N` of `model.ckpt-N`),
 * then latest index modification time. */
static int scan_dir(const char *dir, found **out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t len = strlen(de->d_name);
        struct stat sb;
        if (len <= 6 || !ends_with(de->d_name, len, ".index") || temp_owner(de->d_name, NULL, 0) ||
            fstatat(dirfd(d), de->d_name, &sb, 0) != 0 || !S_ISREG(sb.st_mode))
            continue;
        *out = realloc(*out, (size_t)(n + 1) * sizeof **out);
        PST_ASSERT(*out != NULL);
        found *f = &(*out)[n++];
        size_t plen = strlen(dir) + len + 2;
        f->prefix = malloc(plen);
        PST_ASSERT(f->prefix != NULL);
        snprintf(f->prefix, plen, "%s/%.*s", dir, (int)(len - 6), de->d_name);
        f->step = -1;
        const char *dash = strrchr(f->prefix, '-');
        if (dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1) &&
            strlen(dash + 1) < 19)
            f->step = strtoll(dash + 1, NULL, 10);
        f->mtime = sb.st_mtim.tv_sec;
        f->mtime_ns = sb.st_mtim.tv_nsec;
    }
    closedir(d);
    if (n > 1) qsort(*out, (size_t)n, sizeof **out, cmp_found);
    return n;
}

/* Whether any file of checkpoint prefix exists (its index or a data shard). */
static int any_file_of(const char *prefix) {
    file_set fs;
    files_of(prefix, &fs);
    int n = fs.n;
    file_set_free(&fs);
    return n > 0;
}

static int same_file(const char *a_prefix, const char *b_prefix) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s.index", a_prefix);
    snprintf(b, sizeof b, "%s.index", b_prefix);
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int intact(const char *prefix, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL) return -1;
    int rc = pst_bundle_verify(r, st);
    pst_bundle_reader_free(r);
    return rc;
}

static void warn_add(char *w, size_t wlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn_add(char *w, size_t wlen, const char *fmt, ...) {
    if (w == NULL || wlen == 0) return;
    size_t used = strlen(w);
    if (used + 3 >= wlen) return;
    if (used) {
        memcpy(w + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w + used, wlen - used, fmt, ap);
    va_end(ap);
}

int pst_latest_checkpoint(const char *dir, int start_fresh, char *out, size_t out_len,
                          char *warning, size_t warn_len, pst_status *st) {
    if (warning && warn_len) warning[0] = '\0';
    /* Whatever an interrupted save left behind is garbage now (nothing saves here yet). */
    remove_temps(dir, NULL, NULL);
    found *scan;
    int n_scan = scan_dir(dir, &scan);
    char **list = NULL;
    int n_list = 0, rc = 1;
    char reasons[2048] = "";
    if (start_fresh) {
        if (n_scan > 0)
            warn_add(warning, warn_len, "starting from step 0 as asked, although %s holds %d "
                     "checkpoint(s), the newest %s; they are left in place", dir, n_scan,
                     scan[0].prefix);
        goto out;
    }
    pst_status sst = {0};
    state_kind kind = read_state(dir, &list, &n_list, &sst);
    if (kind == STATE_REFUSED) {
        rc = pst_status_set(st, sst.code, "%s", sst.msg);
        goto out;
    }
    char state_path[4200], why[4400 + PST_STATUS_MSG_MAX] = "";
    snprintf(state_path, sizeof state_path, "%s/checkpoint", dir);
    if (kind == STATE_MISSING)
        snprintf(why, sizeof why, "the state file %s is missing", state_path);
    else if (kind == STATE_UNUSABLE)
        snprintf(why, sizeof why, "the state file is unusable (%s)", sst.msg);
    else if (n_list == 0)
        snprintf(why, sizeof why, "the state file %s lists no checkpoint", state_path);
    /* Candidates, best first: the state file's (newest first), then the directory's. */
    int n_cand = 0;
    const char **cand = calloc((size_t)(n_list + n_scan) + 1, sizeof *cand);
    PST_ASSERT(cand != NULL);
    for (int i = n_list - 1; i >= 0; i--) cand[n_cand++] = list[i];
    for (int i = 0; i < n_scan; i++) {
        int listed = 0;
        for (int j = 0; j < n_list && !listed; j++) listed = same_file(scan[i].prefix, list[j]);
        if (!listed) cand[n_cand++] = scan[i].prefix;
    }
    int existing = 0;
    for (int i = 0; i < n_cand && rc == 1; i++) {
        if (!any_file_of(cand[i])) {
            warn_add(reasons, sizeof reasons, "checkpoint %s does not exist", cand[i]);
            continue;
        }
        existing++;
        pst_status vst = {0};
        if (intact(cand[i], &vst) == 0) {
            snprintf(out, out_len, "%s", cand[i]);
            rc = 0;
            if (i > 0 || why[0])
                warn_add(warning, warn_len,
                         "%s%s%s; restoring %s, the newest intact checkpoint in %s", why,
                         why[0] && reasons[0] ? "; " : "", reasons, cand[i], dir);
            break;
        }
        warn_add(reasons, sizeof reasons, "checkpoint %s is unusable (%s)", cand[i], vst.msg);
    }
    free(cand);
    if (rc == 1 && existing > 0) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "no intact checkpoint in %s: %s (repair or remove "
                            "them, or start fresh to begin again from step 0)", dir, reasons);
    } else if (rc == 1 && (kind == STATE_UNUSABLE || n_list > 0)) {
        /* Nothing on disk to restore: a new run, but say what the state file claimed. */
        warn_add(warning, warn_len, "%s%s%s; %s holds no checkpoint: starting from step 0", why,
                 why[0] && reasons[0] ? "; " : "", reasons, dir);
    }
out:
    for (int i = 0; i < n_list; i++) free(list[i]);
    free(list);
    for (int i = 0; i < n_scan; i++) free(scan[i].prefix);
    free(scan);
    return rc;
}

typedef struct slice_info {
    pst_shape full;
    int64_t start[PST_MAX_RANK], len[PST_MAX_RANK];
} slice_info;

/* The save-slice attrs of a partitioned variable's part (see placement.h); 0 when it is whole. */
static int slice_of(const pst_node *n, slice_info *si) {
    const pst_attr *fs = pst_node_attr(n, "_save_slice_full_shape");
    const pst_attr *off = pst_node_attr(n, "_save_slice_var_offset");
    const pst_attr *vs = pst_node_attr(n, "_save_slice_var_shape");
    if (!fs || !off || !vs || fs->n != off->n || fs->n != vs->n || fs->n > PST_MAX_RANK) return 0;
    si->full.rank = fs->n;
    for (int d = 0; d < fs->n; d++) {
        si->full.dims[d] = fs->list.i[d];
        si->start[d] = off->list.i[d];
        si->len[d] = vs->list.i[d];
    }
    return 1;
}

/* Rows of the full tensor that belong to a part (start/len per dim). */
static pst_tensor *cut(const pst_tensor *full, const slice_info *si, pst_status *st) {
    pst_shape ps = pst_shape_make(full->shape.rank, si->len);
    pst_tensor *t = pst_tensor_new(full->dtype, ps, st);
    if (t == NULL) return NULL;
    int64_t fs[PST_MAX_RANK], ts[PST_MAX_RANK], off = 0;
    pst_shape_strides(&full->shape, fs);
    pst_shape_strides(&ps, ts);
    for (int d = 0; d < ps.rank; d++) off += si->start[d] * fs[d];
    size_t es = pst_dtype_size(full->dtype);
    pst_strided_copy(t->data, ts, (const char *)full->data + off * (int64_t)es, fs, ps.dims,
                     ps.rank, es);
    return t;
}

/* Writes the variables whose index is in `which` (n of them) to one bundle at prefix. */
static int write_vars(pst_saver *s, pst_var_store *vs, const char *prefix, int n, const int *which,
                      pst_status *st) {
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, st);
    if (w == NULL) return st ? st->code : PST_E_IO;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        int i = which[k];
        pst_var *v = pst_var_store_find(vs, s->vars[i].node->name);
        pst_tensor *t = v ? pst_var_read(v) : NULL;
        if (t == NULL) {
            rc = pst_status_set(st, PST_E_PRECONDITION, "cannot save variable '%s': it is not "
                                "initialized", s->vars[i].node->name);
            break;
        }
        slice_info si;
        if (slice_of(s->vars[i].node, &si))
            rc = pst_bundle_writer_add_slice(w, s->names[i], si.full, si.start, si.len, t, st);
        else
            rc = pst_bundle_writer_add(w, s->names[i], t, st);
        pst_tensor_unref(t);
    }
    if (rc < 0) {
        pst_bundle_writer_abort(w);
        return rc;
    }
    return pst_bundle_writer_finish(w, st);
}

/* One bundle, or (sharded) one per device task merged into one index. */
static int write_bundle(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st) {
    if (s->write_fn) return s->write_fn(s->write_ctx, prefix, st);
    int *which = malloc((size_t)(s->n + 1) * sizeof *which);
    PST_ASSERT(which != NULL);
    int rc = 0;
    if (!s->sharded) {
        for (int i = 0; i < s->n; i++) which[i] = i;
        rc = write_vars(s, pst_session_vars(sess), prefix, s->n, which, st);
        free(which);
        return rc;
    }
    char (*tasks)[PST_DEVICE_MAX] = calloc((size_t)s->n + 1, sizeof *tasks);
    int *task_of = calloc((size_t)s->n + 1, sizeof *task_of), n_tasks = 0;
    PST_ASSERT(tasks && task_of);
    for (int i = 0; i < s->n && rc == 0; i++) {
        char t[PST_DEVICE_MAX];
        if ((rc = pst_device_task(s->vars[i].node->device, "/job:localhost", t, sizeof t, st)) < 0) break;
        int k = 0;
        while (k < n_tasks && strcmp(tasks[k], t) != 0) k++;
        if (k == n_tasks) snprintf(tasks[n_tasks++], PST_DEVICE_MAX, "%s", t);
        task_of[i] = k;
    }
    char **parts = calloc((size_t)n_tasks + 1, sizeof *parts);
    for (int k = 0; k < n_tasks && rc == 0; k++) {
        int m = 0;
        for (int i = 0; i < s->n; i++)
            if (task_of[i] == k) which[m++] = i;
        parts[k] = malloc(4200);
        snprintf(parts[k], 4200, "%s_temp_shard%d", prefix, k);
        rc = write_vars(s, pst_session_vars(sess), parts[k], m, which, st);
    }
    if (rc == 0) rc = pst_bundle_merge(n_tasks, (const char *const *)parts, prefix, st);
    for (int k = 0; k < n_tasks; k++) free(parts[k]);
    free(parts);
    free(tasks);
    free(task_of);
    free(which);
    return rc;
}

int pst_saver_write_meta(const pst_saver *s, const char *path, pst_status *st) {
    pst_saver_def sd = {.max_to_keep = s->max_to_keep,
                        .keep_checkpoint_every_n_hours = (float)s->keep_hours,
                        .n_vars = s->n,
                        .vars = s->vars,
                        .names = (const char *const *)s->names};
    pst_meta_export_opts mo = {.saver_def = &sd};
    if (!s->meta_g) return pst_meta_graph_write(s->g, &mo, path, st);
    /* Another graph: the same variables, found there by name. */
    pst_output *vars = calloc((size_t)s->n + 1, sizeof *vars);
    if (!vars) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory writing %s", path);
    for (int i = 0; i < s->n; i++) {
        pst_node *v = pst_graph_find(s->meta_g, s->vars[i].node->name);
        if (!v || !(v->op->flags & PST_OP_VARIABLE)) {
            free(vars);
            return pst_status_set(st, PST_E_INVALID, "%s: the graph written as the .meta has no "
                                  "variable '%s'", path, s->vars[i].node->name);
        }
        vars[i] = pst_out(v, s->vars[i].index);
    }
    sd.vars = vars;
    int rc = pst_meta_graph_write(s->meta_g, &mo, path, st);
    free(vars);
    return rc;
}

int pst_saver_save(pst_saver *s, pst_session *sess, const char *path, int64_t step, char *out,
                   size_t out_len, pst_status *st) {
    char prefix[4096], dir[4096];
    if (step >= 0)
        snprintf(prefix, sizeof prefix, "%s-%lld", path, (long long)step);
    else
        snprintf(prefix, sizeof prefix, "%s", path);
    split_dir(prefix, dir, sizeof dir);
    /* After a restart, pick up the list of checkpoints this directory already has. */
    if (s->dir == NULL || strcmp(s->dir, dir) != 0) {
        for (int i = 0; i < s->n_kept; i++) free(s->kept[i]);
        free(s->kept);
        s->kept = NULL;
        s->n_kept = 0;
        pst_status lst = {0};
        int n = pst_checkpoint_list(dir, &s->kept, &lst);
        s->n_kept = n > 0 ? n : 0;
        free(s->dir);
        s->dir = strdup(dir);
    }
    /* What interrupted saves left (temporary names only) goes before this save starts. */
    remove_temps(dir, NULL, NULL);
    file_set before;
    files_of(prefix, &before);
    int rc = write_bundle(s, sess, prefix, st);
    if (rc == 0 && s->write_meta) {
        char meta[4200];
        snprintf(meta, sizeof meta, "%s.meta", prefix);
        rc = pst_saver_write_meta(s, meta, st);
    }
    /* The new checkpoint goes last; older ones beyond max_to_keep leave the list and are
     * deleted unless the every-n-hours rule keeps them on disk. Nothing is deleted before the
     * state file no longer names it. */
    char **next = calloc((size_t)s->n_kept + 2, sizeof *next);
    char **evict = calloc((size_t)s->n_kept + 2, sizeof *evict);
    PST_ASSERT(next && evict);
    int n_next = 0, n_evict = 0;
    double kept_time = s->last_kept_time;
    if (rc == 0) {
        for (int i = 0; i < s->n_kept; i++)
            if (strcmp(s->kept[i], prefix) != 0 && !same_file(s->kept[i], prefix))
                next[n_next++] = strdup(s->kept[i]);
        next[n_next++] = strdup(prefix);
        while (s->max_to_keep > 0 && n_next > s->max_to_keep) {
            double now = (double)time(NULL);
            if (s->keep_hours > 0 && now - kept_time >= s->keep_hours * 3600) {
                kept_time = now;
                free(next[0]);
            } else {
                evict[n_evict++] = next[0];
            }
            memmove(&next[0], &next[1], (size_t)(n_next - 1) * sizeof *next);
            n_next--;
        }
        rc = pst_checkpoint_state_write(dir, n_next, next, st);
    }
    if (rc < 0) {
        /* A failed save (a full disk, a task that could not write its shard) leaves nothing
         * behind, and the state file still names only what it did before. */
        remove_failed_save(prefix, &before);
    } else {
        for (int i = 0; i < n_evict; i++) delete_checkpoint(evict[i]);
        for (int i = 0; i < s->n_kept; i++) free(s->kept[i]);
        free(s->kept);
        s->kept = next;
        s->n_kept = n_next;
        s->last_kept_time = kept_time;
        next = NULL;
        n_next = 0;
    }
    for (int i = 0; i < n_next; i++) free(next[i]);
    free(next);
    for (int i = 0; i < n_evict; i++) free(evict[i]);
    free(evict);
    file_set_free(&before);
    if (rc < 0) return rc;
    if (out) snprintf(out, out_len, "%s", prefix);
    return 0;
}

int pst_saver_write_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st) {
    int *which = malloc((size_t)(s->n + 1) * sizeof *which);
    PST_ASSERT(which != NULL);
    for (int i = 0; i < s->n; i++) which[i] = i;
    int rc = write_vars(s, vs, prefix, s->n, which, st);
    free(which);
    return rc;
}

/* Removes a directory tree this process made (regular files and directories only). */
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

int pst_saver_export_saved_model(pst_saver *s, pst_session *sess, const char *export_dir,
                                 int64_t version, int n_sigs, const pst_signature_def *sigs,
                                 char *out, size_t out_len, pst_status *st) {
    char final[4096], tmp[4200], vars[4300], pb[4300];
    if (version < 0)
        return pst_status_set(st, PST_E_INVALID, "SavedModel version %lld: must be >= 0",
                              (long long)version);
    snprintf(final, sizeof final, "%s/%lld", export_dir, (long long)version);
    struct stat sb;
    if (stat(final, &sb) == 0)
        return pst_status_set(st, PST_E_EXISTS, "%s already exists (a served version is "
                              "never overwritten; export another version)", final);
    int rc = pst_file_make_dirs(export_dir, st);
    if (rc < 0) return rc;
    /* Built under a name TF Serving ignores (not a number), renamed into place when complete. */
    snprintf(tmp, sizeof tmp, "%s/.%lld.tmp%ld", export_dir, (long long)version, (long)getpid());
    remove_tree(tmp);
    snprintf(vars, sizeof vars, "%s/variables", tmp);
    if ((rc = pst_file_make_dirs(vars, st)) < 0) return rc;
    snprintf(vars, sizeof vars, "%s/variables/variables", tmp);
    snprintf(pb, sizeof pb, "%s/saved_model.pb", tmp);
    rc = pst_saver_write_store(s, pst_session_vars(sess), vars, st);
    if (rc == 0) {
        const char *tags[] = {"serve", NULL};
        pst_saver_def sd = {.max_to_keep = s->max_to_keep,
                            .keep_checkpoint_every_n_hours = (float)s->keep_hours,
                            .n_vars = s->n,
                            .vars = s->vars,
                            .names = (const char *const *)s->names};
        pst_meta_export_opts mo = {
            .tags = tags, .saver_def = &sd, .n_signatures = n_sigs, .signatures = sigs};
        uint8_t *buf;
        size_t len;
        if ((rc = pst_saved_model_export(s->g, &mo, &buf, &len, st)) == 0) {
            rc = pst_file_write_atomic(pb, buf, len, st);
            free(buf);
        }
    }
    if (rc == 0 && rename(tmp, final) != 0)
        rc = pst_status_set(st, PST_E_IO, "cannot rename %s to %s: %s", tmp, final,
                            strerror(errno));
    if (rc == 0) rc = pst_file_fsync_dir_of(final, st);
    if (rc < 0) {
        remove_tree(tmp);
        return rc;
    }
    if (out) snprintf(out, out_len, "%s", final);
    return 0;
}

int pst_saver_restore(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st) {
    return pst_saver_restore_store(s, pst_session_vars(sess), prefix, st);
}

int pst_saver_restore_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL) return st ? st->code : PST_E_DATA_LOSS;
    char problems[PST_STATUS_MSG_MAX] = "";
    size_t off = 0;
    int bad = 0, rc = 0;
    for (int i = 0; i < s->n; i++) {
        const pst_bundle_entry *e = pst_bundle_reader_find(r, s->names[i]);
        pst_node *vn = s->vars[i].node;
        pst_shape vshape = vn->out_shapes[0];
        slice_info si;
        if (slice_of(vn, &si)) vshape = si.full; /* compared with the full tensor */
        char a[128], b[128];
        const char *why = NULL;
        char detail[320];
        if (e == NULL) {
            why = "missing";
            snprintf(detail, sizeof detail, "%s (missing)", s->names[i]);
        } else if (e->dtype != vn->out_dtypes[0] || !pst_shape_compatible(&vshape, &e->shape)) {
            why = "mismatch";
            snprintf(detail, sizeof detail, "%s (checkpoint %s %s, variable %s %s)", s->names[i],
                     pst_dtype_name(e->dtype), pst_shape_str(&e->shape, a, sizeof a),
                     pst_dtype_name(vn->out_dtypes[0]), pst_shape_str(&vshape, b, sizeof b));
        }
        if (why) {
            if (off < sizeof problems)
                off += (size_t)snprintf(problems + off, sizeof problems - off, "%s%s",
                                        bad ? ", " : "", detail);
            bad++;
        }
    }
    if (bad) {
        rc = pst_status_set(st, PST_E_NOT_FOUND, "cannot restore %d variable(s) from %s: %s", bad,
                            prefix, problems);
    } else {
        for (int i = 0; i < s->n && rc == 0; i++) {
            pst_tensor *t = pst_bundle_reader_read(r, s->names[i], st);
            if (t == NULL) {
                rc = st ? st->code : PST_E_DATA_LOSS;
                break;
            }
            slice_info si;
            if (slice_of(s->vars[i].node, &si)) {
                /* Re-slice: any partitioning of the same full shape restores. */
                pst_tensor *part = cut(t, &si, st);
                pst_tensor_unref(t);
                if (part == NULL) {
                    rc = st ? st->code : PST_E_EXHAUSTED;
                    break;
                }
                t = part;
            }
            pst_node *vn = s->vars[i].node;
            pst_var *v = pst_var_store_get_or_create(vs, vn->name, vn->out_dtypes[0],
                                                     vn->out_shapes[0], st);
            rc = v ? pst_var_assign(v, t, 1, st) : PST_E_INVALID;
            pst_tensor_unref(t);
        }
    }
    pst_bundle_reader_free(r);
    return rc;
}
