/* pstrain meta export: a model's training graph as a .meta file TensorFlow imports. */
#ifndef PST_LAUNCHER_META_EXPORT_H
#define PST_LAUNCHER_META_EXPORT_H

/* argv[0] is "export". */
int pst_cmd_meta_export(int argc, char **argv);

#endif
