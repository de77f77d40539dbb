/* A ckpt-layer file that includes task.h: must not compile. */
#include "task.h"
int pst_layering_probe_ckpt_includes_task;
