/* inspect — `pstrain inspect placement --job FILE --dry-run`: builds worker 0's training graph
 * for a job file's model, optimizer and cluster under the replica device setter and prints
 * which PS task holds which variable (with optimizer slots), bytes per PS and the imbalance.
 * Nothing is started: no process, no network. */
#ifndef PST_LAUNCHER_INSPECT_H
#define PST_LAUNCHER_INSPECT_H

/* argv[0] is "inspect". Returns the process exit status: 0, 1 for a bad job file, 2 for a
 * bad command line. */
int pst_cmd_inspect(int argc, char **argv);

#endif
