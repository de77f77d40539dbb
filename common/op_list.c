/* The built-in op families. Each family registers its ops in its own file. */
#include "op.h"

void pst__register_state_ops(void);
void pst__register_math_ops(void);
void pst__register_nn_ops(void);
void pst__register_array_ops(void);
void pst__register_random_ops(void);
void pst__register_train_ops(void);
void pst__register_sendrecv_ops(void);
void pst__register_embedding_ops(void);

void pst__register_builtin_ops(void) {
    pst__register_state_ops();
    pst__register_math_ops();
    pst__register_nn_ops();
    pst__register_array_ops();
    pst__register_random_ops();
    pst__register_train_ops();
    pst__register_sendrecv_ops();
    pst__register_embedding_ops();
}
