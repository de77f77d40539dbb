/*
 * variables — finding variables the way slim does: by collection, scope prefix, suffix or exact
 * name, and the include/exclude filter used to pick what to restore from a checkpoint.
 *
 *     pst_output *vars;
 *     int n = pst_get_variables_to_restore(g, NULL, (const char *[]){"fc8", NULL}, &vars);
 *     ...
 *     free(vars);
 */
#ifndef PST_VARIABLES_H
#define PST_VARIABLES_H

#include "graph.h"

/* Variables of `collection` (NULL: "variables") whose name starts with scope (NULL: any) and
 * ends with suffix (NULL: any). *out is malloc'd (caller frees); returns the count. */
int pst_get_variables(const pst_graph *g, const char *scope, const char *suffix,
                      const char *collection, pst_output **out);
/* The variable named exactly `name`, or a null output. */
pst_output pst_get_variable_by_name(const pst_graph *g, const char *name);
/* Global variables inside any include scope (NULL: all) and outside every exclude scope
 * (NULL-terminated lists of scope prefixes). */
int pst_get_variables_to_restore(const pst_graph *g, const char *const *include,
                                 const char *const *exclude, pst_output **out);

#endif
