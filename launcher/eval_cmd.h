/* eval_cmd: `pstrain eval` (the evaluation loop of worker/eval.h from the command line). */
#ifndef PST_CMD_EVAL_H
#define PST_CMD_EVAL_H

int pst_cmd_eval(int argc, char **argv);

#endif
