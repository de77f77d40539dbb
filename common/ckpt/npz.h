/*
 * npz — NumPy's .npz archives (a zip of .npy files, deflated with zlib) for moving variables
 * to and from Python.
 *
 *     pst_npz_export_variables(sess, g, "weights.npz", &st);   // every global variable
 *     pst_npz_assign_variables(sess2, g2, "weights.npz", &st); // back, by name
 */
#ifndef PST_NPZ_H
#define PST_NPZ_H

#include "session.h"

/* Writes tensors as names[i].npy entries. */
int pst_npz_save(const char *path, int n, const char *const *names, pst_tensor *const *tensors,
                 pst_status *st);
/* Reads every entry; *names and *tensors (and their items) belong to the caller. Errors name
 * the file and the entry. Every size the archive claims (directory, entry, array shape) is
 * checked against the bytes that are there before anything that size is allocated. */
int pst_npz_load(const char *path, int *n, char ***names, pst_tensor ***tensors, pst_status *st);
int pst_npz_export_variables(pst_session *s, const pst_graph *g, const char *path, pst_status *st);
/* Assigns every global variable found in the archive; entries without a variable and
 * mismatched shapes are errors naming them. */
int pst_npz_assign_variables(pst_session *s, const pst_graph *g, const char *path, pst_status *st);

#endif
