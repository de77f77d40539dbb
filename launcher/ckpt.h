/* ckpt — the `pstrain ckpt` subcommands: ls, show, verify. */
#ifndef PST_LAUNCHER_CKPT_H
#define PST_LAUNCHER_CKPT_H

/* argv[0] is "ckpt". Returns the process exit status. */
int pst_cmd_ckpt(int argc, char **argv);

#endif
