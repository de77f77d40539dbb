/* A graph-layer file that includes session.h: must not compile. */
#include "session.h"
int pst_layering_probe_graph_includes_session;
