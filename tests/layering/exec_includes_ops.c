/* A exec-layer file that includes ops.h: must not compile. */
#include "ops.h"
int pst_layering_probe_exec_includes_ops;
