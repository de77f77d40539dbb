/* TF 1.x string ops (ops_string_tf.c) value by value against TensorFlow's documented results
 * and kernel semantics, and their errors: hashing into buckets (FarmHash Fingerprint64,
 * SipHash-2-4, TF's Hash64), splitting, lengths, substrings, case, AsString's formats,
 * ReduceJoin, web-safe base64 and RegexFullMatch; lookup tables (mutable ones, V1 names,
 * text-file initializers: ops_lookup.c) and ReadFile/WriteFile with the confinement of graphs
 * run for a remote peer (ops_io.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "io_ops.h"
#include "ops.h"
#include "strhash.h"
#include "testutil.h"

/* A string tensor of shape s from n NUL-ended strings. */
static pst_tensor *strs(pst_shape s, const char *const *v) {
    pst_status st = {0};
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, s, &st);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->n; i++) pst_tstring_set(pst_tensor_str(t) + i, v[i], strlen(v[i]));
    return t;
}

typedef struct attr_kv {
    const char *name;
    char kind; /* 'i' int, 'b' bool, 's' string, 't' type, 'l' list of 2 ints */
    int64_t i, i2;
    const char *s;
} attr_kv;

/* Builds op on constant inputs (taking their references) with attrs, runs it and returns
 * output `which`, or NULL with *rc / st set when the build or the run fails. */
static pst_tensor *run_op(const char *op, int n, pst_tensor **in, const attr_kv *attrs, int which,
                          int *rc, pst_status *st) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, op, "op");
    for (int i = 0; i < n; i++) pst_nb_input(b, pst_test_const(g, in[i], NULL));
    for (const attr_kv *a = attrs; a && a->name; a++) {
        if (a->kind == 'i') pst_nb_attr_i(b, a->name, a->i);
        if (a->kind == 'b') pst_nb_attr_b(b, a->name, (int)a->i);
        if (a->kind == 's') pst_nb_attr_s(b, a->name, a->s);
        if (a->kind == 't') pst_nb_attr_type(b, a->name, (pst_dtype)a->i);
        if (a->kind == 'l') pst_nb_attr_list_i(b, a->name, 2, (int64_t[]){a->i, a->i2});
    }
    pst_node *node = pst_nb_finish(b);
    pst_tensor *out = NULL;
    *rc = 0;
    if (node == NULL) {
        *st = *pst_graph_status(g);
        *rc = st->code ? st->code : PST_E_INVALID;
    } else {
        pst_session *s = pst_session_new(g, NULL, st);
        ck_assert_msg(s != NULL, "%s", st->msg);
        pst_output o = {node, which};
        *rc = pst_session_run(s, NULL, 0, &o, 1, NULL, 0, &out, st);
        pst_session_free(s);
    }
    pst_graph_free(g);
    return out;
}

static pst_tensor *run_ok(const char *op, int n, pst_tensor **in, const attr_kv *attrs, int which) {
    int rc;
    pst_status st = {0};
    pst_tensor *t = run_op(op, n, in, attrs, which, &rc, &st);
    ck_assert_msg(rc == 0 && t != NULL, "%s: %s", op, st.msg);
    return t;
}

/* Runs op expecting failure with code, the message containing what. */
static void run_fails(const char *op, int n, pst_tensor **in, const attr_kv *attrs, int code,
                      const char *what) {
    int rc;
    pst_status st = {0};
    pst_tensor *t = run_op(op, n, in, attrs, 0, &rc, &st);
    pst_tensor_unref(t);
    ck_assert_msg(rc == code, "%s: got %d (%s), expected %d", op, rc, st.msg, code);
    ck_assert_msg(strstr(st.msg, what) != NULL, "%s: '%s' lacks '%s'", op, st.msg, what);
}

static void assert_strs(const pst_tensor *t, int64_t n, const char *const *want) {
    ck_assert_int_eq(t->dtype, PST_STRING);
    ck_assert_int_eq(t->n, n);
    for (int64_t i = 0; i < n; i++) {
        const pst_tstring *s = pst_tensor_str(t) + i;
        ck_assert_msg(s->len == strlen(want[i]) &&
                          (s->len == 0 || memcmp(s->p, want[i], s->len) == 0),
                      "element %lld: '%.*s', expected '%s'", (long long)i, (int)s->len,
                      s->len ? s->p : "", want[i]);
    }
}

#define S1(...) strs(pst_shape_1d(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)), \
                     (const char *[]){__VA_ARGS__})
#define LIST(...) ((const char *[]){__VA_ARGS__})

START_TEST(test_hash_buckets) {
    /* TF's documented examples (tf.strings.to_hash_bucket_fast / _strong). */
    pst_tensor *in = S1("Hello", "TensorFlow", "2.x");
    pst_tensor *t = run_ok("StringToHashBucketFast", 1, &in,
                           (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 3}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){0, 2, 2}), 0);
    pst_tensor_unref(t);
    in = S1("Hello", "TF");
    t = run_ok("StringToHashBucketStrong", 1, &in,
               (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 3},
                           {.name = "key", .kind = 'l', .i = 1, .i2 = 2},
                           {0}},
               0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){2, 0}), 0);
    pst_tensor_unref(t);
    /* Fingerprint64 of every length class (<=16, <=32, <=64, longer), checked against an
     * independent FarmHash implementation, and of the empty string (FarmHash's k2). */
    char w200[201], z65[66];
    memset(w200, 'w', 200), w200[200] = 0;
    memset(z65, 'z', 65), z65[65] = 0;
    ck_assert_uint_eq(pst_strhash_fingerprint64("", 0), 0x9ae16a3b2f90404fULL);
    ck_assert_uint_eq(pst_strhash_fingerprint64("abcdefghijklmnopqrstu", 21),
                      11312112610291868778ULL);
    ck_assert_uint_eq(pst_strhash_fingerprint64(z65, 65), 8299915583762718517ULL);
    ck_assert_uint_eq(pst_strhash_fingerprint64("a", 1), 12917804110809363939ULL);
    in = S1(w200);
    t = run_ok("StringToHashBucketFast", 1, &in,
               (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 1000000000000000000LL}, {0}},
               0);
    ck_assert_int_eq(pst_tensor_i64(t)[0], 137922210105849728LL); /* 5137922210105849728 */
    pst_tensor_unref(t);
    /* SipHash-2-4's reference vectors (key 00..0f; messages "" and 00..0e). */
    unsigned char m[15];
    for (int i = 0; i < 15; i++) m[i] = (unsigned char)i;
    ck_assert_uint_eq(pst_strhash_siphash24(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, "", 0),
                      0x726fdb47dd0e0e31ULL);
    ck_assert_uint_eq(pst_strhash_siphash24(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, m, 15),
                      0xa129ca6149be45e5ULL);
    /* The old StringToHashBucket: TF's Hash64 (MurmurHash64A, seed 0xDECAFCAFFE). */
    in = S1("Hello", "");
    t = run_ok("StringToHashBucket", 1, &in,
               (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 1000000000000000000LL}, {0}},
               0);
    ck_assert_int_eq(pst_tensor_i64(t)[0],
                     (int64_t)(pst_strhash_tf64("Hello", 5) % 1000000000000000000ULL));
    ck_assert_int_eq(pst_tensor_i64(t)[0], 637961368021971941LL);
    pst_tensor_unref(t);
    /* Errors: no buckets, a key of the wrong length. */
    in = S1("a");
    run_fails("StringToHashBucketFast", 1, &in,
              (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 0}, {0}}, PST_E_INVALID,
              "num_buckets");
    in = S1("a");
    run_fails("StringToHashBucketStrong", 1, &in,
              (attr_kv[]){{.name = "num_buckets", .kind = 'i', .i = 2}, {0}}, PST_E_INVALID,
              "key must have 2 elements");
}
END_TEST

static void check_split(const char *op, pst_tensor *in, const char *sep, const attr_kv *attrs,
                        int64_t n, const int64_t *ix, const char *const *vals, int64_t cols) {
    pst_tensor *sp = pst_tensor_scalar_str(sep);
    pst_tensor *t =
        run_ok(op, 2, (pst_tensor *[]){pst_tensor_ref(in), pst_tensor_ref(sp)}, attrs, 0);
    ck_assert_int_eq(t->shape.rank, 2);
    ck_assert_int_eq(t->shape.dims[0], n);
    for (int64_t i = 0; i < 2 * n; i++) ck_assert_int_eq(pst_tensor_i64(t)[i], ix[i]);
    pst_tensor_unref(t);
    t = run_ok(op, 2, (pst_tensor *[]){pst_tensor_ref(in), pst_tensor_ref(sp)}, attrs, 1);
    assert_strs(t, n, vals);
    pst_tensor_unref(t);
    t = run_ok(op, 2, (pst_tensor *[]){pst_tensor_ref(in), pst_tensor_ref(sp)}, attrs, 2);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){(double)in->n, (double)cols}), 0);
    pst_tensor_unref(t);
    pst_tensor_unref(sp);
    pst_tensor_unref(in);
}

START_TEST(test_split) {
    check_split("StringSplit", S1("a b c", "", "d  e"), " ", NULL, 5,
                (int64_t[]){0, 0, 0, 1, 0, 2, 2, 0, 2, 1}, LIST("a", "b", "c", "d", "e"), 3);
    check_split("StringSplit", S1("", "d  e"), " ",
                (attr_kv[]){{.name = "skip_empty", .kind = 'b', .i = 0}, {0}}, 4,
                (int64_t[]){0, 0, 1, 0, 1, 1, 1, 2}, LIST("", "d", "", "e"), 3);
    /* Every byte of the delimiter separates; an empty one splits into bytes. */
    check_split("StringSplit", S1("a,b c"), ", ", NULL, 3, (int64_t[]){0, 0, 0, 1, 0, 2},
                LIST("a", "b", "c"), 3);
    check_split("StringSplit", S1("ab"), "", NULL, 2, (int64_t[]){0, 0, 0, 1}, LIST("a", "b"), 2);
    /* StringSplitV2: Python's str.split. */
    check_split("StringSplitV2", S1("1<>2<>3", "a<><>b"), "<>", NULL, 6,
                (int64_t[]){0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2}, LIST("1", "2", "3", "a", "", "b"),
                3);
    check_split("StringSplitV2", S1("  a  b c ", ""), "", NULL, 3,
                (int64_t[]){0, 0, 0, 1, 0, 2}, LIST("a", "b", "c"), 3);
    check_split("StringSplitV2", S1("  a  b c "), "",
                (attr_kv[]){{.name = "maxsplit", .kind = 'i', .i = 1}, {0}}, 2,
                (int64_t[]){0, 0, 0, 1}, LIST("a", "b c "), 2);
    check_split("StringSplitV2", S1("a,b,c", ""), ",",
                (attr_kv[]){{.name = "maxsplit", .kind = 'i', .i = 1}, {0}}, 3,
                (int64_t[]){0, 0, 0, 1, 1, 0}, LIST("a", "b,c", ""), 2);
    /* A matrix is refused. */
    pst_tensor *m = strs(pst_shape_2d(1, 1), LIST("a"));
    run_fails("StringSplit", 2, (pst_tensor *[]){m, pst_tensor_scalar_str(" ")}, NULL,
              PST_E_INVALID, "must be a vector");
}
END_TEST

START_TEST(test_length_substr_strip_case) {
    pst_tensor *in = S1("h\xc3\xa9llo", "");
    pst_tensor *t = run_ok("StringLength", 1, &in, NULL, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){6, 0}), 0);
    pst_tensor_unref(t);
    in = S1("h\xc3\xa9llo", "");
    t = run_ok("StringLength", 1, &in,
               (attr_kv[]){{.name = "unit", .kind = 's', .s = "UTF8_CHAR"}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){5, 0}), 0);
    pst_tensor_unref(t);

    /* Substr element-wise, with negative pos, len past the end, broadcast and UTF-8 units. */
    pst_tensor *args[3] = {S1("Hello", "World", "Hello"),
                           pst_tensor_from_i32(pst_shape_1d(3), (int32_t[]){1, 2, -3}),
                           pst_tensor_from_i32(pst_shape_1d(3), (int32_t[]){3, 10, 2})};
    t = run_ok("Substr", 3, args, NULL, 0);
    assert_strs(t, 3, LIST("ell", "rld", "ll"));
    pst_tensor_unref(t);
    pst_tensor *args2[3] = {strs(pst_shape_2d(2, 2), LIST("ab", "cd", "ef", "gh")),
                            pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){0, 1}),
                            pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){1, 1})};
    t = run_ok("Substr", 3, args2, NULL, 0);
    ck_assert_int_eq(t->shape.rank, 2);
    assert_strs(t, 4, LIST("a", "d", "e", "h"));
    pst_tensor_unref(t);
    pst_tensor *args3[3] = {S1("h\xc3\xa9llo"), pst_tensor_scalar_i32(1), pst_tensor_scalar_i32(2)};
    t = run_ok("Substr", 3, args3,
               (attr_kv[]){{.name = "unit", .kind = 's', .s = "UTF8_CHAR"}, {0}}, 0);
    assert_strs(t, 1, LIST("\xc3\xa9l"));
    pst_tensor_unref(t);
    /* UTF-8 units with a negative len: empty, as TF's UTF-8 path gives. */
    pst_tensor *args4[3] = {S1("h\xc3\xa9llo"), pst_tensor_scalar_i32(1),
                            pst_tensor_scalar_i32(-1)};
    t = run_ok("Substr", 3, args4,
               (attr_kv[]){{.name = "unit", .kind = 's', .s = "UTF8_CHAR"}, {0}}, 0);
    assert_strs(t, 1, LIST(""));
    pst_tensor_unref(t);
    pst_tensor *bad[3] = {S1("Hello"), pst_tensor_scalar_i32(6), pst_tensor_scalar_i32(1)};
    run_fails("Substr", 3, bad, NULL, PST_E_INVALID, "pos 6 out of range for string b'Hello'");

    in = S1("  a b \n", "", "x");
    t = run_ok("StringStrip", 1, &in, NULL, 0);
    assert_strs(t, 3, LIST("a b", "", "x"));
    pst_tensor_unref(t);
    in = S1("HeLLo 1");
    t = run_ok("StringLower", 1, &in, NULL, 0);
    assert_strs(t, 1, LIST("hello 1"));
    pst_tensor_unref(t);
    in = S1("HeLLo 1");
    t = run_ok("StringUpper", 1, &in, NULL, 0);
    assert_strs(t, 1, LIST("HELLO 1"));
    pst_tensor_unref(t);
    in = S1("\xc3\xa9");
    run_fails("StringUpper", 1, &in,
              (attr_kv[]){{.name = "encoding", .kind = 's', .s = "utf-8"}, {0}},
              PST_E_UNIMPLEMENTED, "non-ASCII");
}
END_TEST

START_TEST(test_as_string) {
    pst_tensor *f = pst_tensor_from_f32(pst_shape_1d(2), (float[]){3.14159f, -2.5f});
    pst_tensor *t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)}, NULL, 0);
    assert_strs(t, 2, LIST("3.141590", "-2.500000"));
    pst_tensor_unref(t);
    t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)},
               (attr_kv[]){{.name = "precision", .kind = 'i', .i = 2}, {0}}, 0);
    assert_strs(t, 2, LIST("3.14", "-2.50"));
    pst_tensor_unref(t);
    t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)},
               (attr_kv[]){{.name = "scientific", .kind = 'b', .i = 1}, {0}}, 0);
    assert_strs(t, 2, LIST("3.141590e+00", "-2.500000e+00"));
    pst_tensor_unref(t);
    t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)},
               (attr_kv[]){{.name = "shortest", .kind = 'b', .i = 1}, {0}}, 0);
    assert_strs(t, 2, LIST("3.14159", "-2.5"));
    pst_tensor_unref(t);
    pst_tensor *i = pst_tensor_from_i32(pst_shape_1d(2), (int32_t[]){42, -7});
    t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(i)},
               (attr_kv[]){{.name = "width", .kind = 'i', .i = 5},
                           {.name = "fill", .kind = 's', .s = "0"},
                           {0}},
               0);
    assert_strs(t, 2, LIST("00042", "-0007"));
    pst_tensor_unref(t);
    t = run_ok("AsString", 1, (pst_tensor *[]){pst_tensor_ref(i)},
               (attr_kv[]){{.name = "width", .kind = 'i', .i = 4}, {0}}, 0);
    assert_strs(t, 2, LIST("  42", "  -7"));
    pst_tensor_unref(t);
    pst_status bst = {0};
    pst_tensor *bo = pst_tensor_new_zeros(PST_BOOL, pst_shape_1d(2), &bst);
    pst_tensor_u8(bo)[1] = 1;
    t = run_ok("AsString", 1, &bo, NULL, 0);
    assert_strs(t, 2, LIST("false", "true"));
    pst_tensor_unref(t);
    run_fails("AsString", 1, (pst_tensor *[]){pst_tensor_ref(i)},
              (attr_kv[]){{.name = "precision", .kind = 'i', .i = 2}, {0}}, PST_E_INVALID,
              "precision not supported for datatype int32");
    run_fails("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)},
              (attr_kv[]){{.name = "fill", .kind = 's', .s = "ab"}, {0}}, PST_E_INVALID,
              "one or fewer");
    run_fails("AsString", 1, (pst_tensor *[]){pst_tensor_ref(f)},
              (attr_kv[]){{.name = "scientific", .kind = 'b', .i = 1},
                          {.name = "shortest", .kind = 'b', .i = 1},
                          {0}},
              PST_E_INVALID, "Cannot select both");
    pst_tensor_unref(f), pst_tensor_unref(i);
}
END_TEST

static pst_tensor *join(const int32_t *axes, int n_axes, const attr_kv *attrs) {
    pst_tensor *a = strs(pst_shape_2d(2, 2), LIST("a", "b", "c", "d"));
    pst_tensor *ax = pst_tensor_from_i32(pst_shape_1d(n_axes), axes);
    return run_ok("ReduceJoin", 2, (pst_tensor *[]){a, ax}, attrs, 0);
}

START_TEST(test_reduce_join) {
    /* TF's documented examples on [["a", "b"], ["c", "d"]]. */
    pst_tensor *t = join((int32_t[]){0}, 1, NULL);
    assert_strs(t, 2, LIST("ac", "bd"));
    ck_assert_int_eq(t->shape.rank, 1);
    pst_tensor_unref(t);
    t = join((int32_t[]){-1}, 1, NULL);
    assert_strs(t, 2, LIST("ab", "cd"));
    pst_tensor_unref(t);
    t = join((int32_t[]){0, 1}, 2, NULL);
    assert_strs(t, 1, LIST("acbd"));
    ck_assert_int_eq(t->shape.rank, 0);
    pst_tensor_unref(t);
    t = join((int32_t[]){1, 0}, 2, NULL);
    assert_strs(t, 1, LIST("abcd"));
    pst_tensor_unref(t);
    t = join(NULL, 0, NULL);
    assert_strs(t, 4, LIST("a", "b", "c", "d"));
    pst_tensor_unref(t);
    t = join((int32_t[]){1}, 1, (attr_kv[]){{.name = "keep_dims", .kind = 'b', .i = 1}, {0}});
    ck_assert_int_eq(t->shape.rank, 2);
    ck_assert_int_eq(t->shape.dims[0], 2);
    ck_assert_int_eq(t->shape.dims[1], 1);
    assert_strs(t, 2, LIST("ab", "cd"));
    pst_tensor_unref(t);
    t = join((int32_t[]){0}, 1, (attr_kv[]){{.name = "separator", .kind = 's', .s = "."}, {0}});
    assert_strs(t, 2, LIST("a.c", "b.d"));
    pst_tensor_unref(t);
    pst_tensor *a = strs(pst_shape_2d(2, 2), LIST("a", "b", "c", "d"));
    run_fails("ReduceJoin", 2,
              (pst_tensor *[]){a, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){-3})}, NULL,
              PST_E_OUT_OF_RANGE, "Invalid reduction dimension -3");
    a = strs(pst_shape_2d(2, 2), LIST("a", "b", "c", "d"));
    run_fails("ReduceJoin", 2,
              (pst_tensor *[]){a, pst_tensor_from_i32(pst_shape_1d(2), (int32_t[]){1, -1})}, NULL,
              PST_E_INVALID, "Duplicate reduction dimension -1");
}
END_TEST

START_TEST(test_base64) {
    pst_tensor *in = S1("hello", "\xfb\xff", "");
    pst_tensor *t = run_ok("EncodeBase64", 1, &in, NULL, 0);
    assert_strs(t, 3, LIST("aGVsbG8", "-_8", ""));
    pst_tensor_unref(t);
    in = S1("hello", "\xfb\xff");
    t = run_ok("EncodeBase64", 1, &in, (attr_kv[]){{.name = "pad", .kind = 'b', .i = 1}, {0}}, 0);
    assert_strs(t, 2, LIST("aGVsbG8=", "-_8="));
    pst_tensor_unref(t);
    in = S1("aGVsbG8", "aGVsbG8=", "-_8", "");
    t = run_ok("DecodeBase64", 1, &in, NULL, 0);
    assert_strs(t, 4, LIST("hello", "hello", "\xfb\xff", ""));
    pst_tensor_unref(t);
    in = S1("a+b=");
    run_fails("DecodeBase64", 1, &in, NULL, PST_E_INVALID, "invalid character 0x2b");
    in = S1("abcde");
    run_fails("DecodeBase64", 1, &in, NULL, PST_E_INVALID, "invalid base64 length 5");
}
END_TEST

START_TEST(test_regex_full_match) {
    pst_tensor *t = run_ok("RegexFullMatch", 2,
                           (pst_tensor *[]){S1("abc123", "abc", "123", "ab1\n"),
                                            pst_tensor_scalar_str("[a-z]+\\d+")},
                           NULL, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){4}), ((double[]){1, 0, 0, 0}), 0);
    pst_tensor_unref(t);
    /* The whole string must match, whatever alternative POSIX or RE2 would pick first. */
    t = run_ok("RegexFullMatch", 2,
               (pst_tensor *[]){S1("ab", "a", "b c"), pst_tensor_scalar_str("a|ab|\\w\\s\\S")},
               NULL, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){1, 1, 1}), 0);
    pst_tensor_unref(t);
    /* StaticRegexFullMatch: the sharded saver's test, and a general pattern. */
    t = run_ok("StaticRegexFullMatch", 1, (pst_tensor *[]){S1("s3://b/k", "/tmp/s3://x")},
               (attr_kv[]){{.name = "pattern", .kind = 's', .s = "^s3://.*"}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){1, 0}), 0);
    pst_tensor_unref(t);
    t = run_ok("StaticRegexFullMatch", 1, (pst_tensor *[]){S1("x-01", "x-1a")},
               (attr_kv[]){{.name = "pattern", .kind = 's', .s = "[a-z]+-\\d{2}"}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){1, 0}), 0);
    pst_tensor_unref(t);
    run_fails("RegexFullMatch", 2, (pst_tensor *[]){S1("a"), pst_tensor_scalar_str("(?i)a")},
              NULL, PST_E_UNIMPLEMENTED, "'(?i)a'");
    run_fails("RegexFullMatch", 2, (pst_tensor *[]){S1("a"), pst_tensor_scalar_str("a(")}, NULL,
              PST_E_INVALID, "invalid pattern 'a('");
}
END_TEST

/* A 1-D string tensor of n byte strings of the given lengths (NULs allowed). */
static pst_tensor *bytes_vec(int n, const char *const *v, const size_t *len) {
    pst_status st = {0};
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(n), &st);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < n; i++) pst_tstring_set(pst_tensor_str(t) + i, v[i], len[i]);
    return t;
}

START_TEST(test_fingerprint_padded_raw) {
    /* Fingerprint: each row's FarmHash Fingerprint64 as 8 little-endian bytes (expected bytes
     * from an independent FarmHash). */
    pst_tensor *t = run_ok("Fingerprint", 2,
                           (pst_tensor *[]){S1("Hello"), pst_tensor_scalar_str("farmhash64")},
                           NULL, 0);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){1, 8}),
                      ((double[]){135, 32, 107, 50, 30, 124, 200, 213}), 0);
    pst_tensor_unref(t);
    t = run_ok("Fingerprint", 2,
               (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(1, 2), (int32_t[]){1, 2}),
                                pst_tensor_scalar_str("farmhash64")},
               NULL, 0);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){1, 8}), ((double[]){76, 18, 253, 133, 168, 204, 240, 10}),
                      0);
    pst_tensor_unref(t);
    /* A row of two strings: the fingerprint of their fingerprints. */
    t = run_ok("Fingerprint", 2,
               (pst_tensor *[]){strs(pst_shape_2d(1, 2), LIST("a", "bc")),
                                pst_tensor_scalar_str("farmhash64")},
               NULL, 0);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){1, 8}), ((double[]){85, 27, 103, 37, 147, 177, 144, 87}),
                      0);
    pst_tensor_unref(t);
    run_fails("Fingerprint", 2, (pst_tensor *[]){S1("a"), pst_tensor_scalar_str("md5")}, NULL,
              PST_E_INVALID, "Unsupported fingerprint method: md5");
    /* DecodePaddedRaw: short strings padded with zeros, long ones cut, either byte order. */
    pst_tensor *in = bytes_vec(3, (const char *[]){"\x01\x00\x02\x00", "\x03\x00",
                                                  "\x04\x00\x05\x00\x06\x00"},
                               (size_t[]){4, 2, 6});
    t = run_ok("DecodePaddedRaw", 2, (pst_tensor *[]){in, pst_tensor_scalar_i32(4)},
               (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_INT32}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){3, 1}), ((double[]){131073, 3, 327684}), 0);
    pst_tensor_unref(t);
    in = bytes_vec(1, (const char *[]){"\x00\x00\x00\x01"}, (size_t[]){4});
    t = run_ok("DecodePaddedRaw", 2, (pst_tensor *[]){in, pst_tensor_scalar_i32(8)},
               (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_INT32},
                           {.name = "little_endian", .kind = 'b', .i = 0}, {0}}, 0);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){1, 2}), ((double[]){1, 0}), 0);
    pst_tensor_unref(t);
    run_fails("DecodePaddedRaw", 2, (pst_tensor *[]){S1("ab"), pst_tensor_scalar_i32(6)},
              (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_INT32}, {0}}, PST_E_INVALID,
              "must be a multiple of the size of out_type (4)");
}
END_TEST

START_TEST(test_serialize_parse_tensor) {
    /* SerializeTensor writes what TF's AsProtoTensorContent does: dtype, shape, raw content. */
    pst_tensor *t =
        run_ok("SerializeTensor", 1,
               (pst_tensor *[]){pst_tensor_from_f32(pst_shape_1d(2), (float[]){1.5f, -2})},
               (attr_kv[]){{.name = "T", .kind = 't', .i = PST_FLOAT}, {0}}, 0);
    const unsigned char want[] = {0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x02, 0x22, 0x08,
                                  0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    ck_assert_int_eq(pst_tensor_str(t)[0].len, sizeof want);
    ck_assert_int_eq(memcmp(pst_tensor_str(t)[0].p, want, sizeof want), 0);
    /* ParseTensor reads it back. */
    pst_tensor *back =
        run_ok("ParseTensor", 1, &t,
               (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_FLOAT}, {0}}, 0);
    PST_ASSERT_TENSOR(back, 1, ((int64_t[]){2}), ((double[]){1.5, -2}), 0);
    pst_tensor_unref(back);
    /* Strings round-trip (string_val), NUL bytes included. */
    t = run_ok("SerializeTensor", 1,
               (pst_tensor *[]){bytes_vec(2, (const char *[]){"a\0b", ""}, (size_t[]){3, 0})},
               NULL, 0);
    back = run_ok("ParseTensor", 1, &t,
                  (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_STRING}, {0}}, 0);
    ck_assert_int_eq(back->n, 2);
    ck_assert_int_eq(pst_tensor_str(back)[0].len, 3);
    ck_assert_int_eq(memcmp(pst_tensor_str(back)[0].p, "a\0b", 3), 0);
    ck_assert_int_eq(pst_tensor_str(back)[1].len, 0);
    pst_tensor_unref(back);
    /* A proto with typed values: int64 shape [3] holding int64_val [7] (packed) gives 7, 7, 7
     * (TF repeats the last value). */
    const char typed[] = {0x08, 0x09, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03, 0x52, 0x01, 0x07};
    pst_tensor *tp = bytes_vec(1, (const char *[]){typed}, (size_t[]){sizeof typed});
    tp->shape = pst_shape_scalar();
    back = run_ok("ParseTensor", 1, &tp,
                  (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_INT64}, {0}}, 0);
    PST_ASSERT_TENSOR(back, 1, ((int64_t[]){3}), ((double[]){7, 7, 7}), 0);
    pst_tensor_unref(back);
    /* A shape claiming more than 2 GiB is refused before anything is allocated. */
    const char huge[] = {0x08, 0x09, 0x12, 0x08, 0x12, 0x06, 0x08, (char)0x80, (char)0x80,
                         (char)0x80, (char)0x80, 0x10};
    tp = bytes_vec(1, (const char *[]){huge}, (size_t[]){sizeof huge});
    tp->shape = pst_shape_scalar();
    run_fails("ParseTensor", 1, &tp,
              (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_INT64}, {0}}, PST_E_EXHAUSTED,
              "more than 2 GiB");
    /* Another dtype than out_type, and bytes that are no proto, are errors. */
    t = run_ok("SerializeTensor", 1, (pst_tensor *[]){pst_tensor_scalar_i32(5)}, NULL, 0);
    run_fails("ParseTensor", 1, &t,
              (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_FLOAT}, {0}}, PST_E_INVALID,
              "Type mismatch between parsed tensor (int32) and dtype (float)");
    run_fails("ParseTensor", 1, (pst_tensor *[]){pst_tensor_scalar_str("\x0a\x7f")},
              (attr_kv[]){{.name = "out_type", .kind = 't', .i = PST_FLOAT}, {0}}, PST_E_INVALID,
              "could not parse");
}
END_TEST

/* ---- Lookup tables ---------------------------------------------------------------------- */
static pst_node *table_node(pst_graph *g, const char *op, const char *name, pst_dtype k,
                            pst_dtype v, int value_dims) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_attr_type(b, "key_dtype", k);
    pst_nb_attr_type(b, "value_dtype", v);
    if (value_dims) pst_nb_attr_shape(b, "value_shape", pst_shape_1d(value_dims));
    pst_node *n = pst_nb_finish(b);
    ck_assert_msg(n != NULL, "%s", pst_graph_status(g)->msg);
    return n;
}

static pst_node *tnode(pst_graph *g, const char *op, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return x;
}

static void run_target(pst_session *s, pst_node *t) {
    pst_status st = {0};
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, &t, 1, NULL, &st) == 0, "%s", st.msg);
}

static pst_tensor *fetch1(pst_session *s, pst_output o) { return pst_test_run(s, o, 0, NULL); }

START_TEST(test_mutable_tables) {
    pst_graph *g = pst_graph_new();
    pst_output h = pst_out(table_node(g, "MutableHashTableV2", "m", PST_STRING, PST_INT64, 0), 0);
    pst_output abc = pst_test_const(g, S1("a", "b", "c"), NULL);
    pst_output dflt = pst_const_i64(g, -1, NULL);
    pst_node *find = tnode(g, "LookupTableFindV2", 3, (pst_output[]){h, abc, dflt});
    pst_node *ins1 = tnode(g, "LookupTableInsertV2", 3,
                           (pst_output[]){h, pst_test_const(g, S1("a", "b"), NULL),
                                          pst_const_i64_vec(g, 2, (int64_t[]){1, 2}, NULL)});
    pst_node *ins2 = tnode(g, "LookupTableInsertV2", 3,
                           (pst_output[]){h, pst_test_const(g, S1("b"), NULL),
                                          pst_const_i64_vec(g, 1, (int64_t[]){5}, NULL)});
    pst_node *rm = tnode(g, "LookupTableRemoveV2", 2,
                         (pst_output[]){h, pst_test_const(g, S1("a", "zz"), NULL)});
    pst_node *size = tnode(g, "LookupTableSizeV2", 1, &h);
    pst_node *exp = tnode(g, "LookupTableExportV2", 1, &h);
    pst_node *imp = tnode(g, "LookupTableImportV2", 3,
                          (pst_output[]){h, pst_test_const(g, S1("x"), NULL),
                                         pst_const_i64_vec(g, 1, (int64_t[]){9}, NULL)});
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    /* A mutable table needs no initializer: empty, every key gives the default. */
    pst_tensor *t = fetch1(s, pst_out(find, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){-1, -1, -1}), 0);
    pst_tensor_unref(t);
    run_target(s, ins1);
    run_target(s, ins2); /* Insert overwrites b */
    t = fetch1(s, pst_out(find, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){1, 5, -1}), 0);
    pst_tensor_unref(t);
    run_target(s, rm); /* removing a key that is not there is fine */
    t = fetch1(s, pst_out(size, 0));
    ck_assert_int_eq(pst_tensor_i64(t)[0], 1);
    pst_tensor_unref(t);
    t = fetch1(s, pst_out(exp, 0));
    assert_strs(t, 1, LIST("b"));
    pst_tensor_unref(t);
    t = fetch1(s, pst_out(exp, 1));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){1}), ((double[]){5}), 0);
    pst_tensor_unref(t);
    run_target(s, imp); /* Import replaces the contents */
    t = fetch1(s, pst_out(size, 0));
    ck_assert_int_eq(pst_tensor_i64(t)[0], 1);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);

    /* MutableHashTableOfTensors: a value of value_shape per key. */
    g = pst_graph_new();
    h = pst_out(table_node(g, "MutableHashTableOfTensorsV2", "mt", PST_INT64, PST_FLOAT, 2), 0);
    pst_node *ins = tnode(g, "LookupTableInsertV2", 3,
                          (pst_output[]){h, pst_const_i64_vec(g, 2, (int64_t[]){1, 2}, NULL),
                                         pst_const_f32_tensor(g, pst_shape_2d(2, 2),
                                                              (float[]){1, 2, 3, 4}, NULL)});
    find = tnode(g, "LookupTableFindV2", 3,
                 (pst_output[]){h, pst_const_i64_vec(g, 2, (int64_t[]){2, 3}, NULL),
                                pst_const_f32_tensor(g, pst_shape_1d(2), (float[]){0, -1}, NULL)});
    ck_assert_int_eq(find->out_shapes[0].rank, 2);
    pst_node *bad = tnode(g, "LookupTableInsertV2", 3,
                          (pst_output[]){h, pst_const_i64_vec(g, 1, (int64_t[]){7}, NULL),
                                         pst_const_f32_tensor(g, pst_shape_1d(3),
                                                              (float[]){1, 2, 3}, NULL)});
    exp = tnode(g, "LookupTableExportV2", 1, &h);
    s = pst_session_new(g, NULL, &st);
    run_target(s, ins);
    t = fetch1(s, pst_out(find, 0));
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){2, 2}), ((double[]){3, 4, 0, -1}), 0);
    pst_tensor_unref(t);
    t = fetch1(s, pst_out(exp, 1));
    ck_assert_int_eq(t->shape.rank, 2);
    ck_assert_int_eq(t->shape.dims[0], 2);
    pst_tensor_unref(t);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &bad, 1, NULL, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "expected values of shape [1,2]"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);

    /* A HashTable (the V1 name here) cannot be inserted into. */
    g = pst_graph_new();
    h = pst_out(table_node(g, "HashTable", "ht", PST_STRING, PST_INT64, 0), 0);
    ins = tnode(g, "LookupTableInsert", 3,
                (pst_output[]){h, pst_test_const(g, S1("a"), NULL),
                               pst_const_i64_vec(g, 1, (int64_t[]){1}, NULL)});
    s = pst_session_new(g, NULL, &st);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &ins, 1, NULL, &st), PST_E_UNIMPLEMENTED);
    ck_assert_msg(strstr(st.msg, "Insert is not supported by HashTable"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

static pst_output dense_table(pst_graph *g, int64_t buckets) {
    pst_node_builder *b = pst_nb_new(g, "MutableDenseHashTableV2", "dense");
    pst_nb_input(b, pst_const_i64(g, -1, NULL));
    pst_nb_input(b, pst_const_i64(g, -2, NULL));
    pst_nb_attr_type(b, "key_dtype", PST_INT64);
    pst_nb_attr_type(b, "value_dtype", PST_FLOAT);
    pst_nb_attr_shape(b, "value_shape", pst_shape_scalar());
    pst_nb_attr_i(b, "initial_num_buckets", buckets);
    pst_nb_attr_f(b, "max_load_factor", 0.8f);
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s", pst_graph_status(g)->msg);
    return o;
}

static pst_node *kv_op(pst_graph *g, const char *op, pst_output h, int n, const int64_t *k,
                       const float *v) {
    pst_output in[3] = {h, pst_const_i64_vec(g, n, k, NULL),
                        v ? pst_const_f32_tensor(g, pst_shape_1d(n), v, NULL) : h};
    return tnode(g, op, v ? 3 : 2, in);
}

START_TEST(test_dense_hash_table) {
    pst_graph *g = pst_graph_new();
    pst_output h = dense_table(g, 4);
    pst_node *ins =
        kv_op(g, "LookupTableInsertV2", h, 3, (int64_t[]){1, 2, 3}, (float[]){10, 20, 30});
    pst_node *ins4 = kv_op(g, "LookupTableInsertV2", h, 1, (int64_t[]){4}, (float[]){40});
    pst_node *bad = kv_op(g, "LookupTableInsertV2", h, 1, (int64_t[]){-1}, (float[]){1});
    pst_node *rm = kv_op(g, "LookupTableRemoveV2", h, 1, (int64_t[]){2}, NULL);
    pst_node *imp = kv_op(g, "LookupTableImportV2", h, 4, (int64_t[]){-1, 7, -1, 8},
                          (float[]){0, 70, 0, 80});
    pst_node *find = tnode(g, "LookupTableFindV2", 3,
                           (pst_output[]){h, pst_const_i64_vec(g, 3, (int64_t[]){2, 5, 7}, NULL),
                                          pst_const_f32(g, -1, NULL)});
    pst_node *find_del = tnode(g, "LookupTableFindV2", 3,
                               (pst_output[]){h, pst_const_i64_vec(g, 1, (int64_t[]){-2}, NULL),
                                              pst_const_f32(g, -1, NULL)});
    pst_node *size = tnode(g, "LookupTableSizeV2", 1, &h);
    pst_node *exp = tnode(g, "LookupTableExportV2", 1, &h);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    run_target(s, ins);
    pst_tensor *t = fetch1(s, pst_out(find, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){20, -1, -1}), 0);
    pst_tensor_unref(t);
    /* Export: num_buckets rows (4: 3 entries fit under 0.8), free buckets hold empty_key. */
    t = fetch1(s, pst_out(exp, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){4}), ((double[]){1, 2, 3, -1}), 0);
    pst_tensor_unref(t);
    run_target(s, ins4); /* a 4th entry passes 0.8 * 4: the table doubles */
    t = fetch1(s, pst_out(exp, 1));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){8}), ((double[]){10, 20, 30, 40, 0, 0, 0, 0}), 0);
    pst_tensor_unref(t);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &bad, 1, NULL, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "Using the empty_key as a table key is not allowed"), "%s",
                  st.msg);
    pst_output fd = pst_out(find_del, 0);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &fd, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "deleted_key"), "%s", st.msg);
    run_target(s, rm);
    t = fetch1(s, pst_out(size, 0));
    ck_assert_int_eq(pst_tensor_i64(t)[0], 3);
    pst_tensor_unref(t);
    /* Import (TF's checkpoint restore) takes the bucket arrays, skipping free buckets. */
    run_target(s, imp);
    t = fetch1(s, pst_out(find, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){-1, -1, 70}), 0);
    pst_tensor_unref(t);
    t = fetch1(s, pst_out(exp, 0));
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){4}), ((double[]){7, 8, -1, -1}), 0);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
    /* The bucket count must be a power of 2, at least 4. */
    g = pst_graph_new();
    h = dense_table(g, 6);
    size = tnode(g, "LookupTableSizeV2", 1, &h);
    s = pst_session_new(g, NULL, &st);
    pst_output so = pst_out(size, 0);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &so, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "at least 4 and a power of 2, got: 6"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

static char tmpdir[] = "/tmp/pst_strings_XXXXXX";

static void write_text(const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A HashTable filled from a text file; returns Find(keys)'s result or NULL with st set. */
static pst_tensor *text_table(const char *path, pst_dtype kd, pst_dtype vd, int64_t ki,
                              int64_t vi, int64_t vocab, pst_tensor *keys, pst_tensor *dflt,
                              pst_status *st) {
    pst_graph *g = pst_graph_new();
    pst_output h = pst_out(table_node(g, "HashTableV2", "vocab", kd, vd, 0), 0);
    pst_node_builder *b = pst_nb_new(g, "InitializeTableFromTextFileV2", "init");
    pst_nb_input(b, h);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(path), NULL));
    pst_nb_attr_i(b, "key_index", ki);
    pst_nb_attr_i(b, "value_index", vi);
    pst_nb_attr_i(b, "vocab_size", vocab);
    pst_nb_attr_s(b, "delimiter", "\t");
    pst_node *init = pst_nb_finish(b);
    ck_assert_ptr_nonnull(init);
    pst_node *find = tnode(g, "LookupTableFindV2", 3,
                           (pst_output[]){h, pst_test_const(g, keys, NULL),
                                          pst_test_const(g, dflt, NULL)});
    pst_session *s = pst_session_new(g, NULL, st);
    ck_assert_ptr_nonnull(s);
    pst_tensor *out = NULL;
    pst_output fo = pst_out(find, 0);
    if (pst_session_run(s, NULL, 0, NULL, 0, &init, 1, NULL, st) == 0)
        pst_session_run(s, NULL, 0, &fo, 1, NULL, 0, &out, st);
    pst_session_free(s);
    pst_graph_free(g);
    return out;
}

START_TEST(test_table_from_text_file) {
    char path[512], vocab[512], bad[512];
    write_text("fruit.tsv", "apple\t3\nbanana\t5\r\ncherry\t7", path, sizeof path);
    pst_status st = {0};
    pst_tensor *t = text_table(path, PST_STRING, PST_INT64, 0, 1, -1,
                               S1("banana", "cherry", "kiwi"), pst_tensor_scalar_i64(-1), &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){3}), ((double[]){5, 7, -1}), 0);
    pst_tensor_unref(t);
    /* index_table_from_file: the whole line (-2) to its line number (-1); vocab_size keeps
     * the first lines only. */
    write_text("vocab.txt", "a\nb b\nc\n", vocab, sizeof vocab);
    t = text_table(vocab, PST_STRING, PST_INT64, -2, -1, -1, S1("b b", "c", "a", "z"),
                   pst_tensor_scalar_i64(-1), &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){4}), ((double[]){1, 2, 0, -1}), 0);
    pst_tensor_unref(t);
    t = text_table(vocab, PST_STRING, PST_INT64, -2, -1, 2, S1("b b", "c"),
                   pst_tensor_scalar_i64(-1), &st);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){1, -1}), 0);
    pst_tensor_unref(t);
    /* The reverse: line number to word. */
    t = text_table(vocab, PST_INT64, PST_STRING, -1, -2, -1,
                   pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 9}),
                   pst_tensor_scalar_str("UNK"), &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    assert_strs(t, 2, LIST("c", "UNK"));
    pst_tensor_unref(t);
    /* Errors name the file (and the line). */
    st = (pst_status){0};
    t = text_table(vocab, PST_STRING, PST_INT64, -2, -1, 5, S1("a"), pst_tensor_scalar_i64(0), &st);
    ck_assert_ptr_null(t);
    ck_assert_msg(st.code == PST_E_INVALID && strstr(st.msg, "Invalid vocab_size in") &&
                  strstr(st.msg, "vocab.txt: expected 5 but got 3"), "%s", st.msg);
    write_text("bad.tsv", "apple\t3\nbanana\tfive\n", bad, sizeof bad);
    st = (pst_status){0};
    t = text_table(bad, PST_STRING, PST_INT64, 0, 1, -1, S1("a"), pst_tensor_scalar_i64(0), &st);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(st.msg, "bad.tsv line 1: field 'five' is not a valid int64"), "%s",
                  st.msg);
    st = (pst_status){0};
    t = text_table(bad, PST_STRING, PST_INT64, 0, 2, -1, S1("a"), pst_tensor_scalar_i64(0), &st);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(st.msg, "bad.tsv line 0 has 2 column(s)"), "%s", st.msg);
    st = (pst_status){0};
    t = text_table("/nonexistent/pst_vocab.txt", PST_STRING, PST_INT64, -2, -1, -1, S1("a"),
                   pst_tensor_scalar_i64(0), &st);
    ck_assert_ptr_null(t);
    ck_assert_msg(st.code != 0 && strstr(st.msg, "/nonexistent/pst_vocab.txt"), "%s", st.msg);
}
END_TEST

/* ---- ReadFile / WriteFile ------------------------------------------------------------------ */
static int file_op(const pst_session_opts *so, const char *op, const char *path,
                   const char *data, size_t len, pst_tensor **out, pst_status *st) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, op, "f");
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(path), NULL));
    if (data) {
        pst_tensor *c = pst_tensor_scalar_str("");
        pst_tstring_set(pst_tensor_str(c), data, len);
        pst_nb_input(b, pst_test_const(g, c, NULL));
    }
    pst_node *n = pst_nb_finish(b);
    ck_assert_ptr_nonnull(n);
    pst_session *s = pst_session_new(g, so, st);
    ck_assert_ptr_nonnull(s);
    pst_output o = pst_out(n, 0);
    int rc = data ? pst_session_run(s, NULL, 0, NULL, 0, &n, 1, NULL, st)
                  : pst_session_run(s, NULL, 0, &o, 1, NULL, 0, out, st);
    pst_session_free(s);
    pst_graph_free(g);
    return rc;
}

START_TEST(test_read_write_file) {
    char path[512], other[512];
    snprintf(path, sizeof path, "%s/new/dir/blob.bin", tmpdir);
    const char data[] = "ab\0cd\xff";
    pst_status st = {0};
    /* WriteFile creates the directories, as TF; ReadFile gives the bytes back, NULs too. */
    ck_assert_msg(file_op(NULL, "WriteFile", path, data, 6, NULL, &st) == 0, "%s", st.msg);
    pst_tensor *t = NULL;
    ck_assert_msg(file_op(NULL, "ReadFile", path, NULL, 0, &t, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(pst_tensor_str(t)[0].len, 6);
    ck_assert_int_eq(memcmp(pst_tensor_str(t)[0].p, data, 6), 0);
    pst_tensor_unref(t);
    snprintf(other, sizeof other, "%s/missing.bin", tmpdir);
    st = (pst_status){0};
    ck_assert_int_ne(file_op(NULL, "ReadFile", other, NULL, 0, &t, &st), 0);
    ck_assert_msg(strstr(st.msg, "missing.bin"), "%s", st.msg);
    /* Run for a remote peer with a root: only files inside it. */
    pst_session_opts so = {.files_confined = 1, .file_root = tmpdir};
    st = (pst_status){0};
    ck_assert_msg(file_op(&so, "ReadFile", path, NULL, 0, &t, &st) == 0, "%s", st.msg);
    pst_tensor_unref(t);
    st = (pst_status){0};
    ck_assert_int_eq(file_op(&so, "ReadFile", "/etc/hostname", NULL, 0, &t, &st),
                     PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "/etc/hostname") && strstr(st.msg, "--checkpoint-dir"), "%s",
                  st.msg);
    snprintf(other, sizeof other, "%s/../escape.bin", tmpdir);
    st = (pst_status){0};
    ck_assert_int_eq(file_op(&so, "WriteFile", other, "x", 1, NULL, &st), PST_E_PERMISSION);
    /* Without a root: reads anywhere, writes only into directories that exist. */
    pst_session_opts so2 = {.files_confined = 1};
    snprintf(other, sizeof other, "%s/not/yet/x.bin", tmpdir);
    st = (pst_status){0};
    ck_assert_int_eq(file_op(&so2, "WriteFile", other, "x", 1, NULL, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "does not exist"), "%s", st.msg);
    snprintf(other, sizeof other, "%s/x.bin", tmpdir);
    st = (pst_status){0};
    ck_assert_msg(file_op(&so2, "WriteFile", other, "x", 1, NULL, &st) == 0, "%s", st.msg);
    /* A filename that is not a scalar is refused. */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "ReadFile", "r");
    pst_nb_input(b, pst_test_const(g, S1("a", "b"), NULL));
    pst_node *n = pst_nb_finish(b);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output o = pst_out(n, 0);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &o, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "filename must be a string scalar"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    pst_io_ops_init(); /* SerializeTensor and ParseTensor live in the io layer */
    if (mkdtemp(tmpdir) == NULL) return 1;
    Suite *s = suite_create("ops_tf_strings");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hash_buckets);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_length_substr_strip_case);
    tcase_add_test(tc, test_as_string);
    tcase_add_test(tc, test_reduce_join);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_regex_full_match);
    tcase_add_test(tc, test_fingerprint_padded_raw);
    tcase_add_test(tc, test_serialize_parse_tensor);
    tcase_add_test(tc, test_mutable_tables);
    tcase_add_test(tc, test_dense_hash_table);
    tcase_add_test(tc, test_table_from_text_file);
    tcase_add_test(tc, test_read_write_file);
    suite_add_tcase(s, tc);
    int rc = pst_test_main(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
