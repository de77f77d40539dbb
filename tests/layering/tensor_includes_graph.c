/* A tensor-layer file that includes graph.h: must not compile. */
#include "graph.h"
int pst_layering_probe_tensor_includes_graph;
