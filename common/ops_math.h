/* ops_math — builders for the math op family (see ops.h). */
#ifndef PST_OPS_MATH_H
#define PST_OPS_MATH_H

#include "graph.h"

#endif
