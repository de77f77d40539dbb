/* A ops-layer file that includes optimizer.h: must not compile. */
#include "optimizer.h"
int pst_layering_probe_ops_includes_optimizer;
