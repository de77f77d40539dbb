/*
 * launch — `pstrain launch JOB.json`, `pstrain resume RUN`, `pstrain status RUN`,
 * `pstrain stop RUN`, `pstrain logs RUN [TASK]`: one command starts a job's parameter servers
 * and workers (on this machine, or on other hosts over ssh), supervises them, shows the job's
 * progress, and stops or resumes it.
 *
 * A run directory holds everything of one job: job.json (as launched), token (0600), state.json
 * (rewritten every second: tasks, addresses, states, restarts, global step, examples/s, last
 * checkpoint), logs/<task>.log, checkpoints/ (unless the job file names another directory) and
 * events/ (TensorBoard).
 *
 * Tasks bind port 0 and register the port they got with the launcher's coordination service
 * (dist/coord.h), so there are no free-port races. The launcher starts children with
 * posix_spawn (no fork after gRPC started), in their own process group, with
 * PST_LAUNCHER_PID set so each task asks the kernel for SIGKILL when the launcher dies
 * (ssh tasks exit when their stdin, held by the launcher, closes).
 */
#ifndef PST_CMD_LAUNCH_H
#define PST_CMD_LAUNCH_H

int pst_cmd_launch(int argc, char **argv);
int pst_cmd_resume(int argc, char **argv);
int pst_cmd_status(int argc, char **argv);
int pst_cmd_stop(int argc, char **argv);
/* pstrain scale RUN --workers N: asks the running launcher (RUN/scale.json, then SIGUSR1) to
 * grow or shrink the job to N workers. */
int pst_cmd_scale(int argc, char **argv);
int pst_cmd_logs(int argc, char **argv);

#endif
