/* data — the `pstrain data` subcommands: convert (Fashion-MNIST IDX files to TFRecord files of
 * tf.train.Example) and show (a TFRecord file's records and their features). */
#ifndef PST_LAUNCHER_DATA_H
#define PST_LAUNCHER_DATA_H

/* argv[0] is "data". Returns the process exit status. */
int pst_cmd_data(int argc, char **argv);

#endif
