/*
 * device — device strings: "/job:ps/replica:0/task:1/device:CPU:0".
 *
 * Every part is optional and may come in any order; "*" is a wildcard (unset); the legacy
 * "/cpu:0" and "/gpu:0" mean "/device:CPU:0" and "/device:GPU:0". Job and type names match
 * [A-Za-z][A-Za-z0-9_]*. A partial spec from an inner scope is merged over the outer one.
 *
 *     pst_device_name d;
 *     if (pst_device_parse("/job:ps/task:1", &d, &st) == 0)
 *         pst_device_str(&d, buf, sizeof buf);   // "/job:ps/task:1"
 */
#ifndef PST_DEVICE_H
#define PST_DEVICE_H

#include <stddef.h>

#include "status.h"

#define PST_DEVICE_NAME_MAX 64

typedef struct pst_device_name {
    char job[PST_DEVICE_NAME_MAX];  /* "" unset */
    int replica;                    /* -1 unset */
    int task;                       /* -1 unset */
    char type[PST_DEVICE_NAME_MAX]; /* "CPU", "GPU"...; "" unset */
    int id;                         /* -1 unset */
} pst_device_name;

/* Parses spec ("" gives an all-unset name). Errors name the spec and the bad part. */
int pst_device_parse(const char *spec, pst_device_name *out, pst_status *st);
/* Sets in `base` every part that `over` sets (the inner scope wins). */
void pst_device_merge(pst_device_name *base, const pst_device_name *over);
/* Canonical string of the parts that are set, in the order job, replica, task, device. */
const char *pst_device_str(const pst_device_name *d, char *buf, size_t len);
/* Fully specified canonical form, unset parts filled with defaults (replica 0, task 0,
 * CPU:0): "/job:worker/replica:0/task:0/device:CPU:0". job must be set. */
const char *pst_device_full_str(const pst_device_name *d, char *buf, size_t len);
/* Parses and re-prints spec canonically into buf; returns 0 or an error. */
int pst_device_canonical(const char *spec, char *buf, size_t len, pst_status *st);
/* 1 when both name the same task (job, replica, task; unset replica counts as 0). */
int pst_device_same_task(const pst_device_name *a, const pst_device_name *b);

/* The task part of a device ("/job:ps/replica:0/task:1"); `dflt` when the device names no
 * job. */
int pst_device_task(const char *device, const char *dflt, char *out, size_t len, pst_status *st);

#endif
