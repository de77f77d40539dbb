/* Saver: round trips, max_to_keep and recovery, partial and renamed restore, error reports,
 * corruption fallback, killed saves, the ckpt CLI, and training on from an imported meta graph. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "metagraph.h"
#include "optimizer.h"
#include "saver.h"
#include "testutil.h"
#include "replica_setter.h"
#include "partitioned_var.h"
#include "file.h"

static char dir[256];
static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/pst_saver_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

typedef struct small {
    pst_graph *g;
    pst_output w, b, step;
    pst_node *train;
    pst_session *s;
} small;

/* A little model: loss = sum((w * x + b)^2) with Adam, so there are slots too. */
static small build_small(float w0) {
    small m = {.g = pst_graph_new()};
    float wv[6] = {w0, 2, 3, 4, 5, 6};
    m.w = pst_variable(m.g, "dense/kernel", pst_const_f32_tensor(m.g, pst_shape_2d(2, 3), wv, NULL), 1);
    m.b = pst_variable(m.g, "dense/bias", pst_const_f32(m.g, 0.5f, NULL), 1);
    pst_output y = pst_add(m.g, pst_mul(m.g, pst_variable_value(m.w), pst_const_f32(m.g, 0.1f, NULL), NULL),
                           pst_variable_value(m.b), NULL);
    pst_output loss = pst_reduce_sum(m.g, pst_square(m.g, y, NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_ADAM, 0.01f);
    m.step = pst_train_global_step(m.g);
    m.train = pst_optimizer_minimize(m.g, &o, loss, 0, NULL, m.step, "train");
    pst_graph_add_to_collection(m.g, PST_TRAIN_OP, pst_out(m.train, 0));
    ck_assert_msg(pst_graph_error(m.g) == 0, "%s", pst_graph_status(m.g)->msg);
    pst_status st = {0};
    m.s = pst_session_new(m.g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(m.s, pst_global_variables_initializer(m.g), &st), 0);
    return m;
}

static void free_small(small *m) {
    pst_session_free(m->s);
    pst_graph_free(m->g);
}

static pst_tensor *value(small *m, pst_output v) {
    pst_status st = {0};
    pst_tensor *t = pst_session_run1(m->s, pst_variable_value(v), &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    return t;
}

START_TEST(test_save_restore_round_trip) {
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    for (int i = 0; i < 3; i++) ck_assert_int_eq(pst_session_run_target(a.s, a.train, &st), 0);
    pst_saver *sv = pst_saver_new(a.g, NULL, &st);
    char path[512], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_msg(pst_saver_save(sv, a.s, path, 3, prefix, sizeof prefix, &st) == 0, "%s", st.msg);
    char meta[4200];
    snprintf(meta, sizeof meta, "%s.meta", prefix);
    ck_assert_int_eq(access(meta, F_OK), 0);
    small b = build_small(9);
    pst_saver *sv2 = pst_saver_new(b.g, NULL, &st);
    ck_assert_msg(pst_saver_restore(sv2, b.s, prefix, &st) == 0, "%s", st.msg);
    pst_tensor *x = value(&a, a.w), *y = value(&b, b.w);
    ck_assert(memcmp(x->data, y->data, x->nbytes) == 0);
    pst_tensor *gs = value(&b, b.step);
    ck_assert_int_eq(pst_tensor_i64(gs)[0], 3);
    /* Adam's slots came back too: one more step gives the same result on both. */
    ck_assert_int_eq(pst_session_run_target(a.s, a.train, &st), 0);
    ck_assert_int_eq(pst_session_run_target(b.s, b.train, &st), 0);
    pst_tensor *x2 = value(&a, a.w), *y2 = value(&b, b.w);
    ck_assert(memcmp(x2->data, y2->data, x2->nbytes) == 0);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    pst_tensor_unref(x2);
    pst_tensor_unref(y2);
    pst_tensor_unref(gs);
    pst_saver_free(sv);
    pst_saver_free(sv2);
    free_small(&a);
    free_small(&b);
}
END_TEST

/* A save into a directory that does not exist yet creates it (and its parents); a directory
 * that cannot be created is named. */
START_TEST(test_save_creates_missing_directories) {
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(a.g, NULL, &st);
    char path[512], prefix[4096];
    snprintf(path, sizeof path, "%s/run1/nested/model.ckpt", dir);
    ck_assert_msg(pst_saver_save(sv, a.s, path, 1, prefix, sizeof prefix, &st) == 0, "%s", st.msg);
    char idx[4200];
    snprintf(idx, sizeof idx, "%s.index", prefix);
    ck_assert_int_eq(access(idx, F_OK), 0);
    /* A file where a directory should be. */
    char file[512];
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/plain/sub/model.ckpt", dir);
    ck_assert_int_lt(pst_saver_save(sv, a.s, path, 2, prefix, sizeof prefix, &st), 0);
    ck_assert_msg(strstr(st.msg, file) != NULL && strstr(st.msg, "cannot create directory"),
                  "%s", st.msg);
    pst_status_clear(&st);
    ck_assert_int_lt(pst_file_make_dirs(file, &st), 0);
    ck_assert_ptr_nonnull(strstr(st.msg, file));
    pst_saver_free(sv);
    free_small(&a);
}
END_TEST

START_TEST(test_max_to_keep_and_recovery_after_restart) {
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_saver_opts o = {.max_to_keep = 2, .write_meta = 0};
    pst_saver *sv = pst_saver_new(a.g, &o, &st);
    char path[512], p[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    for (int step = 1; step <= 3; step++) ck_assert_int_eq(pst_saver_save(sv, a.s, path, step, p, sizeof p, &st), 0);
    char f1[600];
    snprintf(f1, sizeof f1, "%s-1.index", path);
    ck_assert_int_ne(access(f1, F_OK), 0); /* deleted */
    char **list;
    ck_assert_int_eq(pst_checkpoint_list(dir, &list, &st), 2);
    ck_assert_ptr_nonnull(strstr(list[0], "model.ckpt-2"));
    ck_assert_ptr_nonnull(strstr(list[1], "model.ckpt-3"));
    for (int i = 0; i < 2; i++) free(list[i]);
    free(list);
    pst_saver_free(sv);
    /* A new saver (a restarted process) picks up the list and keeps deleting the oldest. */
    sv = pst_saver_new(a.g, &o, &st);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 4, p, sizeof p, &st), 0);
    snprintf(f1, sizeof f1, "%s-2.index", path);
    ck_assert_int_ne(access(f1, F_OK), 0);
    char latest[4096];
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, NULL, 0, &st), 0);
    ck_assert_ptr_nonnull(strstr(latest, "model.ckpt-4"));
    pst_saver_free(sv);
    free_small(&a);
}
END_TEST

START_TEST(test_partial_and_renamed_restore) {
    mkdir_tmp();
    small a = build_small(7);
    pst_status st = {0};
    /* Save only the kernel, under another name. */
    const char *names[] = {"vgg16/dense/kernel"};
    pst_saver_opts o = {.n_vars = 1, .vars = &a.w, .names = names, .write_meta = 0};
    pst_saver *sv = pst_saver_new(a.g, &o, &st);
    char path[512], p[4096];
    snprintf(path, sizeof path, "%s/renamed", dir);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, -1, p, sizeof p, &st), 0);
    small b = build_small(0);
    pst_saver *sv2 = pst_saver_new(b.g, &o, &st);
    o.vars = &b.w;
    pst_saver_free(sv2);
    sv2 = pst_saver_new(b.g, &o, &st);
    ck_assert_msg(pst_saver_restore(sv2, b.s, p, &st) == 0, "%s", st.msg);
    pst_tensor *k = value(&b, b.w), *bias = value(&b, b.b);
    ck_assert_float_eq(pst_tensor_f32(k)[0], 7.0f);
    ck_assert_float_eq(pst_tensor_f32(bias)[0], 0.5f); /* untouched */
    pst_tensor_unref(k);
    pst_tensor_unref(bias);
    /* Restoring everything from it names every missing variable. */
    pst_saver *all = pst_saver_new(b.g, NULL, &st);
    ck_assert_int_eq(pst_saver_restore(all, b.s, p, &st), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "dense/kernel (missing)"));
    ck_assert_ptr_nonnull(strstr(st.msg, "dense/bias (missing)"));
    ck_assert_ptr_nonnull(strstr(st.msg, "global_step (missing)"));
    pst_saver_free(all);
    pst_saver_free(sv);
    pst_saver_free(sv2);
    free_small(&a);
    free_small(&b);
}
END_TEST

START_TEST(test_shape_mismatch_reported) {
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(a.g, &(pst_saver_opts){.write_meta = 0}, &st);
    char path[512], p[4096];
    snprintf(path, sizeof path, "%s/m", dir);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 1, p, sizeof p, &st), 0);
    pst_graph *g = pst_graph_new();
    pst_output w = pst_variable(g, "dense/kernel", pst_const_f32_tensor(g, pst_shape_2d(3, 2), (float[]){1, 2, 3, 4, 5, 6}, NULL), 1);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_saver *sv2 = pst_saver_new(g, &(pst_saver_opts){.n_vars = 1, .vars = &w}, &st);
    ck_assert_int_eq(pst_saver_restore(sv2, s, p, &st), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "dense/kernel (checkpoint float [2,3], variable float [3,2])"));
    pst_saver_free(sv);
    pst_saver_free(sv2);
    pst_session_free(s);
    pst_graph_free(g);
    free_small(&a);
}
END_TEST

static void corrupt(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
}

START_TEST(test_corrupt_newest_falls_back) {
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(a.g, &(pst_saver_opts){.write_meta = 0}, &st);
    char path[512], p[4096], f[4200];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 10, p, sizeof p, &st), 0);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 20, p, sizeof p, &st), 0);
    const char *files[3] = {".data-00000-of-00001", ".index", ""};
    for (int k = 0; k < 2; k++) {
        /* corrupt, then restore a good copy by saving again */
        snprintf(f, sizeof f, "%s-20%s", path, files[k]);
        if (k == 0) corrupt(f, 3);
        else ck_assert_int_eq(truncate(f, 40), 0);
        char latest[4096], warn[2048];
        ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
        ck_assert_ptr_nonnull(strstr(latest, "model.ckpt-10"));
        ck_assert_ptr_nonnull(strstr(warn, "model.ckpt-20"));
        ck_assert_ptr_nonnull(strstr(warn, files[k]));
        ck_assert_int_eq(pst_saver_save(sv, a.s, path, 20, p, sizeof p, &st), 0);
    }
    /* An unparsable state file: the newest intact checkpoint in the directory, with a warning
     * saying why; starting fresh when the caller asks for it. */
    snprintf(f, sizeof f, "%s/checkpoint", dir);
    FILE *sf = fopen(f, "w");
    fputs("this is not a state file\n", sf);
    fclose(sf);
    char latest[4096], warn[2048];
    pst_status_clear(&st);
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_ptr_nonnull(strstr(latest, "model.ckpt-20"));
    ck_assert_msg(strstr(warn, "checkpoint: line 1") && strstr(warn, dir), "%s", warn);
    ck_assert_int_eq(pst_latest_checkpoint(dir, 1, latest, sizeof latest, warn, sizeof warn, &st), 1);
    pst_saver_free(sv);
    free_small(&a);
}
END_TEST

START_TEST(test_killed_saves_leave_a_restorable_checkpoint) {
    mkdir_tmp();
    srand(12345);
    char path[512];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    for (int round = 0; round < 50; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child saves a model with a larger tensor over and over. */
            pst_graph *g = pst_graph_new();
            pst_tensor *big = pst_tensor_new_zeros(PST_FLOAT, pst_shape_1d(1 << 18), NULL);
            pst_variable(g, "big", pst_const(g, big, NULL), 1);
            pst_status st = {0};
            pst_session *s = pst_session_new(g, NULL, &st);
            pst_session_run_target(s, pst_global_variables_initializer(g), &st);
            pst_saver *sv = pst_saver_new(g, &(pst_saver_opts){.max_to_keep = 3, .write_meta = 1}, &st);
            for (int step = round * 1000;; step++) pst_saver_save(sv, s, path, step, NULL, 0, &st);
        }
        usleep((useconds_t)(rand() % 40000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char latest[4096], warn[2048];
        pst_status st = {0};
        int rc = pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st);
        ck_assert_msg(rc >= 0, "round %d: %s", round, st.msg);
        if (rc == 0) {
            /* The state file may not exist yet (killed before its first write): then the
             * directory's newest is restored, with a warning. A listed one is never bad. */
            ck_assert_msg(strstr(warn, "unusable") == NULL,
                          "round %d: the newest listed checkpoint was bad: %s", round, warn);
            pst_bundle_reader *r = pst_bundle_reader_open(latest, &st);
            ck_assert_msg(r && pst_bundle_verify(r, &st) == 0, "round %d: %s", round, st.msg);
            pst_bundle_reader_free(r);
        }
    }
}
END_TEST

START_TEST(test_ckpt_cli) {
    const char *bin = getenv("PST_BINARY_DIR"), *src = getenv("PST_SOURCE_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain ckpt show %s/tests/data/tf/serving_half_plus_two_cpu/variables/variables --values",
             bin ? bin : "build", src ? src : ".");
    FILE *p = popen(cmd, "r");
    char out[8192] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    const char *expect[][2] = {{"  a ", "values: 0.5"}, {"  a2 ", "values: 0.5"}, {"  b ", "values: 2"},
                               {"  c ", "values: 3"},   {"  c2 ", "values: 3"}};
    for (int i = 0; i < 5; i++) {
        char *line = strstr(out, expect[i][0]);
        ck_assert_msg(line != NULL, "no %s in:\n%s", expect[i][0], out);
        ck_assert_msg(strncmp(strstr(line, "values:"), expect[i][1], strlen(expect[i][1])) == 0, "%s", line);
    }
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(a.g, NULL, &st);
    char path[512], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    pst_saver_save(sv, a.s, path, 5, prefix, sizeof prefix, &st);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain ckpt verify %s >/dev/null 2>&1", bin ? bin : "build", prefix);
    ck_assert_int_eq(system(cmd), 0);
    char data[4200];
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    corrupt(data, 5);
    ck_assert_int_ne(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain ckpt ls %s", bin ? bin : "build", dir);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    ck_assert_ptr_nonnull(strstr(out, "step 5"));
    pst_saver_free(sv);
    free_small(&a);
}
END_TEST

START_TEST(test_train_on_from_imported_meta_graph) {
    /* (1) export a trained model's meta graph and checkpoint; (2) import into an empty graph,
     * restore and keep training through the train_op collection, without the model code. */
    mkdir_tmp();
    small a = build_small(1);
    pst_status st = {0};
    pst_graph_add_to_collection(a.g, "hparams", pst_const_f32(a.g, 0.01f, "learning_rate"));
    pst_session_run_target(a.s, a.train, &st);
    pst_saver *sv = pst_saver_new(a.g, NULL, &st);
    char path[512], prefix[4096], meta[4200];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 1, prefix, sizeof prefix, &st), 0);
    snprintf(meta, sizeof meta, "%s.meta", prefix);
    pst_graph *g = pst_graph_new();
    ck_assert_msg(pst_meta_graph_read(g, meta, NULL, &st) == 0, "%s", st.msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_saver *sv2 = pst_saver_new(g, NULL, &st);
    ck_assert_msg(pst_saver_restore(sv2, s, prefix, &st) == 0, "%s", st.msg);
    int n;
    const pst_output *train = pst_graph_collection(g, PST_TRAIN_OP, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(pst_session_run_target(s, train[0].node, &st), 0);
    ck_assert_int_eq(pst_session_run_target(a.s, a.train, &st), 0);
    pst_tensor *x = value(&a, a.w), *y = pst_session_run1(s, pst_graph_output_by_name(g, "dense/kernel/read"), &st);
    ck_assert(memcmp(x->data, y->data, x->nbytes) == 0);
    /* (3) hyperparameters come back from the hparams collection. */
    const pst_output *hp = pst_graph_collection(g, "hparams", &n);
    ck_assert_int_eq(n, 1);
    pst_tensor *lr = pst_session_run1(s, hp[0], &st);
    ck_assert_float_eq_tol(pst_tensor_f32(lr)[0], 0.01f, 1e-7);
    pst_tensor_unref(lr);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    pst_saver_free(sv);
    pst_saver_free(sv2);
    pst_session_free(s);
    pst_graph_free(g);
    free_small(&a);
}
END_TEST

/* A [10, 4] variable partitioned into `parts` (or a plain variable when parts is 0). */
static pst_graph *partitioned(int parts, pst_output *value) {
    pst_graph *g = pst_graph_new();
    pst_initializer init = pst_init_random_uniform(-1, 1, 3);
    if (parts > 0) {
        pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 4), parts, &init, 1);
        ck_assert_msg(pv != NULL, "%s", pst_graph_status(g)->msg);
        *value = pv->value;
        pst_partitioned_var_free(pv);
    } else {
        pst_variable_opts o = {.name = "emb", .dtype = PST_FLOAT, .shape = pst_shape_2d(10, 4),
                               .init_fn = pst_init_fn_of, .init_ctx = &init, .trainable = 1};
        *value = pst_variable_value(pst_variable_ex(g, &o));
    }
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    return g;
}

START_TEST(test_partitioned_variable_restores_onto_other_partitionings) {
    mkdir_tmp();
    pst_output v;
    pst_graph *g = partitioned(3, &v);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    pst_tensor *orig = pst_session_run1(s, v, &st);
    ck_assert_msg(orig != NULL, "%s", st.msg);
    pst_saver *sv = pst_saver_new(g, &(pst_saver_opts){.write_meta = 0}, &st);
    char path[512], prefix[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_msg(pst_saver_save(sv, s, path, 1, prefix, sizeof prefix, &st) == 0, "%s", st.msg);
    /* The checkpoint holds one full-name entry with three slices. */
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    const pst_bundle_entry *e = pst_bundle_reader_find(r, "emb");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->n_slices, 3);
    pst_bundle_reader_free(r);
    int layouts[3] = {1, 3, 0};
    for (int k = 0; k < 3; k++) {
        pst_output v2;
        pst_graph *g2 = partitioned(layouts[k], &v2);
        pst_session *s2 = pst_session_new(g2, NULL, &st);
        pst_saver *sv2 = pst_saver_new(g2, &(pst_saver_opts){.write_meta = 0}, &st);
        ck_assert_msg(pst_saver_restore(sv2, s2, prefix, &st) == 0, "%d parts: %s", layouts[k], st.msg);
        pst_tensor *got = pst_session_run1(s2, v2, &st);
        ck_assert_msg(got != NULL, "%s", st.msg);
        ck_assert(memcmp(got->data, orig->data, orig->nbytes) == 0);
        pst_tensor_unref(got);
        pst_saver_free(sv2);
        pst_session_free(s2);
        pst_graph_free(g2);
    }
    pst_tensor_unref(orig);
    pst_saver_free(sv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_sharded_save_one_shard_per_ps) {
    mkdir_tmp();
    pst_graph *g = pst_graph_new();
    pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, NULL);
    pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 5);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(9, 3), 2, &init, 1);
    pst_output b = pst_variable(g, "bias", pst_const_f32(g, 4, NULL), 1);
    pst_output value = pv->value;
    pst_partitioned_var_free(pv);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    ck_assert_str_eq(pst_graph_find(g, "emb/part_0")->device, "/job:ps/task:0");
    ck_assert_str_eq(pst_graph_find(g, "emb/part_1")->device, "/job:ps/task:1");
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    pst_tensor *orig = pst_session_run1(s, value, &st);
    pst_saver *sv = pst_saver_new(g, &(pst_saver_opts){.sharded = 1, .write_meta = 0}, &st);
    char path[512], prefix[4096], f[4300];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_msg(pst_saver_save(sv, s, path, 2, prefix, sizeof prefix, &st) == 0, "%s", st.msg);
    for (int k = 0; k < 2; k++) {
        snprintf(f, sizeof f, "%s.data-%05d-of-00002", prefix, k);
        ck_assert_msg(access(f, F_OK) == 0, "missing %s", f);
    }
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_shards(r), 2);
    ck_assert_int_eq(pst_bundle_reader_find(r, "emb")->n_slices, 2);
    ck_assert_int_eq(pst_bundle_verify(r, &st), 0);
    pst_bundle_reader_free(r);
    /* Restore onto one unpartitioned, unplaced copy. */
    pst_graph *g2 = pst_graph_new();
    pst_variable_opts vo = {.name = "emb", .dtype = PST_FLOAT, .shape = pst_shape_2d(9, 3),
                            .init_fn = pst_init_fn_of, .init_ctx = &init, .trainable = 1};
    pst_variable_ex(g2, &vo);
    pst_variable(g2, "bias", pst_const_f32(g2, 0, NULL), 1);
    pst_session *s2 = pst_session_new(g2, NULL, &st);
    pst_saver *sv2 = pst_saver_new(g2, NULL, &st);
    ck_assert_msg(pst_saver_restore(sv2, s2, prefix, &st) == 0, "%s", st.msg);
    pst_tensor *got = pst_session_run1(s2, pst_graph_output_by_name(g2, "emb/read"), &st);
    ck_assert_msg(got != NULL, "%s", st.msg);
    ck_assert_int_eq(got->shape.dims[0], 9);
    ck_assert(memcmp(got->data, orig->data, orig->nbytes) == 0);
    (void)b;
    pst_tensor_unref(got);
    pst_tensor_unref(orig);
    pst_saver_free(sv);
    pst_saver_free(sv2);
    pst_session_free(s);
    pst_session_free(s2);
    pst_graph_free(g);
    pst_graph_free(g2);
    pst_replica_setter_free(rs);
}
END_TEST

START_TEST(test_train_imported_inference_graph) {
    /* (2) an inference graph comes in as a meta graph; a loss and a train op are added to it. */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 2));
    pst_output w = pst_variable(g, "w", pst_const_f32_tensor(g, pst_shape_2d(2, 1), (float[]){0, 0}, NULL), 1);
    pst_output y = pst_matmul(g, x, pst_variable_value(w), 0, 0, "prediction");
    (void)y;
    pst_status st = {0};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(pst_meta_graph_export(g, NULL, &buf, &len, &st), 0);
    pst_graph_free(g);
    pst_graph *h = pst_graph_new();
    ck_assert_int_eq(pst_meta_graph_import(h, buf, len, NULL, &st), 0);
    free(buf);
    pst_output hx = pst_graph_output_by_name(h, "x"), hy = pst_graph_output_by_name(h, "prediction");
    pst_output target = pst_placeholder(h, "target", PST_FLOAT, pst_shape_2d(-1, 1));
    pst_output loss = pst_reduce_mean(h, pst_square(h, pst_sub(h, hy, target, NULL), NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_SGD, 0.1f);
    pst_node *train = pst_optimizer_minimize(h, &o, loss, 0, NULL, pst_out(NULL, 0), NULL);
    ck_assert_msg(train != NULL, "%s", pst_graph_status(h)->msg);
    pst_session *s = pst_session_new(h, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, pst_global_variables_initializer(h), &st), 0);
    /* target = 2*x0 - x1 */
    pst_tensor *xv = pst_tensor_from_f32(pst_shape_2d(4, 2), (float[]){1, 0, 0, 1, 1, 1, 2, 1});
    pst_tensor *tv = pst_tensor_from_f32(pst_shape_2d(4, 1), (float[]){2, -1, 1, 3});
    pst_feed f[2] = {{hx, xv}, {target, tv}};
    for (int i = 0; i < 300; i++) ck_assert_int_eq(pst_session_run(s, f, 2, NULL, 0, &train, 1, NULL, &st), 0);
    pst_tensor *wv = pst_session_run1(s, pst_graph_output_by_name(h, "w/read"), &st);
    ck_assert_double_eq_tol(pst_tensor_f32(wv)[0], 2.0, 0.01);
    ck_assert_double_eq_tol(pst_tensor_f32(wv)[1], -1.0, 0.01);
    pst_tensor_unref(wv);
    pst_tensor_unref(xv);
    pst_tensor_unref(tv);
    pst_session_free(s);
    pst_graph_free(h);
}
END_TEST


/* ---- Resuming: never silently from step 0 ------------------------------------------------ */

static void write_text(const char *path, const void *text, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (len) ck_assert_int_eq((int)fwrite(text, 1, len, f), (int)len);
    fclose(f);
}

static int exists(const char *dir_, const char *name) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    return access(p, F_OK) == 0;
}

/* Saves steps 10, 20 and 30 of the small model into dir/model.ckpt. */
static void save_three(small *a) {
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(a->g, &(pst_saver_opts){.write_meta = 0}, &st);
    char path[512], p[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    for (int step = 10; step <= 30; step += 10)
        ck_assert_msg(pst_saver_save(sv, a->s, path, step, p, sizeof p, &st) == 0, "%s", st.msg);
    pst_saver_free(sv);
}

/* A missing, empty or zeroed state file, or one naming a checkpoint that is gone: the newest
 * intact checkpoint in the directory is restored, with a warning naming the directory and it. */
START_TEST(test_resume_without_a_usable_state_file) {
    mkdir_tmp();
    small a = build_small(1);
    save_three(&a);
    char state[512];
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    const char zeros[64] = {0};
    const char *gone = "model_checkpoint_path: \"model.ckpt-99\"\n"
                       "all_model_checkpoint_paths: \"model.ckpt-99\"\n";
    for (int kind = 0; kind < 4; kind++) {
        if (kind == 0) ck_assert_int_eq(unlink(state), 0);
        if (kind == 1) write_text(state, "", 0);
        if (kind == 2) write_text(state, zeros, sizeof zeros);
        if (kind == 3) write_text(state, gone, strlen(gone));
        char latest[4096], warn[2048], want[600];
        pst_status st = {0};
        int rc = pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st);
        ck_assert_msg(rc == 0, "state file kind %d: %d %s", kind, rc, st.msg);
        snprintf(want, sizeof want, "%s/model.ckpt-30", dir);
        ck_assert_str_eq(latest, want);
        ck_assert_msg(strstr(warn, want) && strstr(warn, "newest intact checkpoint in"),
                      "kind %d: %s", kind, warn);
        if (kind == 3) ck_assert_msg(strstr(warn, "model.ckpt-99 does not exist"), "%s", warn);
    }
    /* With the newest corrupt too, the next one. */
    char data[600];
    snprintf(data, sizeof data, "%s/model.ckpt-30.data-00000-of-00001", dir);
    corrupt(data, 2);
    unlink(state);
    char latest[4096], warn[2048];
    pst_status st = {0};
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_msg(strstr(latest, "model.ckpt-20") != NULL, "%s", latest);
    ck_assert_msg(strstr(warn, "model.ckpt-30 is unusable"), "%s", warn);
    /* Start fresh: step 0, nothing deleted, a warning. */
    ck_assert_int_eq(pst_latest_checkpoint(dir, 1, latest, sizeof latest, warn, sizeof warn, &st), 1);
    ck_assert_msg(strstr(warn, "starting from step 0") && strstr(warn, dir), "%s", warn);
    ck_assert(exists(dir, "model.ckpt-20.index"));
    free_small(&a);
}
END_TEST

/* Checkpoints that all fail to verify are an error naming the directory, never a fresh start;
 * a directory with no checkpoint at all starts fresh. */
START_TEST(test_every_checkpoint_corrupt_is_an_error) {
    mkdir_tmp();
    char latest[4096], warn[2048], state[512];
    pst_status st = {0};
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 1);
    ck_assert_str_eq(warn, "");
    small a = build_small(1);
    save_three(&a);
    for (int step = 10; step <= 30; step += 10) {
        char data[600];
        snprintf(data, sizeof data, "%s/model.ckpt-%d.data-00000-of-00001", dir, step);
        corrupt(data, 1);
    }
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    for (int with_state = 1; with_state >= 0; with_state--) {
        if (!with_state) unlink(state);
        pst_status_clear(&st);
        int rc = pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st);
        ck_assert_msg(rc == PST_E_DATA_LOSS, "with_state %d: %d", with_state, rc);
        ck_assert_msg(strstr(st.msg, dir) && strstr(st.msg, "no intact checkpoint") &&
                      strstr(st.msg, "model.ckpt-10"), "%s", st.msg);
    }
    /* A state file naming checkpoints whose files are all gone: nothing to restore. */
    for (int step = 10; step <= 30; step += 10) {
        char pre[600];
        snprintf(pre, sizeof pre, "%s/model.ckpt-%d", dir, step);
        char f[700];
        snprintf(f, sizeof f, "%s.index", pre);
        unlink(f);
        snprintf(f, sizeof f, "%s.data-00000-of-00001", pre);
        unlink(f);
    }
    const char *gone = "model_checkpoint_path: \"model.ckpt-30\"\n";
    write_text(state, gone, strlen(gone));
    pst_status_clear(&st);
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 1);
    ck_assert_msg(strstr(warn, "holds no checkpoint") && strstr(warn, "model.ckpt-30"), "%s", warn);
    free_small(&a);
}
END_TEST

/* A state file naming a path outside its directory is an error naming the state file, and the
 * saver never deletes such a path for max_to_keep. */
START_TEST(test_state_file_paths_outside_the_directory) {
    mkdir_tmp();
    char outer[200];
    snprintf(outer, sizeof outer, "%.199s", dir);
    small a = build_small(1);
    /* A checkpoint in a sibling directory, the one the state file will point at. */
    snprintf(dir, sizeof dir, "%s/other", outer);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    save_three(&a);
    snprintf(dir, sizeof dir, "%s/run", outer);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    char link[600], state[512], text[2048];
    snprintf(link, sizeof link, "%s/elsewhere", dir);
    ck_assert_int_eq(symlink("../other", link), 0);
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    const char *entries[3] = {NULL, "../other/model.ckpt-30", "elsewhere/model.ckpt-30"};
    char absolute[600];
    snprintf(absolute, sizeof absolute, "%s/other/model.ckpt-30", outer);
    entries[0] = absolute;
    for (int k = 0; k < 3; k++) {
        snprintf(text, sizeof text, "model_checkpoint_path: \"%s\"\nall_model_checkpoint_paths: "
                 "\"%s\"\n", entries[k], entries[k]);
        write_text(state, text, strlen(text));
        char latest[4096], warn[2048];
        pst_status st = {0};
        int rc = pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st);
        ck_assert_msg(rc < 0, "%s: accepted (%d, %s)", entries[k], rc, latest);
        ck_assert_msg(strstr(st.msg, state) && strstr(st.msg, entries[k]), "%s", st.msg);
        char **list;
        pst_status_clear(&st);
        ck_assert_int_lt(pst_checkpoint_list(dir, &list, &st), 0);
        ck_assert_msg(strstr(st.msg, state), "%s", st.msg);
        /* A saver keeping one checkpoint writes its own and deletes nothing outside. */
        pst_saver *sv = pst_saver_new(a.g, &(pst_saver_opts){.max_to_keep = 1, .write_meta = 0}, &st);
        char path[512], p[4096];
        snprintf(path, sizeof path, "%s/model.ckpt", dir);
        ck_assert_msg(pst_saver_save(sv, a.s, path, 40 + k, p, sizeof p, &st) == 0, "%s", st.msg);
        pst_saver_free(sv);
        char other[600];
        snprintf(other, sizeof other, "%s/other", outer);
        ck_assert_msg(exists(other, "model.ckpt-30.index") && exists(other, "model.ckpt-30.data-00000-of-00001"),
                      "%s: the saver deleted another directory's checkpoint", entries[k]);
    }
    /* An absolute path inside the directory is fine. */
    snprintf(text, sizeof text, "model_checkpoint_path: \"%s/model.ckpt-42\"\n", dir);
    write_text(state, text, strlen(text));
    char latest[4096], warn[2048];
    pst_status st = {0};
    ck_assert_msg(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st) == 0,
                  "%s", st.msg);
    ck_assert_msg(strstr(latest, "model.ckpt-42") && warn[0] == '\0', "%s / %s", latest, warn);
    /* A relative directory, and an entry in a subdirectory that does not exist: not outside,
     * just missing (the newest checkpoint in the directory is restored). */
    ck_assert_int_eq(chdir(outer), 0);
    snprintf(text, sizeof text, "model_checkpoint_path: \"gone/model.ckpt-99\"\n");
    write_text(state, text, strlen(text));
    ck_assert_msg(pst_latest_checkpoint("run", 0, latest, sizeof latest, warn, sizeof warn, &st) == 0,
                  "%s", st.msg);
    ck_assert_msg(strstr(latest, "model.ckpt-42") && strstr(warn, "gone/model.ckpt-99 does not exist"),
                  "%s / %s", latest, warn);
    free_small(&a);
}
END_TEST

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "hung on a state file that is not a regular file\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(99);
}

/* A FIFO or a directory in place of the state file is an error naming it, never a hang. */
START_TEST(test_state_file_not_a_regular_file) {
    mkdir_tmp();
    small a = build_small(1);
    save_three(&a);
    char state[512];
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    signal(SIGALRM, on_alarm);
    for (int kind = 0; kind < 2; kind++) {
        unlink(state);
        ck_assert_int_eq(kind == 0 ? mkfifo(state, 0644) : mkdir(state, 0755), 0);
        char latest[4096], warn[2048];
        pst_status st = {0};
        alarm(10);
        int rc = pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st);
        alarm(0);
        ck_assert_int_lt(rc, 0);
        ck_assert_msg(strstr(st.msg, state) && strstr(st.msg, "not a regular file"), "%s", st.msg);
        if (kind == 1) rmdir(state);
    }
    free_small(&a);
}
END_TEST

static const char *const temp_names[] = {
    "model.ckpt-5_temp_shard0.index",
    "model.ckpt-5_temp_shard1.data-00000-of-00001",
    "model.ckpt-5_temp_shard0.data-00000-of-00001.tempstate123",
    "model.ckpt-5_temp_shard2.index.tmp55",
    "model.ckpt-5.data-00000-of-00001.tempstate4242",
    "model.ckpt-5.index.tmp777",
    "model.ckpt-5.meta.tmp1",
    "checkpoint.tmp99",
    NULL};
static const char *const other_names[] = {
    "notes.tmp1",
    "model.ckpt-5.index.tmpx",
    "model.ckpt-5.data-00000-of-00001.tempstate",
    "my_temp_shard.txt",
    "model.ckpt-5_temp_shard0.txt",
    "model.ckpt-5_temp_shardX.index",
    "events.out.tfevents.1700000000.host",
    "checkpoint.tmp",
    "README",
    NULL};

static void plant(void) {
    for (int i = 0; temp_names[i]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, temp_names[i]);
        write_text(p, "x", 1);
    }
    for (int i = 0; other_names[i]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, other_names[i]);
        write_text(p, "x", 1);
    }
}

static void assert_only_temps_removed(const char *when) {
    for (int i = 0; temp_names[i]; i++)
        ck_assert_msg(!exists(dir, temp_names[i]), "%s: %s is still there", when, temp_names[i]);
    for (int i = 0; other_names[i]; i++)
        ck_assert_msg(exists(dir, other_names[i]), "%s: %s was removed", when, other_names[i]);
    ck_assert_msg(exists(dir, "x.index.tmp3"), "%s: a directory was removed", when);
}

/* Temporary files of interrupted saves (every name the bundle writer, the saver, distributed
 * shards and durable writes use) are removed when training resumes and when the next save
 * starts; nothing else is. */
START_TEST(test_interrupted_save_leftovers_removed) {
    mkdir_tmp();
    small a = build_small(1);
    save_three(&a);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/x.index.tmp3", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    plant();
    char latest[4096], warn[2048];
    pst_status st = {0};
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_msg(strstr(latest, "model.ckpt-30") && warn[0] == '\0', "%s / %s", latest, warn);
    assert_only_temps_removed("at resume");
    plant();
    pst_saver *sv = pst_saver_new(a.g, &(pst_saver_opts){.write_meta = 0}, &st);
    char path[512], p[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_int_eq(pst_saver_save(sv, a.s, path, 40, p, sizeof p, &st), 0);
    assert_only_temps_removed("at the next save");
    pst_saver_free(sv);
    free_small(&a);
}
END_TEST

/* The names in dir (sorted, space-separated) that contain `part`. */
static void names_with(const char *part, char *out, size_t len) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -F -- '%s' | tr '\\n' ' '", dir, part);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* A model whose index outgrows a file-size limit its data file fits in. */
static pst_graph *many_scalars(pst_session **s) {
    pst_graph *g = pst_graph_new();
    for (int i = 0; i < 300; i++) {
        char name[96];
        /* names that share no prefix, so the index does not compress them away */
        uint32_t h = (uint32_t)i * 2654435761u;
        snprintf(name, sizeof name, "%08x_%08x_%08x/variable", h, h ^ 0x5bd1e995u, h * 31u);
        pst_variable(g, name, pst_const_f32(g, (float)i, NULL), 1);
    }
    pst_status st = {0};
    *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(*s, pst_global_variables_initializer(g), &st), 0);
    return g;
}

static int fail_after_one_shard(void *ctx, const char *prefix, pst_status *st) {
    (void)ctx;
    char shard[4300];
    snprintf(shard, sizeof shard, "%s_temp_shard0", prefix);
    pst_bundle_writer *w = pst_bundle_writer_new(shard, st);
    pst_tensor *t = pst_tensor_scalar_f32(1);
    pst_bundle_writer_add(w, "v", t, st);
    pst_tensor_unref(t);
    if (pst_bundle_writer_finish(w, st) < 0) return st->code;
    return pst_status_set(st, PST_E_UNAVAILABLE, "saving on /job:ps/task:1: the task is gone");
}

static int write_one(void *ctx, const char *prefix, pst_status *st) {
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, st);
    pst_tensor *t = pst_tensor_scalar_f32(1);
    pst_bundle_writer_add(w, "v", t, st);
    pst_tensor_unref(t);
    /* ctx: make the state file's temporary name a directory, so writing the state fails */
    if (ctx) {
        char bad[600];
        snprintf(bad, sizeof bad, "%s/checkpoint.tmp%ld", dir, (long)getpid());
        mkdir(bad, 0755);
    }
    return pst_bundle_writer_finish(w, st);
}

/* A save that fails leaves nothing of itself behind (a full disk, a shard that could not be
 * written, a state file that could not be written) and deletes nothing the state file lists. */
START_TEST(test_failed_saves_remove_what_they_wrote) {
    mkdir_tmp();
    char names[4096], path[512];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    /* (1) A full disk, as a file-size limit: the data file fits, the index does not. */
    pst_session *s;
    pst_graph *g = many_scalars(&s);
    pst_status st = {0};
    pst_saver *sv = pst_saver_new(g, &(pst_saver_opts){.write_meta = 0}, &st);
    ck_assert_int_eq(pst_saver_save(sv, s, path, 6, NULL, 0, &st), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {8192, 8192};
        setrlimit(RLIMIT_FSIZE, &rl);
        pst_status cst = {0};
        int src = pst_saver_save(sv, s, path, 7, NULL, 0, &cst);
        _exit(src < 0 && strstr(cst.msg, "File too large") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the save did not fail as planned");
    names_with("model.ckpt-7", names, sizeof names);
    ck_assert_msg(names[0] == '\0', "a failed save left: %s", names);
    names_with("tmp", names, sizeof names);
    ck_assert_msg(names[0] == '\0', "a failed save left: %s", names);
    char latest[4096], warn[2048];
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_msg(strstr(latest, "model.ckpt-6") && warn[0] == '\0', "%s / %s", latest, warn);
    pst_saver_free(sv);
    pst_session_free(s);
    pst_graph_free(g);
    /* (2) A distributed save whose second task fails after the first wrote its shard. */
    pst_graph *g2 = pst_graph_new();
    pst_variable(g2, "v", pst_const_f32(g2, 1, NULL), 1);
    sv = pst_saver_new(g2, &(pst_saver_opts){.write_meta = 0, .write_fn = fail_after_one_shard}, &st);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_saver_save(sv, NULL, path, 8, NULL, 0, &st), PST_E_UNAVAILABLE);
    names_with("model.ckpt-8", names, sizeof names);
    ck_assert_msg(names[0] == '\0', "a failed distributed save left: %s", names);
    pst_saver_free(sv);
    /* (3) The state file cannot be written: the new checkpoint goes, the listed one stays
     * (max_to_keep 1 deletes it only once the new state file is written). */
    sv = pst_saver_new(g2, &(pst_saver_opts){.max_to_keep = 1, .write_meta = 0, .write_fn = write_one}, &st);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_saver_save(sv, NULL, path, 9, NULL, 0, &st), 0);
    pst_saver_free(sv);
    sv = pst_saver_new(g2, &(pst_saver_opts){.max_to_keep = 1, .write_meta = 0, .write_fn = write_one,
                                             .write_ctx = (void *)1}, &st);
    ck_assert_int_lt(pst_saver_save(sv, NULL, path, 10, NULL, 0, &st), 0);
    names_with("model.ckpt-10", names, sizeof names);
    ck_assert_msg(names[0] == '\0', "a save whose state file failed left: %s", names);
    ck_assert_msg(exists(dir, "model.ckpt-9.index"), "the listed checkpoint was deleted");
    char bad[600];
    snprintf(bad, sizeof bad, "%s/checkpoint.tmp%ld", dir, (long)getpid());
    rmdir(bad);
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_msg(strstr(latest, "model.ckpt-9") && warn[0] == '\0', "%s / %s", latest, warn);
    pst_saver_free(sv);
    pst_graph_free(g2);
}
END_TEST

/* Runs pstrain-worker (single process) on dir with extra flags; its output (stdout and stderr)
 * into out; returns the exit status. */
static int run_worker(const char *flags, char *out, size_t len) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --model softmax --validation 0 --threads 1 "
             "--quiet --checkpoint-dir %s %s", bin ? bin : "build", dir, flags);
    return pst_test_run_command(cmd, out, len);
}

/* The trainer itself: with the state file removed, emptied or zeroed it restores the newest
 * checkpoint and the global step continues from it; --start-fresh starts from step 0 and
 * leaves the checkpoints in place. */
START_TEST(test_worker_resumes_without_a_state_file) {
    mkdir_tmp();
    char out[16384], state[512], want[700], prefix30[600];
    ck_assert_msg(run_worker("--steps 20 --save-every-steps 10", out, sizeof out) == 0, "%s", out);
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    snprintf(prefix30, sizeof prefix30, "%s/model.ckpt-30", dir);
    const char zeros[100] = {0};
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0) unlink(state);
        if (kind == 1) write_text(state, "", 0);
        if (kind == 2) write_text(state, zeros, sizeof zeros);
        ck_assert_msg(run_worker("--steps 30 --save-every-steps 10", out, sizeof out) == 0, "%s", out);
        snprintf(want, sizeof want, "restored %s/model.ckpt-20 (global step 20)", dir);
        ck_assert_msg(strstr(out, want) && strstr(out, "trained 10 steps"), "kind %d:\n%s", kind, out);
        ck_assert_msg(strstr(out, "warning:") && strstr(out, "newest intact checkpoint in"),
                      "kind %d:\n%s", kind, out);
        ck_assert(exists(dir, "model.ckpt-30.index"));
        /* Back to 20 as the newest for the next kind. */
        char f[700];
        snprintf(f, sizeof f, "%s.index", prefix30);
        unlink(f);
        snprintf(f, sizeof f, "%s.data-00000-of-00001", prefix30);
        unlink(f);
        snprintf(f, sizeof f, "%s.meta", prefix30);
        unlink(f);
    }
    ck_assert_msg(run_worker("--steps 5 --start-fresh", out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "restored") == NULL && strstr(out, "trained 5 steps") &&
                  strstr(out, "starting from step 0 as asked"), "%s", out);
    ck_assert(exists(dir, "model.ckpt-20.index"));
    ck_assert(exists(dir, "model.ckpt-5.index"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("saver");
    TCase *tc = tcase_create("saver");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_save_restore_round_trip);
    tcase_add_test(tc, test_save_creates_missing_directories);
    tcase_add_test(tc, test_max_to_keep_and_recovery_after_restart);
    tcase_add_test(tc, test_partial_and_renamed_restore);
    tcase_add_test(tc, test_shape_mismatch_reported);
    tcase_add_test(tc, test_corrupt_newest_falls_back);
    tcase_add_test(tc, test_killed_saves_leave_a_restorable_checkpoint);
    tcase_add_test(tc, test_ckpt_cli);
    tcase_add_test(tc, test_train_on_from_imported_meta_graph);
    tcase_add_test(tc, test_partitioned_variable_restores_onto_other_partitionings);
    tcase_add_test(tc, test_sharded_save_one_shard_per_ps);
    tcase_add_test(tc, test_train_imported_inference_graph);
    tcase_add_test(tc, test_resume_without_a_usable_state_file);
    tcase_add_test(tc, test_every_checkpoint_corrupt_is_an_error);
    tcase_add_test(tc, test_state_file_paths_outside_the_directory);
    tcase_add_test(tc, test_state_file_not_a_regular_file);
    tcase_add_test(tc, test_interrupted_save_leftovers_removed);
    tcase_add_test(tc, test_failed_saves_remove_what_they_wrote);
    tcase_add_test(tc, test_worker_resumes_without_a_state_file);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
