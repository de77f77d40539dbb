/* ops_random — builders for the random op family (see ops.h). */
#ifndef PST_OPS_RANDOM_H
#define PST_OPS_RANDOM_H

#include "graph.h"

#endif
