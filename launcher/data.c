#include "data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "example.h"
#include "fashion_mnist.h"
#include "file.h"
#include "tfrecord.h"

static int usage(void) {
    fprintf(
        stderr,
        "usage: pstrain data convert --from idx --to tfrecord --out DIR [--split train|test|all]\n"
        "                            [--data-dir DIR] [--float] [--compression none|zlib|gzip]\n"
        "       pstrain data show FILE [--limit N] [--compression auto|none|zlib|gzip]\n"
        "convert writes DIR/<split>.tfrecord (.tfrecord.zlib, .tfrecord.gz) of tf.train.Example\n"
        "records with features \"image\" (bytes: rows*cols raw uint8 pixels; with --float a\n"
        "float_list of pixel/255) and \"label\" (int64), from the Fashion-MNIST IDX files in\n"
        "--data-dir (default " PST_FASHION_MNIST_DIR ").\n");
    return 2;
}

static const char *suffix_of(pst_tfrecord_compression c) {
    return c == PST_TFRECORD_GZIP ? ".gz" : c == PST_TFRECORD_ZLIB ? ".zlib" : "";
}

/* Writes one split's examples to out_dir/<split>.tfrecord[suffix]. */
static int convert_split(const char *data_dir, const char *split, const char *out_dir,
                         pst_tfrecord_compression comp, int as_float) {
    pst_status st = {0};
    pst_tensor *images = NULL, *labels = NULL;
    pst_example *ex = NULL;
    pst_tfrecord_writer *w = NULL;
    pst_pbwire_buf buf;
    pst_pbwire_buf_init(&buf);
    float *pix = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.tfrecord%s", out_dir, split, suffix_of(comp));
    int rc = pst_fashion_mnist_load_raw(data_dir, split, &images, &labels, &st);
    if (rc < 0)
        goto out;
    int64_t n = images->shape.dims[0];
    size_t per = (size_t)(images->n / (n ? n : 1));
    ex = pst_example_new();
    pix = malloc(per ? per * sizeof *pix : 1);
    if (ex == NULL || pix == NULL) {
        rc = pst_status_set(&st, PST_E_EXHAUSTED, "out of memory converting %s", split);
        goto out;
    }
    pst_tfrecord_writer_opts wo = {.compression = comp, .atomic = 1};
    if ((w = pst_tfrecord_writer_open(path, &wo, &st)) == NULL) {
        rc = st.code;
        goto out;
    }
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *img = pst_tensor_u8(images) + (size_t)i * per;
        pst_example_clear(ex);
        if (as_float) {
            for (size_t j = 0; j < per; j++)
                pix[j] = (float)img[j] * (1.0f / 255.0f);
            rc = pst_example_add_floats(ex, "image", pix, per, &st);
        } else {
            pst_example_bytes b = {img, per};
            rc = pst_example_add_bytes(ex, "image", &b, 1, &st);
        }
        if (rc == 0)
            rc = pst_example_add_int64s(ex, "label", &pst_tensor_i64(labels)[i], 1, &st);
        pst_pbwire_buf_reset(&buf);
        if (rc == 0)
            rc = pst_example_encode(ex, &buf, &st);
        if (rc == 0)
            rc = pst_tfrecord_writer_write(w, buf.data, buf.len, &st);
    }
    if (rc == 0) {
        rc = pst_tfrecord_writer_close(w, &st);
        w = NULL;
    }
    if (rc == 0) {
        struct stat sb;
        long long bytes = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
        printf("wrote %lld records to %s (%s, %lld bytes): image %s [%lld,%lld,1], label int64\n",
               (long long)n, path, pst_tfrecord_compression_name(comp), bytes,
               as_float ? "float_list" : "bytes (uint8)", (long long)images->shape.dims[1],
               (long long)images->shape.dims[2]);
    }
out:
    if (rc < 0)
        fprintf(stderr, "pstrain data convert: %s\n", st.msg);
    pst_tfrecord_writer_abort(w);
    pst_pbwire_buf_destroy(&buf);
    pst_example_free(ex);
    free(pix);
    pst_tensor_unref(images);
    pst_tensor_unref(labels);
    return rc < 0 ? 1 : 0;
}

static int cmd_convert(int argc, char **argv) {
    const char *from = NULL, *to = NULL, *out = NULL, *split = "all", *data_dir = NULL;
    pst_tfrecord_compression comp = PST_TFRECORD_NONE;
    int as_float = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--from") == 0 && has)
            from = argv[++i];
        else if (strcmp(a, "--to") == 0 && has)
            to = argv[++i];
        else if (strcmp(a, "--out") == 0 && has)
            out = argv[++i];
        else if (strcmp(a, "--split") == 0 && has)
            split = argv[++i];
        else if (strcmp(a, "--data-dir") == 0 && has)
            data_dir = argv[++i];
        else if (strcmp(a, "--float") == 0)
            as_float = 1;
        else if (strcmp(a, "--compression") == 0 && has) {
            pst_status st = {0};
            if (pst_tfrecord_compression_parse(argv[++i], &comp, &st) < 0 ||
                comp == PST_TFRECORD_AUTO) {
                fprintf(stderr, "pstrain data convert: --compression must be none, zlib or gzip\n");
                return 2;
            }
        } else {
            fprintf(stderr, "pstrain data convert: unknown or incomplete argument '%s'\n", a);
            return usage();
        }
    }
    if (from == NULL || to == NULL || out == NULL)
        return usage();
    if (strcmp(from, "idx") != 0 || strcmp(to, "tfrecord") != 0) {
        fprintf(stderr, "pstrain data convert: only --from idx --to tfrecord is supported\n");
        return 2;
    }
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0 && strcmp(split, "all") != 0) {
        fprintf(stderr, "pstrain data convert: --split must be train, test or all\n");
        return 2;
    }
    pst_status st = {0};
    if (pst_file_make_dirs(out, &st) < 0) {
        fprintf(stderr, "pstrain data convert: %s\n", st.msg);
        return 1;
    }
    int all = strcmp(split, "all") == 0;
    if (all || strcmp(split, "train") == 0) {
        int rc = convert_split(data_dir, "train", out, comp, as_float);
        if (rc)
            return rc;
    }
    if (all || strcmp(split, "test") == 0)
        return convert_split(data_dir, "test", out, comp, as_float);
    return 0;
}

/* Bytes as a quoted string when printable, else as hex; at most `max` of them. */
static void print_bytes(const uint8_t *p, size_t n, size_t max) {
    size_t show = n < max ? n : max;
    int text = 1;
    for (size_t i = 0; i < show; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            text = 0;
    if (text) {
        printf("\"");
        for (size_t i = 0; i < show; i++) {
            if (p[i] == '"' || p[i] == '\\')
                putchar('\\');
            putchar(p[i]);
        }
        printf("\"");
    } else {
        for (size_t i = 0; i < show; i++)
            printf("%s%02x", i ? " " : "", p[i]);
    }
    if (show < n)
        printf(" ... (%zu bytes)", n);
}

static void print_feature(const pst_example_feature *f) {
    printf("  %s: %s[%zu]", f->name, pst_example_kind_name(f->kind), f->count);
    size_t show = f->count < 10 ? f->count : 10;
    if (f->kind == PST_EXAMPLE_BYTES) {
        for (size_t j = 0; j < f->count && j < 3; j++) {
            printf(j ? ", " : " ");
            print_bytes(f->bytes[j].data, f->bytes[j].len, 16);
        }
        if (f->count > 3)
            printf(", ...");
    } else if (f->kind == PST_EXAMPLE_FLOAT) {
        for (size_t j = 0; j < show; j++)
            printf(" %.6g", (double)f->floats[j]);
    } else if (f->kind == PST_EXAMPLE_INT64) {
        for (size_t j = 0; j < show; j++)
            printf(" %lld", (long long)f->int64s[j]);
    }
    if (f->kind != PST_EXAMPLE_BYTES && show < f->count)
        printf(" ... (%zu more)", f->count - show);
    printf("\n");
}

static int cmd_show(int argc, char **argv) {
    const char *path = NULL;
    long long limit = -1;
    pst_tfrecord_reader_opts ro = {.compression = PST_TFRECORD_AUTO};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--limit") == 0 && has) {
            char *end;
            limit = strtoll(argv[++i], &end, 10);
            if (*end || limit < 0) {
                fprintf(stderr, "pstrain data show: --limit needs a number >= 0\n");
                return 2;
            }
        } else if (strcmp(a, "--compression") == 0 && has) {
            pst_status st = {0};
            if (pst_tfrecord_compression_parse(argv[++i], &ro.compression, &st) < 0) {
                fprintf(stderr, "pstrain data show: %s\n", st.msg);
                return 2;
            }
        } else if (a[0] != '-' && path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "pstrain data show: unknown or incomplete argument '%s'\n", a);
            return usage();
        }
    }
    if (path == NULL)
        return usage();
    pst_status st = {0};
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, &ro, &st);
    if (r == NULL) {
        fprintf(stderr, "pstrain data show: %s\n", st.msg);
        return 1;
    }
    printf("%s (%s)\n", path, pst_tfrecord_compression_name(pst_tfrecord_reader_compression(r)));
    pst_example *ex = pst_example_new();
    const uint8_t *rec;
    size_t len;
    long long shown = 0;
    int rc = 0;
    while ((limit < 0 || shown < limit) &&
           (rc = pst_tfrecord_reader_next(r, &rec, &len, &st)) == 1) {
        rc = 0;
        printf("record %lld (offset %llu, %zu bytes)", (long long)pst_tfrecord_reader_index(r),
               (unsigned long long)pst_tfrecord_reader_offset(r), len);
        pst_status est = {0};
        if (ex && pst_example_parse(ex, rec, len, &est) == 0) {
            printf(": %d feature(s)\n", pst_example_num_features(ex));
            for (int k = 0; k < pst_example_num_features(ex); k++)
                print_feature(pst_example_feature_at(ex, k));
        } else {
            printf(": not a tf.train.Example (%s): ", est.msg);
            print_bytes(rec, len, 32);
            printf("\n");
        }
        shown++;
    }
    if (rc < 0)
        fprintf(stderr, "pstrain data show: %s\n", st.msg);
    else if (limit >= 0 && shown == limit)
        printf("%lld record(s) shown (--limit %lld)\n", shown, limit);
    else
        printf("%lld record(s)\n", shown);
    pst_example_free(ex);
    pst_tfrecord_reader_free(r);
    return rc < 0 ? 1 : 0;
}

int pst_cmd_data(int argc, char **argv) {
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "convert") == 0)
        return cmd_convert(argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    fprintf(stderr, "pstrain data: unknown subcommand '%s'\n", argv[1]);
    return usage();
}
