/* A dist-layer file that includes every layer below it: must compile (the control case). */
#include "bundle.h"
#include "dataset.h"
#include "graph.h"
#include "ops.h"
#include "optimizer.h"
#include "session.h"
#include "status.h"
#include "task.h"
#include "tensor.h"
int pst_layering_probe_ok;
