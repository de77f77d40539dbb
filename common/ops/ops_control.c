/* TF 1.x control flow ops: Switch, Merge, Enter, Exit, NextIteration, LoopCond, ControlTrigger
 * (and their Ref* forms). They have no kernels: the session's frame executor
 * (common/exec/frames.c) routes their values between branches, frames and iterations. Their
 * gradients are what TensorFlow wrote into an imported graph; pstrain does not differentiate
 * through them. */
#include <string.h>

#include "op.h"
#include "ops.h"

static int same_as_data_shape(pst_node *n, pst_status *st) {
    (void)st;
    for (int i = 0; i < n->n_outputs; i++)
        pst_node_set_output(n, i, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static int switch_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 1) != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "pred must be bool, got %s",
                              pst_dtype_name(pst_node_in_dtype(n, 1)));
    return same_as_data_shape(n, st);
}

/* Merge: the value of whichever input arrives alive, and its index. The shape is the inputs'
 * when they agree (a loop variable whose shape changes gets unknown dims). */
static int merge_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    pst_shape s = pst_node_in_shape(n, 0);
    for (int i = 1; i < n->n_inputs; i++) {
        pst_shape t = pst_node_in_shape(n, i);
        if (t.rank != s.rank) {
            s = pst_shape_unknown();
            break;
        }
        for (int d = 0; d < s.rank; d++)
            if (t.dims[d] != s.dims[d]) s.dims[d] = -1;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    pst_node_set_output(n, 1, PST_INT32, pst_shape_scalar());
    return 0;
}

/* Loop variables change shape between iterations (a growing sequence): an Enter that is not
 * constant leaves the dims the loop may change unknown only through Merge; Enter itself keeps
 * its input's shape. */
static int loop_cond_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "input must be bool");
    pst_node_set_output(n, 0, PST_BOOL, pst_shape_scalar());
    return 0;
}

static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec enter_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                            {"frame_name", PST_ATTR_STRING, 1},
                                            {"is_constant", PST_ATTR_BOOL, 0},
                                            {"parallel_iterations", PST_ATTR_INT, 0},
                                            {0}};

#define CF (PST_OP_CONTROL_FLOW | PST_OP_STRINGS)
#define ONE(nm, attrs_)                                                                           \
    {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = attrs_,               \
     .shape = same_as_data_shape, .flags = CF}
static const pst_op_def control_ops[] = {
    {.name = "Switch", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2, .attrs = t_attrs,
     .shape = switch_shape, .flags = CF},
    {.name = "RefSwitch", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2, .attrs = t_attrs,
     .shape = switch_shape, .flags = CF},
    {.name = "Merge", .min_inputs = 1, .max_inputs = -1, .n_outputs = 2, .attrs = t_attrs,
     .shape = merge_shape, .flags = CF},
    {.name = "RefMerge", .min_inputs = 1, .max_inputs = -1, .n_outputs = 2, .attrs = t_attrs,
     .shape = merge_shape, .flags = CF},
    ONE("Enter", enter_attrs),
    ONE("RefEnter", enter_attrs),
    ONE("Exit", t_attrs),
    ONE("RefExit", t_attrs),
    ONE("NextIteration", t_attrs),
    ONE("RefNextIteration", t_attrs),
    {.name = "LoopCond", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = loop_cond_shape, .flags = CF},
    {.name = "ControlTrigger", .min_inputs = 0, .max_inputs = 0, .n_outputs = 0,
     .flags = CF | PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_control_ops(void) {
    for (size_t i = 0; i < sizeof control_ops / sizeof control_ops[0]; i++)
        pst_op_register(&control_ops[i]);
}
