/*
 * bench_train: training throughput (examples/s) and peak memory of softmax regression, the MLP
 * and the SimpleCNN at batch 100 with 2 threads, against PyTorch (Debian's python3-torch)
 * training the same model with the same batch and thread count in the same run. Each side runs
 * as its own process; the median of 3 runs is reported, and peak RSS comes from wait4().
 *
 * Usage: bench_train [build-dir] [source-dir]
 * Needs /usr/bin/python3 with torch (bench/run_train_bench.sh installs python3-torch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUNS 3

typedef struct result {
    double eps;
    double rss_mb;
} result;

/* Runs argv, scanning its stdout for `key` followed by a number. */
static int run(char *const argv[], const char *key, result *r) {
    int fd[2];
    if (pipe(fd) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[1024];
    r->eps = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, key);
        if (p) r->eps = atof(p + strlen(key));
    }
    fclose(f);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    r->rss_mb = (double)ru.ru_maxrss / 1024.0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->eps > 0 ? 0 : -1;
}

static int cmp(const void *a, const void *b) {
    double x = ((const result *)a)->eps, y = ((const result *)b)->eps;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *build = argc > 1 ? argv[1] : "build";
    const char *src = argc > 2 ? argv[2] : ".";
    struct {
        const char *name, *steps, *torch_steps;
    } models[3] = {{"softmax", "3000", "1000"}, {"mlp", "1500", "500"}, {"simple_cnn", "100", "60"}};
    char worker[1024], script[1024];
    snprintf(worker, sizeof worker, "%s/worker/pstrain-worker", build);
    snprintf(script, sizeof script, "%s/bench/torch_reference.py", src);
    printf("%-11s %14s %14s %8s %12s %12s %8s\n", "model", "pstrain ex/s", "torch ex/s", "ratio",
           "pstrain MB", "torch MB", "ratio");
    for (int m = 0; m < 3; m++) {
        result ours[RUNS], ref[RUNS];
        for (int i = 0; i < RUNS; i++) {
            char *wa[] = {worker, "--model", (char *)models[m].name, "--steps", (char *)models[m].steps,
                          "--batch", "100", "--threads", "2", "--validation", "0", "--quiet", NULL};
            char *ta[] = {"/usr/bin/python3", script, (char *)models[m].name,
                          (char *)models[m].torch_steps, "100", "2", NULL};
            if (run(wa, " s (", &ours[i]) < 0 || run(ta, "examples_per_s=", &ref[i]) < 0) {
                fprintf(stderr, "bench_train: a run of %s failed (is python3-torch installed?)\n",
                        models[m].name);
                return 1;
            }
        }
        qsort(ours, RUNS, sizeof ours[0], cmp);
        qsort(ref, RUNS, sizeof ref[0], cmp);
        result a = ours[RUNS / 2], b = ref[RUNS / 2];
        printf("%-11s %14.0f %14.0f %8.2f %12.1f %12.1f %8.2f\n", models[m].name, a.eps, b.eps,
               a.eps / b.eps, a.rss_mb, b.rss_mb, a.rss_mb / b.rss_mb);
        fflush(stdout);
    }
    return 0;
}
