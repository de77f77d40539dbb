/* A ckpt-layer file that includes dataset.h: must not compile. */
#include "dataset.h"
int pst_layering_probe_ckpt_includes_dataset;
