/* A train-layer file that includes bundle.h: must not compile. */
#include "bundle.h"
int pst_layering_probe_train_includes_bundle;
