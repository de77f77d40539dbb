#include "ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bundle.h"
#include "saver.h"

static int usage(void) {
    fprintf(stderr, "usage: pstrain ckpt ls DIR\n"
                    "       pstrain ckpt show PREFIX [--tensor NAME] [--values]\n"
                    "       pstrain ckpt verify PREFIX\n"
                    "       pstrain ckpt diff PREFIX_A PREFIX_B [--tolerance X]\n");
    return 2;
}

static int64_t file_size(const char *path, time_t *mtime) {
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    if (mtime) *mtime = sb.st_mtime;
    return sb.st_size;
}

static int cmd_ls(const char *dir) {
    char **paths;
    pst_status st = {0};
    int n = pst_checkpoint_list(dir, &paths, &st);
    if (n < 0) {
        fprintf(stderr, "pstrain ckpt ls: %s\n", st.msg);
        return 1;
    }
    if (n == 0) printf("no checkpoints in %s\n", dir);
    for (int i = 0; i < n; i++) {
        char idx[4200];
        snprintf(idx, sizeof idx, "%s.index", paths[i]);
        time_t mt = 0;
        int64_t bytes = file_size(idx, &mt);
        pst_status rst = {0};
        pst_bundle_reader *r = pst_bundle_reader_open(paths[i], &rst);
        int shards = r ? pst_bundle_reader_num_shards(r) : 0;
        for (int k = 0; r && k < shards; k++) {
            char data[4300];
            snprintf(data, sizeof data, "%s.data-%05d-of-%05d", paths[i], k, shards);
            int64_t b = file_size(data, NULL);
            if (b > 0) bytes += b;
        }
        const char *step = strrchr(paths[i], '-');
        char when[64] = "?";
        if (mt) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&mt));
        printf("%-40s step %-8s %s %12lld bytes %d shard(s) %d tensors%s%s\n", paths[i],
               step ? step + 1 : "-", when, (long long)bytes, shards,
               r ? pst_bundle_reader_num_entries(r) : 0, r ? "" : "  UNREADABLE: ", r ? "" : rst.msg);
        pst_bundle_reader_free(r);
        free(paths[i]);
    }
    free(paths);
    return 0;
}

static void print_values(const pst_tensor *t) {
    int64_t show = t->n < 20 ? t->n : 20;
    printf("    values:");
    for (int64_t i = 0; i < show; i++) printf(" %.6g", pst_tensor_get_f64(t, i));
    if (show < t->n) printf(" ... (%lld more)", (long long)(t->n - show));
    printf("\n");
}

static int cmd_show(const char *prefix, const char *only, int values) {
    pst_status st = {0};
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    if (r == NULL) {
        fprintf(stderr, "pstrain ckpt show: %s\n", st.msg);
        return 1;
    }
    printf("%s: %d tensor(s), %d shard(s)\n", prefix, pst_bundle_reader_num_entries(r),
           pst_bundle_reader_num_shards(r));
    int rc = 0, found = 0;
    for (int i = 0; i < pst_bundle_reader_num_entries(r); i++) {
        const pst_bundle_entry *e = pst_bundle_reader_entry(r, i);
        if (only && strcmp(only, e->name) != 0) continue;
        found = 1;
        char sh[128];
        printf("  %-40s %-7s %-16s shard %d offset %lld size %lld crc32c %08x%s\n", e->name,
               pst_dtype_name(e->dtype), pst_shape_str(&e->shape, sh, sizeof sh), e->shard_id,
               (long long)e->offset, (long long)e->size, e->crc32c,
               e->n_slices ? " (sliced)" : "");
        if (values && !e->n_slices) {
            pst_tensor *t = pst_bundle_reader_read(r, e->name, &st);
            if (t == NULL) {
                fprintf(stderr, "pstrain ckpt show: %s\n", st.msg);
                rc = 1;
                continue;
            }
            print_values(t);
            pst_tensor_unref(t);
        }
    }
    if (only && !found) {
        fprintf(stderr, "pstrain ckpt show: no tensor '%s' in %s\n", only, prefix);
        rc = 1;
    }
    pst_bundle_reader_free(r);
    return rc;
}

static int cmd_verify(const char *prefix) {
    pst_status st = {0};
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    int rc = r ? pst_bundle_verify(r, &st) : st.code;
    if (rc < 0)
        fprintf(stderr, "pstrain ckpt verify: FAILED: %s\n", st.msg);
    else
        printf("%s: OK (%d tensors, every checksum holds)\n", prefix, pst_bundle_reader_num_entries(r));
    pst_bundle_reader_free(r);
    return rc < 0 ? 1 : 0;
}

/* Every tensor of a in b with the same shape and values within tol of each other (relative
 * to max(1, |x|)); partitioned variables compare whole. Exit 0 when they agree, 1 otherwise
 * (the differences listed, at most 10). */
static int cmd_diff(const char *a, const char *b, double tol) {
    pst_status st = {0};
    pst_bundle_reader *ra = pst_bundle_reader_open(a, &st);
    pst_bundle_reader *rb = ra ? pst_bundle_reader_open(b, &st) : NULL;
    if (!ra || !rb) {
        fprintf(stderr, "pstrain ckpt diff: %s\n", st.msg);
        pst_bundle_reader_free(ra);
        return 1;
    }
    int bad = 0, compared = 0;
    double worst = 0;
    for (int i = 0; i < pst_bundle_reader_num_entries(ra) && bad < 10; i++) {
        const pst_bundle_entry *e = pst_bundle_reader_entry(ra, i);
        if (strchr(e->name, '\001')) continue; /* a slice: compared through the whole */
        pst_tensor *ta = pst_bundle_reader_read(ra, e->name, &st);
        pst_tensor *tb = ta ? pst_bundle_reader_read(rb, e->name, &st) : NULL;
        if (!ta || !tb) {
            printf("%s: %s\n", e->name, st.msg);
            bad++;
        } else if (ta->n != tb->n) {
            printf("%s: %lld values in %s, %lld in %s\n", e->name, (long long)ta->n, a,
                   (long long)tb->n, b);
            bad++;
        } else {
            for (int64_t k = 0; k < ta->n; k++) {
                double x = pst_tensor_get_f64(ta, k), y = pst_tensor_get_f64(tb, k);
                double d = fabs(x - y) / (fabs(x) > 1 ? fabs(x) : 1);
                if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
                if (d > tol || isnan(d)) {
                    printf("%s[%lld]: %.9g vs %.9g\n", e->name, (long long)k, x, y);
                    bad++;
                    break;
                }
            }
            compared++;
        }
        pst_tensor_unref(ta);
        pst_tensor_unref(tb);
    }
    if (!bad)
        printf("%d tensors agree within %g (largest relative difference %.3g)\n", compared, tol,
               worst);
    pst_bundle_reader_free(ra);
    pst_bundle_reader_free(rb);
    return bad ? 1 : 0;
}

int pst_cmd_ckpt(int argc, char **argv) {
    if (argc < 3) return usage();
    if (strcmp(argv[1], "ls") == 0) return cmd_ls(argv[2]);
    if (strcmp(argv[1], "verify") == 0) return cmd_verify(argv[2]);
    if (strcmp(argv[1], "diff") == 0) {
        double tol = 1e-6;
        if (argc == 6 && strcmp(argv[4], "--tolerance") == 0) {
            char *end;
            tol = strtod(argv[5], &end);
            if (*end || !(tol >= 0)) {
                fprintf(stderr, "pstrain ckpt diff: --tolerance: '%s' is not a number >= 0\n",
                        argv[5]);
                return 2;
            }
        } else if (argc != 4) {
            return usage();
        }
        return cmd_diff(argv[2], argv[3], tol);
    }
    if (strcmp(argv[1], "show") == 0) {
        const char *only = NULL;
        int values = 0;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--values") == 0)
                values = 1;
            else if (strcmp(argv[i], "--tensor") == 0 && i + 1 < argc)
                only = argv[++i];
            else
                return usage();
        }
        return cmd_show(argv[2], only, values);
    }
    return usage();
}
