/* ops_array — builders for the array op family (see ops.h). */
#ifndef PST_OPS_ARRAY_H
#define PST_OPS_ARRAY_H

#include "graph.h"

#endif
