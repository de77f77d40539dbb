/* token: `pstrain token new FILE` (the job's secret; see common/dist/security.h). */
#ifndef PST_CMD_TOKEN_H
#define PST_CMD_TOKEN_H

int pst_cmd_token(int argc, char **argv);

#endif
