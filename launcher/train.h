#ifndef PST_LAUNCHER_TRAIN_H
#define PST_LAUNCHER_TRAIN_H

/* pstrain train --meta FILE ...: trains a TensorFlow user's imported graph (see README). */
int pst_cmd_train(int argc, char **argv);

#endif
