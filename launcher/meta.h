/* meta — `pstrain meta show FILE`: the variables and collections of a meta graph or of every
 * meta graph in a SavedModel. */
#ifndef PST_LAUNCHER_META_H
#define PST_LAUNCHER_META_H

int pst_cmd_meta(int argc, char **argv);

#endif
