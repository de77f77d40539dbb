/* dist_ops: registration of the distributed layer's op families (see dist_ops.h). */
#include "dist_ops.h"

#include <pthread.h>

#include "ops.h"
#include "ps_sync.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_dist(void) {
    pst_ops_init(); /* the sync kernels wrap the built-in apply kernels */
    pst__ps_sync_register_ops();
}

void pst_dist_ops_init(void) { pthread_once(&once, register_dist); }
