/*
 * bench_ckpt: save and restore of 1 GB of float variables (16 x 64 MB) through the saver's
 * bundle writer/reader, against `dd ... conv=fdatasync` writing and `dd` reading the same amount
 * on the same disk in the same run. The bundle writes and reads big tensors with O_DIRECT, so
 * its restore reads the disk; dd's read is shown both from the page cache (its file was just
 * written) and with iflag=direct (from the disk), and the ratio uses the latter. Median of 3.
 *
 * Usage: bench_ckpt [dir]   (default: $TMPDIR or /tmp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "bundle.h"
#include "ops.h"

#define RUNS 3
#define N_TENSORS 16
#define TENSOR_FLOATS (16 << 20) /* 64 MB */

static double timed_system(const char *cmd) {
    double t0 = pst_bench_now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_ckpt: '%s' failed\n", cmd);
        exit(1);
    }
    return pst_bench_now() - t0;
}

int main(int argc, char **argv) {
    pst_ops_init(); /* the built-in op families, before any graph */
    const char *dir = argc > 1 ? argv[1] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char prefix[4096], ddfile[4096], cmd[8192];
    snprintf(prefix, sizeof prefix, "%s/pst_bench_ckpt", dir);
    snprintf(ddfile, sizeof ddfile, "%s/pst_bench_dd", dir);
    pst_tensor *t[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++) {
        t[i] = pst_tensor_new(PST_FLOAT, pst_shape_1d(TENSOR_FLOATS), NULL);
        for (int64_t k = 0; k < t[i]->n; k++) pst_tensor_f32(t[i])[k] = (float)(k % 1000) * 0.001f + (float)i;
    }
    double gb = (double)N_TENSORS * TENSOR_FLOATS * 4 / 1e9;
    double save[RUNS], restore[RUNS], ddw[RUNS], ddr[RUNS], ddd[RUNS];
    for (int r = 0; r < RUNS; r++) {
        pst_status st = {0};
        double t0 = pst_bench_now();
        pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
        for (int i = 0; i < N_TENSORS && w; i++) {
            char name[32];
            snprintf(name, sizeof name, "layer%02d/weights", i);
            if (pst_bundle_writer_add(w, name, t[i], &st) < 0) break;
        }
        if (w == NULL || pst_bundle_writer_finish(w, &st) < 0) {
            fprintf(stderr, "bench_ckpt: save failed: %s\n", st.msg);
            return 1;
        }
        save[r] = pst_bench_now() - t0;
        t0 = pst_bench_now();
        pst_bundle_reader *rd = pst_bundle_reader_open(prefix, &st);
        for (int i = 0; i < N_TENSORS && rd; i++) {
            char name[32];
            snprintf(name, sizeof name, "layer%02d/weights", i);
            pst_tensor *x = pst_bundle_reader_read(rd, name, &st);
            if (x == NULL) {
                fprintf(stderr, "bench_ckpt: restore failed: %s\n", st.msg);
                return 1;
            }
            pst_tensor_unref(x);
        }
        pst_bundle_reader_free(rd);
        restore[r] = pst_bench_now() - t0;
        snprintf(cmd, sizeof cmd, "dd if=/dev/zero of=%s bs=4M count=256 conv=fdatasync status=none", ddfile);
        ddw[r] = timed_system(cmd);
        snprintf(cmd, sizeof cmd, "dd if=%s of=/dev/null bs=4M status=none", ddfile);
        ddr[r] = timed_system(cmd);
        snprintf(cmd, sizeof cmd, "dd if=%s of=/dev/null bs=4M iflag=direct status=none", ddfile);
        ddd[r] = timed_system(cmd);
    }
    qsort(save, RUNS, sizeof save[0], pst_bench_cmp);
    qsort(restore, RUNS, sizeof restore[0], pst_bench_cmp);
    qsort(ddw, RUNS, sizeof ddw[0], pst_bench_cmp);
    qsort(ddr, RUNS, sizeof ddr[0], pst_bench_cmp);
    qsort(ddd, RUNS, sizeof ddd[0], pst_bench_cmp);
    double s = gb / save[RUNS / 2], rr = gb / restore[RUNS / 2];
    double dw = 1.073741824 / ddw[RUNS / 2], dr = 1.073741824 / ddr[RUNS / 2];
    double dd_direct = 1.073741824 / ddd[RUNS / 2];
    printf("1 GB of variables in %s (median of %d)\n", dir, RUNS);
    printf("save     %6.2f GB/s   dd write (fdatasync) %6.2f GB/s   ratio %.2f\n", s, dw, s / dw);
    printf("restore  %6.2f GB/s   dd read (direct)     %6.2f GB/s   ratio %.2f\n", rr, dd_direct,
           rr / dd_direct);
    printf("         (dd read from the page cache: %.2f GB/s)\n", dr);
    snprintf(cmd, sizeof cmd, "%s.index", prefix);
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s.data-00000-of-00001", prefix);
    unlink(cmd);
    unlink(ddfile);
    for (int i = 0; i < N_TENSORS; i++) pst_tensor_unref(t[i]);
    return 0;
}
