/* ops_nn — builders for the nn op family (see ops.h). */
#ifndef PST_OPS_NN_H
#define PST_OPS_NN_H

#include "graph.h"

#endif
