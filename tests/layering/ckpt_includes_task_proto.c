/* A ckpt-layer file that includes pstrain_task.pb-c.h: must not compile. */
#include "pstrain_task.pb-c.h"
int pst_layering_probe_ckpt_includes_task_proto;
