#include "variables.h"

#include <stdlib.h>
#include <string.h>

/* name is inside scope: equal, or scope followed by '/'. */
static int in_scope(const char *name, const char *scope) {
    size_t n = strlen(scope);
    return strncmp(name, scope, n) == 0 && (name[n] == '\0' || name[n] == '/' || scope[n - 1] == '/');
}

static int ends_with(const char *name, const char *suffix) {
    size_t a = strlen(name), b = strlen(suffix);
    return a >= b && strcmp(name + a - b, suffix) == 0;
}

int pst_get_variables(const pst_graph *g, const char *scope, const char *suffix,
                      const char *collection, pst_output **out) {
    int n;
    const pst_output *items = pst_graph_collection(g, collection ? collection : PST_GLOBAL_VARIABLES, &n);
    *out = calloc((size_t)n + 1, sizeof **out);
    PST_ASSERT(*out != NULL);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *name = items[i].node->name;
        if (scope && scope[0] && !in_scope(name, scope)) continue;
        if (suffix && !ends_with(name, suffix)) continue;
        (*out)[k++] = items[i];
    }
    return k;
}

pst_output pst_get_variable_by_name(const pst_graph *g, const char *name) {
    int n;
    const pst_output *items = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(items[i].node->name, name) == 0) return items[i];
    items = pst_graph_collection(g, PST_LOCAL_VARIABLES, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(items[i].node->name, name) == 0) return items[i];
    return pst_out(NULL, 0);
}

int pst_get_variables_to_restore(const pst_graph *g, const char *const *include,
                                 const char *const *exclude, pst_output **out) {
    int n;
    const pst_output *items = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    *out = calloc((size_t)n + 1, sizeof **out);
    PST_ASSERT(*out != NULL);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *name = items[i].node->name;
        int keep = include == NULL || include[0] == NULL;
        for (const char *const *s = include; s && *s && !keep; s++) keep = in_scope(name, *s);
        for (const char *const *s = exclude; s && *s && keep; s++)
            if (in_scope(name, *s)) keep = 0;
        if (keep) (*out)[k++] = items[i];
    }
    return k;
}
