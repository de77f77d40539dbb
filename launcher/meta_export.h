/* pstrain meta export: a model's training graph as a .meta file TensorFlow imports. */
#ifndef PST_LAUNCHER_META_EXPORT_H
#define PST_LAUNCHER_META_EXPORT_H

struct pst_train_flags;

/* Parses the trainer's flags args[0..n) (args[0] a program name) into f for command cmd
 * ("pstrain export"), freeing args; on error (or --help) prints the message, destroys f and
 * returns the exit status to use (2, or 0 for --help); returns -1 when f is ready. */
int pst_launcher_trainer_flags(const char *cmd, int n, char **args, struct pst_train_flags *f);

/* argv[0] is "export". */
int pst_cmd_meta_export(int argc, char **argv);

#endif
