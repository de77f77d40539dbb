/* A io-layer file that includes saver.h: must not compile. */
#include "saver.h"
int pst_layering_probe_io_includes_saver;
