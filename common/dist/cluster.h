/*
 * cluster — the cluster spec: which jobs exist ("ps", "worker", "chief", ...) and the
 * "host:port" address of each of their tasks, as TensorFlow's tf.train.ClusterSpec.
 *
 * A spec is JSON, either bare or under "cluster" in a job file or in TF_CONFIG:
 *
 *     {"ps": ["127.0.0.1:2222", "127.0.0.1:2223"], "worker": ["127.0.0.1:2224"]}
 *     {"cluster": {...}, "task": {"type": "worker", "index": 0}}      (TF_CONFIG)
 *
 * Task i of job j runs on device "/job:j/replica:0/task:i". Parsing validates everything
 * (job names usable in device strings, host:port syntax, no address used twice, no empty job)
 * and every error names the origin (file name or "TF_CONFIG") and the entry at fault. Port 0
 * means the task picks a free port when it starts (task.h); such entries may repeat.
 *
 *     pst_status st = {0};
 *     pst_cluster *c = pst_cluster_load("cluster.json", &st);
 *     if (c == NULL) { fprintf(stderr, "%s\n", st.msg); return 1; }
 *     const char *a = pst_cluster_address_of_device(c, "/job:ps/task:1");   // "127.0.0.1:2223"
 *     pst_cluster_free(c);
 */
#ifndef PST_CLUSTER_H
#define PST_CLUSTER_H

#include <stddef.h>

#include "status.h"

typedef struct pst_cluster pst_cluster;

/* Parses a spec from JSON text: the bare job object, or an object holding it under "cluster"
 * (other keys of that object are ignored). `origin` (a file name, "TF_CONFIG"; NULL = "cluster
 * spec") starts every error message. Returns a new cluster the caller frees, or NULL with st
 * set (PST_E_INVALID). Jobs keep the order of the JSON object. */
pst_cluster *pst_cluster_parse(const char *json, const char *origin, pst_status *st);

/* Flags of the _ex forms. PST_CLUSTER_ALLOW_PORT0: entries may have port 0 (and repeat), for
 * a bootstrap spec where each task binds any port and reports it (--port-file): a task's own
 * server picks a free port, and others learn its address at registration. Without it port 0 is
 * an error naming the file and the entry. */
enum { PST_CLUSTER_ALLOW_PORT0 = 1 };
pst_cluster *pst_cluster_parse_ex(const char *json, const char *origin, int flags,
                                  pst_status *st);
pst_cluster *pst_cluster_load_ex(const char *path, int flags, pst_status *st);

/* Reads and parses a file (bare spec or job file). NULL with st set on error: an unreadable
 * file gives PST_E_NOT_FOUND / PST_E_IO naming the path and the errno text. */
pst_cluster *pst_cluster_load(const char *path, pst_status *st);

/* Parses the TF_CONFIG-style environment variable `var` (NULL = "TF_CONFIG"), which must hold
 * "cluster" and may hold "task": {"type": "worker", "index": 1}. The task type is copied into
 * task_type (len bytes, may be NULL) and the index into *task_index (may be NULL); without a
 * "task" they are "" and -1. A task must name an existing task of the cluster. Returns NULL
 * with st->code == 0 when the variable is unset or empty. */
pst_cluster *pst_cluster_from_env(const char *var, char *task_type, size_t len, int *task_index,
                                  pst_status *st);

/* Frees c (NULL is fine). */
void pst_cluster_free(pst_cluster *c);

/* Number of jobs (>= 1 for any parsed cluster) and the name of job i (NULL out of range). */
int pst_cluster_num_jobs(const pst_cluster *c);
const char *pst_cluster_job_name(const pst_cluster *c, int i);
/* Number of tasks of a job; 0 when there is no such job. */
int pst_cluster_num_tasks(const pst_cluster *c, const char *job);
/* Address "host:port" of a task, borrowed from c; NULL for no such job or index. */
const char *pst_cluster_address(const pst_cluster *c, const char *job, int index);

/* 0 when job:index is a task of c; otherwise PST_E_INVALID with a message naming the job, the
 * index and how many tasks the job has (or which jobs exist). */
int pst_cluster_check_task(const pst_cluster *c, const char *job, int index, pst_status *st);

/* Writes the task's device "/job:ps/replica:0/task:1" into out (len bytes). Returns 0, or
 * PST_E_INVALID when the task does not exist or out is too small (out is then ""). */
int pst_cluster_task_device(const pst_cluster *c, const char *job, int index, char *out,
                            size_t len);

/* Address of the task a device string runs on ("/job:ps/task:1",
 * "/job:ps/replica:0/task:1/device:CPU:0"; an unset task means task 0). NULL when the string
 * does not parse, names no job, a replica other than 0, or a task the cluster lacks. */
const char *pst_cluster_address_of_device(const pst_cluster *c, const char *device);

/* The bare spec as compact JSON, jobs in order; the caller frees it with free(). NULL only
 * when out of memory. pst_cluster_parse of the result gives an equal cluster. */
char *pst_cluster_to_json(const pst_cluster *c);

#endif
