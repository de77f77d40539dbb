/* The seed notebook's first example: x = 20, y = 10, z = x + y. */
#include <stdio.h>

#include "ops.h"
#include "session.h"

int main(void) {
    pst_ops_init(); /* the built-in op families, before any graph */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_variable(g, "x", pst_const_f32(g, 20, NULL), 1);
    pst_output y = pst_variable(g, "y", pst_const_f32(g, 10, NULL), 1);
    pst_output xy[2] = {pst_variable_value(x), pst_variable_value(y)};
    pst_output z = pst_add(g, xy[0], xy[1], "z");
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *t = pst_session_run1(s, z, &st);
    printf("before init: %s\n", t ? "unexpected value" : st.msg);
    pst_status_clear(&st);
    int rc = 1;
    if (pst_session_run_target(s, init, &st) == 0 && (t = pst_session_run1(s, z, &st)) != NULL) {
        printf("z = %g\n", pst_tensor_f32(t)[0]);
        pst_tensor_unref(t);
        rc = 0;
    } else {
        fprintf(stderr, "error: %s\n", st.msg);
    }
    pst_session_free(s);
    pst_graph_free(g);
    return rc;
}
