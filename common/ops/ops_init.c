/* ops_init: registers the built-in op families (see ops.h). Each family registers its ops in
 * its own file; the graph core knows none of them. */
#include <pthread.h>

#include "op.h"
#include "ops.h"

void pst__register_state_ops(void);
void pst__register_math_ops(void);
void pst__register_nn_ops(void);
void pst__register_array_ops(void);
void pst__register_random_ops(void);
void pst__register_train_ops(void);
void pst__register_sendrecv_ops(void);
void pst__register_embedding_ops(void);
void pst__register_string_ops(void);
void pst__register_array_tf_ops(void);
void pst__register_control_ops(void);
void pst__register_tensor_array_ops(void);
void pst__register_resource_ops(void);
void pst__register_ctc_ops(void);
void pst__register_lookup_ops(void);
void pst__register_sparse_ops(void);
void pst__register_train_more_ops(void);
void pst__register_array_more_ops(void);
void pst__register_math_more_ops(void);
void pst__register_pool_more_ops(void);
void pst__register_segment_ops(void);
void pst__register_scatter_ops(void);
void pst__register_bn_global_ops(void);
void pst__register_image_more_ops(void);
void pst__register_color_ops(void);
void pst__register_linalg_ops(void);
void pst__register_einsum_ops(void);
void pst__register_gru_block_ops(void);
void pst__register_conv3d_ops(void);
void pst__register_sparse_more_ops(void);
void pst__register_array_tf_more_ops(void);
void pst__register_lstm_block_ops(void);
void pst__register_queue_ops(void);
void pst__register_input_ops(void);
void pst__register_accum_ops(void);
void pst__register_detect_ops(void);
void pst__register_misc_tf_ops(void);
void pst__register_string_tf_ops(void);
void pst__register_io_file_ops(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_builtin(void) {
    pst__register_state_ops();
    pst__register_math_ops();
    pst__register_nn_ops();
    pst__register_array_ops();
    pst__register_random_ops();
    pst__register_train_ops();
    pst__register_sendrecv_ops();
    pst__register_embedding_ops();
    pst__register_string_ops();
    pst__register_array_tf_ops();
    pst__register_control_ops();
    pst__register_tensor_array_ops();
    pst__register_resource_ops();
    pst__register_ctc_ops();
    pst__register_lookup_ops();
    pst__register_sparse_ops();
    pst__register_train_more_ops();
    pst__register_array_more_ops();
    pst__register_math_more_ops();
    pst__register_pool_more_ops();
    pst__register_segment_ops();
    pst__register_scatter_ops();
    pst__register_bn_global_ops();
    pst__register_image_more_ops();
    pst__register_color_ops();
    pst__register_linalg_ops();
    pst__register_einsum_ops();
    pst__register_gru_block_ops();
    pst__register_conv3d_ops();
    pst__register_sparse_more_ops();
    pst__register_array_tf_more_ops();
    pst__register_lstm_block_ops();
    pst__register_queue_ops();
    pst__register_input_ops();
    pst__register_accum_ops();
    pst__register_detect_ops();
    pst__register_misc_tf_ops();
    pst__register_string_tf_ops();
    pst__register_io_file_ops();
}

void pst_ops_init(void) { pthread_once(&once, register_builtin); }
