/* pstrain export saved-model: a trained model as a SavedModel TensorFlow Serving loads. */
#ifndef PST_LAUNCHER_EXPORT_H
#define PST_LAUNCHER_EXPORT_H

/* argv[0] is "export". */
int pst_cmd_export(int argc, char **argv);

#endif
