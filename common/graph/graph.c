#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "op.h"
#include "strmap.h"

typedef struct collection {
    char *key;
    pst_output *items;
    int n, cap;
} collection;

typedef struct value_collection {
    char *key;
    int is_int64;
    int64_t *i;
    float *f;
    int n, cap;
} value_collection;

typedef struct ctrl_scope {
    int n;
    pst_node **deps;
} ctrl_scope;

struct pst_graph {
    pst_node **nodes;
    int n_nodes, cap_nodes;
    pst_strmap *by_name;
    pst_strmap *names_in_use; /* value: (void*)(intptr_t) next suffix */
    char **scopes;
    int n_scopes, cap_scopes;
    char **devices;
    int n_devices, cap_devices;
    ctrl_scope *ctrls;
    int n_ctrls, cap_ctrls;
    collection *colls;
    int n_colls, cap_colls;
    value_collection *vcolls;
    int n_vcolls, cap_vcolls;
    pst_status status;
    int64_t seed;
    pst_device_fn device_fn;
    void *device_ctx;
    int n_control_flow; /* nodes of PST_OP_CONTROL_FLOW ops */
    pst_function **funcs;     /* the function library (FunctionDefLibrary), owned */
    int n_funcs, cap_funcs;
    const pst_graph *library_parent; /* a function body's: where other functions are found */
};

#define GROW(arr, n, cap)                                                                         \
    do {                                                                                          \
        if ((n) >= (cap)) {                                                                       \
            int nc_ = (cap) ? (cap) * 2 : 8;                                                      \
            void *np_ = realloc((arr), (size_t)nc_ * sizeof *(arr));                              \
            PST_ASSERT(np_ != NULL);                                                              \
            (arr) = np_;                                                                          \
            (cap) = nc_;                                                                          \
        }                                                                                         \
    } while (0)

static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    PST_ASSERT(d != NULL);
    return d;
}

pst_graph *pst_graph_new(void) {
    pst_graph *g = calloc(1, sizeof *g);
    PST_ASSERT(g != NULL);
    g->by_name = pst_strmap_new();
    g->names_in_use = pst_strmap_new();
    PST_ASSERT(g->by_name && g->names_in_use);
    g->seed = -1;
    return g;
}

const char *pst_attr_kind_name(pst_attr_kind k) {
    static const char *names[] = {"none",        "string",     "int",         "float",
                                  "bool",        "type",       "shape",       "tensor",
                                  "list(string)", "list(int)", "list(float)", "list(bool)",
                                  "list(type)",  "list(shape)", "list(tensor)"};
    return (k >= 0 && k < PST_ATTR_KIND_COUNT) ? names[k] : "invalid";
}

void pst_attr_destroy(pst_attr *a) {
    free(a->name);
    switch (a->kind) {
    case PST_ATTR_STRING: free(a->v.s); break;
    case PST_ATTR_TENSOR: pst_tensor_unref(a->v.tensor); break;
    case PST_ATTR_LIST_STRING:
        for (int i = 0; i < a->n; i++) free(a->list.s[i]);
        free(a->list.s);
        break;
    case PST_ATTR_LIST_TENSOR:
        for (int i = 0; i < a->n; i++) pst_tensor_unref(a->list.tensor[i]);
        free(a->list.tensor);
        break;
    case PST_ATTR_LIST_INT: free(a->list.i); break;
    case PST_ATTR_LIST_FLOAT: free(a->list.f); break;
    case PST_ATTR_LIST_BOOL: free(a->list.b); break;
    case PST_ATTR_LIST_TYPE: free(a->list.type); break;
    case PST_ATTR_LIST_SHAPE: free(a->list.shape); break;
    default: break;
    }
    memset(a, 0, sizeof *a);
}

static void *dupmem(const void *p, size_t n) {
    if (n == 0) return NULL;
    void *d = malloc(n);
    PST_ASSERT(d != NULL);
    memcpy(d, p, n);
    return d;
}

int pst_attr_copy(pst_attr *dst, const pst_attr *src, pst_status *st) {
    (void)st;
    *dst = *src;
    dst->name = xstrdup(src->name);
    switch (src->kind) {
    case PST_ATTR_STRING: dst->v.s = xstrdup(src->v.s); break;
    case PST_ATTR_TENSOR: pst_tensor_ref(src->v.tensor); break;
    case PST_ATTR_LIST_STRING:
        dst->list.s = calloc((size_t)src->n + 1, sizeof(char *));
        for (int i = 0; i < src->n; i++) dst->list.s[i] = xstrdup(src->list.s[i]);
        break;
    case PST_ATTR_LIST_TENSOR:
        dst->list.tensor = dupmem(src->list.tensor, (size_t)src->n * sizeof(pst_tensor *));
        for (int i = 0; i < src->n; i++) pst_tensor_ref(src->list.tensor[i]);
        break;
    case PST_ATTR_LIST_INT: dst->list.i = dupmem(src->list.i, (size_t)src->n * 8); break;
    case PST_ATTR_LIST_FLOAT: dst->list.f = dupmem(src->list.f, (size_t)src->n * 4); break;
    case PST_ATTR_LIST_BOOL: dst->list.b = dupmem(src->list.b, (size_t)src->n * sizeof(int)); break;
    case PST_ATTR_LIST_TYPE:
        dst->list.type = dupmem(src->list.type, (size_t)src->n * sizeof(pst_dtype));
        break;
    case PST_ATTR_LIST_SHAPE:
        dst->list.shape = dupmem(src->list.shape, (size_t)src->n * sizeof(pst_shape));
        break;
    default: break;
    }
    return 0;
}

const pst_attr *pst_attr_find(const pst_attr *attrs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(attrs[i].name, name) == 0) return &attrs[i];
    return NULL;
}

static void node_free(pst_node *n) {
    free(n->name);
    free(n->inputs);
    free(n->control_inputs);
    free(n->device);
    free(n->requested_device);
    for (int i = 0; i < n->n_attrs; i++) pst_attr_destroy(&n->attrs[i]);
    free(n->attrs);
    free(n->out_dtypes);
    free(n->out_shapes);
    free(n);
}

void pst_graph_free(pst_graph *g) {
    if (g == NULL) return;
    for (int i = 0; i < g->n_nodes; i++) node_free(g->nodes[i]);
    free(g->nodes);
    pst_strmap_free(g->by_name);
    pst_strmap_free(g->names_in_use);
    for (int i = 0; i < g->n_scopes; i++) free(g->scopes[i]);
    free(g->scopes);
    for (int i = 0; i < g->n_devices; i++) free(g->devices[i]);
    free(g->devices);
    for (int i = 0; i < g->n_ctrls; i++) free(g->ctrls[i].deps);
    free(g->ctrls);
    for (int i = 0; i < g->n_colls; i++) {
        free(g->colls[i].key);
        free(g->colls[i].items);
    }
    free(g->colls);
    for (int i = 0; i < g->n_vcolls; i++) {
        free(g->vcolls[i].key);
        free(g->vcolls[i].i);
        free(g->vcolls[i].f);
    }
    free(g->vcolls);
    for (int i = 0; i < g->n_funcs; i++) {
        pst_function *f = g->funcs[i];
        free(f->name);
        pst_graph_free(f->body);
        for (int k = 0; k < f->n_args; k++) free(f->arg_names[k]);
        free(f->arg_names);
        free(f->args);
        free(f->rets);
        free(f->error);
        free(f->def);
        free(f);
    }
    free(g->funcs);
    free(g);
}

int pst_graph_add_function(pst_graph *g, const char *name, pst_graph *body, int n_args,
                           pst_node *const *args, const char *const *arg_names, int n_rets,
                           const pst_output *rets) {
    if (pst_graph_function(g, name) != NULL) {
        pst_graph_free(body);
        return pst_graph_set_error(g, PST_E_EXISTS, "the function library has two functions "
                                   "named '%s'", name);
    }
    pst_function *f = calloc(1, sizeof *f);
    PST_ASSERT(f != NULL);
    f->name = xstrdup(name);
    f->body = body;
    f->n_args = n_args;
    f->args = calloc((size_t)n_args + 1, sizeof *f->args);
    f->arg_names = calloc((size_t)n_args + 1, sizeof *f->arg_names);
    f->n_rets = n_rets;
    f->rets = calloc((size_t)n_rets + 1, sizeof *f->rets);
    PST_ASSERT(f->args && f->arg_names && f->rets);
    for (int i = 0; i < n_args; i++) {
        f->args[i] = args[i];
        f->arg_names[i] = xstrdup(arg_names ? arg_names[i] : args[i]->name);
    }
    for (int i = 0; i < n_rets; i++) f->rets[i] = rets[i];
    body->library_parent = g;
    GROW(g->funcs, g->n_funcs, g->cap_funcs);
    g->funcs[g->n_funcs++] = f;
    return 0;
}

int pst_graph_add_broken_function(pst_graph *g, const char *name, const char *error) {
    if (pst_graph_function(g, name) != NULL)
        return pst_graph_set_error(g, PST_E_EXISTS, "the function library has two functions "
                                   "named '%s'", name);
    pst_function *f = calloc(1, sizeof *f);
    PST_ASSERT(f != NULL);
    f->name = xstrdup(name);
    f->error = xstrdup(error);
    GROW(g->funcs, g->n_funcs, g->cap_funcs);
    g->funcs[g->n_funcs++] = f;
    return 0;
}

void pst_graph_set_function_def(pst_graph *g, const char *name, const void *def, size_t len) {
    for (int i = 0; i < g->n_funcs; i++) {
        pst_function *f = g->funcs[i];
        if (strcmp(f->name, name) != 0) continue;
        free(f->def);
        f->def = malloc(len ? len : 1);
        PST_ASSERT(f->def != NULL);
        if (len) memcpy(f->def, def, len);
        f->def_len = len;
    }
}

const pst_function *pst_graph_function(const pst_graph *g, const char *name) {
    for (const pst_graph *x = g; x; x = x->library_parent)
        for (int i = 0; i < x->n_funcs; i++)
            if (strcmp(x->funcs[i]->name, name) == 0) return x->funcs[i];
    return NULL;
}

void pst_graph_set_library_parent(pst_graph *body, const pst_graph *lib) {
    body->library_parent = lib;
}

int pst_graph_num_functions(const pst_graph *g) { return g->n_funcs; }
const pst_function *pst_graph_function_at(const pst_graph *g, int i) { return g->funcs[i]; }

int pst_graph_error(const pst_graph *g) { return g->status.code; }
const pst_status *pst_graph_status(const pst_graph *g) { return &g->status; }
int pst_graph_set_error(pst_graph *g, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pst_status_vset(&g->status, code, fmt, ap);
    va_end(ap);
    return code;
}
void pst_graph_clear_error(pst_graph *g) { pst_status_clear(&g->status); }

int pst_graph_num_nodes(const pst_graph *g) { return g->n_nodes; }
pst_node *pst_graph_node(const pst_graph *g, int id) {
    return (id >= 0 && id < g->n_nodes) ? g->nodes[id] : NULL;
}
pst_node *pst_graph_find(const pst_graph *g, const char *name) {
    return pst_strmap_get(g->by_name, name);
}

pst_output pst_graph_output_by_name(const pst_graph *g, const char *spec) {
    pst_output o = {NULL, 0};
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *colon = strrchr(buf, ':');
    int idx = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end == '\0' && end != colon + 1 && v >= 0) {
            idx = (int)v;
            *colon = '\0';
        }
    }
    pst_node *n = pst_graph_find(g, buf);
    if (n && idx < n->n_outputs) {
        o.node = n;
        o.index = idx;
    }
    return o;
}

void pst_graph_set_seed(pst_graph *g, int64_t seed) { g->seed = seed; }
int64_t pst_graph_seed(const pst_graph *g) { return g->seed; }

const char *pst_graph_name_scope(const pst_graph *g) {
    return g->n_scopes ? g->scopes[g->n_scopes - 1] : "";
}

static char *join_scope(const pst_graph *g, const char *name) {
    const char *sc = pst_graph_name_scope(g);
    size_t n = strlen(sc) + strlen(name) + 2;
    char *full = malloc(n);
    PST_ASSERT(full != NULL);
    if (sc[0])
        snprintf(full, n, "%s/%s", sc, name);
    else
        snprintf(full, n, "%s", name);
    return full;
}

/* TF's unique_name: the first use of "x" is "x", then "x_1", "x_2"...; marks it used. */
static char *unique_full(pst_graph *g, const char *full, int mark) {
    if (!pst_strmap_has(g->names_in_use, full)) {
        if (mark) pst_strmap_put(g->names_in_use, full, (void *)(intptr_t)1);
        return xstrdup(full);
    }
    intptr_t k = (intptr_t)pst_strmap_get(g->names_in_use, full);
    size_t len = strlen(full) + 24;
    char *cand = malloc(len);
    PST_ASSERT(cand != NULL);
    for (;; k++) {
        snprintf(cand, len, "%s_%ld", full, (long)k);
        if (!pst_strmap_has(g->names_in_use, cand)) break;
    }
    if (mark) {
        pst_strmap_put(g->names_in_use, full, (void *)(k + 1));
        pst_strmap_put(g->names_in_use, cand, (void *)(intptr_t)1);
    }
    return cand;
}

char *pst_graph_unique_name(pst_graph *g, const char *name) {
    char *full = join_scope(g, name);
    char *u = unique_full(g, full, 0);
    free(full);
    return u;
}

char *pst_graph_unique_scope(pst_graph *g, const char *base) {
    return pst_graph_unique_name(g, base);
}

int pst_graph_push_name_scope(pst_graph *g, const char *name, int exact) {
    if (name == NULL || name[0] == '\0' || strchr(name, ':'))
        return pst_graph_set_error(g, PST_E_INVALID, "invalid name scope '%s'", name ? name : "");
    char *full = join_scope(g, name);
    char *u = exact ? xstrdup(full) : unique_full(g, full, 1);
    if (exact && !pst_strmap_has(g->names_in_use, full))
        pst_strmap_put(g->names_in_use, full, (void *)(intptr_t)1);
    free(full);
    GROW(g->scopes, g->n_scopes, g->cap_scopes);
    g->scopes[g->n_scopes++] = u;
    return 0;
}

void pst_graph_push_name_scope_abs(pst_graph *g, const char *full) {
    GROW(g->scopes, g->n_scopes, g->cap_scopes);
    g->scopes[g->n_scopes++] = xstrdup(full);
}

void pst_graph_pop_name_scope(pst_graph *g) {
    PST_ASSERT(g->n_scopes > 0);
    free(g->scopes[--g->n_scopes]);
}

const char *pst_graph_current_device(const pst_graph *g) {
    return g->n_devices ? g->devices[g->n_devices - 1] : "";
}

static int merge_device(const char *outer, const char *inner, char *out, size_t len,
                        pst_status *st) {
    pst_device_name a, b;
    if (pst_device_parse(outer, &a, st) < 0 || pst_device_parse(inner, &b, st) < 0)
        return PST_E_INVALID;
    pst_device_merge(&a, &b);
    pst_device_str(&a, out, len);
    return 0;
}

int pst_graph_push_device(pst_graph *g, const char *spec) {
    char buf[PST_DEVICE_MAX];
    pst_status st = {0};
    if (merge_device(pst_graph_current_device(g), spec ? spec : "", buf, sizeof buf, &st) < 0)
        return pst_graph_set_error(g, st.code, "%s", st.msg);
    GROW(g->devices, g->n_devices, g->cap_devices);
    g->devices[g->n_devices++] = xstrdup(buf);
    return 0;
}

void pst_graph_pop_device(pst_graph *g) {
    PST_ASSERT(g->n_devices > 0);
    free(g->devices[--g->n_devices]);
}

void pst_graph_set_device_fn(pst_graph *g, pst_device_fn fn, void *ctx) {
    g->device_fn = fn;
    g->device_ctx = ctx;
}

int pst_graph_push_control_deps(pst_graph *g, int n, pst_node *const *deps) {
    GROW(g->ctrls, g->n_ctrls, g->cap_ctrls);
    ctrl_scope *c = &g->ctrls[g->n_ctrls++];
    c->n = n;
    c->deps = dupmem(deps, (size_t)n * sizeof(pst_node *));
    return 0;
}

void pst_graph_pop_control_deps(pst_graph *g) {
    PST_ASSERT(g->n_ctrls > 0);
    free(g->ctrls[--g->n_ctrls].deps);
}

static collection *find_coll(const pst_graph *g, const char *key) {
    for (int i = 0; i < g->n_colls; i++)
        if (strcmp(g->colls[i].key, key) == 0) return &g->colls[i];
    return NULL;
}

int pst_graph_add_to_collection(pst_graph *g, const char *key, pst_output o) {
    collection *c = find_coll(g, key);
    if (c == NULL) {
        GROW(g->colls, g->n_colls, g->cap_colls);
        c = &g->colls[g->n_colls++];
        memset(c, 0, sizeof *c);
        c->key = xstrdup(key);
    }
    if (o.node == NULL) return 0;
    for (int i = 0; i < c->n; i++)
        if (c->items[i].node == o.node && c->items[i].index == o.index) return 0;
    GROW(c->items, c->n, c->cap);
    c->items[c->n++] = o;
    return 0;
}

const pst_output *pst_graph_collection(const pst_graph *g, const char *key, int *n) {
    collection *c = find_coll(g, key);
    *n = c ? c->n : 0;
    return c ? c->items : NULL;
}

int pst_graph_num_collections(const pst_graph *g) { return g->n_colls; }
const char *pst_graph_collection_key(const pst_graph *g, int i) {
    return (i >= 0 && i < g->n_colls) ? g->colls[i].key : NULL;
}
void pst_graph_clear_collection(pst_graph *g, const char *key) {
    collection *c = find_coll(g, key);
    if (c) c->n = 0;
}

static value_collection *vcoll(pst_graph *g, const char *key, int is_int64, int create) {
    for (int i = 0; i < g->n_vcolls; i++)
        if (strcmp(g->vcolls[i].key, key) == 0 && g->vcolls[i].is_int64 == is_int64) return &g->vcolls[i];
    if (!create) return NULL;
    GROW(g->vcolls, g->n_vcolls, g->cap_vcolls);
    value_collection *c = &g->vcolls[g->n_vcolls++];
    memset(c, 0, sizeof *c);
    c->key = xstrdup(key);
    c->is_int64 = is_int64;
    return c;
}

void pst_graph_add_int64_to_collection(pst_graph *g, const char *key, int64_t v) {
    value_collection *c = vcoll(g, key, 1, 1);
    GROW(c->i, c->n, c->cap);
    c->i[c->n++] = v;
}

void pst_graph_add_float_to_collection(pst_graph *g, const char *key, float v) {
    value_collection *c = vcoll(g, key, 0, 1);
    GROW(c->f, c->n, c->cap);
    c->f[c->n++] = v;
}

const int64_t *pst_graph_int64_collection(const pst_graph *g, const char *key, int *n) {
    value_collection *c = vcoll((pst_graph *)g, key, 1, 0);
    *n = c ? c->n : 0;
    return c ? c->i : NULL;
}

const float *pst_graph_float_collection(const pst_graph *g, const char *key, int *n) {
    value_collection *c = vcoll((pst_graph *)g, key, 0, 0);
    *n = c ? c->n : 0;
    return c ? c->f : NULL;
}

int pst_graph_num_value_collections(const pst_graph *g) { return g->n_vcolls; }

const char *pst_graph_value_collection_key(const pst_graph *g, int i, int *is_int64) {
    if (i < 0 || i >= g->n_vcolls) return NULL;
    if (is_int64) *is_int64 = g->vcolls[i].is_int64;
    return g->vcolls[i].key;
}

/* ---- Node builder ---------------------------------------------------------------------- */

struct pst_node_builder {
    pst_graph *g;
    const pst_op_def *op;
    char *op_name;
    char *name;
    pst_output *inputs;
    int n_inputs, cap_inputs;
    pst_node **ctrl;
    int n_ctrl, cap_ctrl;
    pst_attr *attrs;
    int n_attrs, cap_attrs;
    char *device; /* NULL: scope's */
    char *exact;  /* non-NULL: the full name to use as is */
    int failed;
};

pst_node_builder *pst_nb_new(pst_graph *g, const char *op, const char *name) {
    pst_node_builder *b = calloc(1, sizeof *b);
    PST_ASSERT(b != NULL);
    b->g = g;
    b->op_name = xstrdup(op);
    b->name = xstrdup(name ? name : op);
    b->failed = g->status.code != 0;
    if (!b->failed) {
        b->op = pst_op_lookup(op);
        if (b->op == NULL) {
            char *full = join_scope(g, b->name);
            pst_graph_set_error(g, PST_E_NOT_FOUND, "node '%s': unknown op '%s'%s", full, op,
                                pst_op_registry_size() == 0
                                    ? " (no op is registered: call pst_ops_init() first)"
                                    : "");
            free(full);
            b->failed = 1;
        }
    }
    return b;
}

void pst_nb_input(pst_node_builder *b, pst_output in) {
    if (b->failed) return;
    GROW(b->inputs, b->n_inputs, b->cap_inputs);
    b->inputs[b->n_inputs++] = in;
}

void pst_nb_inputs(pst_node_builder *b, int n, const pst_output *in) {
    for (int i = 0; i < n; i++) pst_nb_input(b, in[i]);
}

void pst_nb_control(pst_node_builder *b, pst_node *dep) {
    if (b->failed || dep == NULL) return;
    for (int i = 0; i < b->n_ctrl; i++)
        if (b->ctrl[i] == dep) return;
    GROW(b->ctrl, b->n_ctrl, b->cap_ctrl);
    b->ctrl[b->n_ctrl++] = dep;
}

void pst_nb_exact_name(pst_node_builder *b, const char *full_name) {
    if (b->failed) return;
    free(b->exact);
    b->exact = xstrdup(full_name);
}

void pst_nb_device(pst_node_builder *b, const char *spec) {
    if (b->failed) return;
    free(b->device);
    b->device = xstrdup(spec);
}

static pst_attr *nb_new_attr(pst_node_builder *b, const char *name, pst_attr_kind k) {
    for (int i = 0; i < b->n_attrs; i++)
        if (strcmp(b->attrs[i].name, name) == 0) {
            pst_attr_destroy(&b->attrs[i]);
            b->attrs[i].name = xstrdup(name);
            b->attrs[i].kind = k;
            return &b->attrs[i];
        }
    GROW(b->attrs, b->n_attrs, b->cap_attrs);
    pst_attr *a = &b->attrs[b->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    a->kind = k;
    return a;
}

void pst_nb_attr_s(pst_node_builder *b, const char *name, const char *v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_STRING)->v.s = xstrdup(v);
}
void pst_nb_attr_i(pst_node_builder *b, const char *name, int64_t v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_INT)->v.i = v;
}
void pst_nb_attr_f(pst_node_builder *b, const char *name, float v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_FLOAT)->v.f = v;
}
void pst_nb_attr_b(pst_node_builder *b, const char *name, int v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_BOOL)->v.b = v != 0;
}
void pst_nb_attr_type(pst_node_builder *b, const char *name, pst_dtype v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_TYPE)->v.type = v;
}
void pst_nb_attr_shape(pst_node_builder *b, const char *name, pst_shape v) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_SHAPE)->v.shape = v;
}
void pst_nb_attr_tensor(pst_node_builder *b, const char *name, pst_tensor *t) {
    if (!b->failed) nb_new_attr(b, name, PST_ATTR_TENSOR)->v.tensor = pst_tensor_ref(t);
}
void pst_nb_attr_list_i(pst_node_builder *b, const char *name, int n, const int64_t *v) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, name, PST_ATTR_LIST_INT);
    a->n = n;
    a->list.i = dupmem(v, (size_t)n * sizeof *v);
}
void pst_nb_attr_list_f(pst_node_builder *b, const char *name, int n, const float *v) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, name, PST_ATTR_LIST_FLOAT);
    a->n = n;
    a->list.f = dupmem(v, (size_t)n * sizeof *v);
}
void pst_nb_attr_list_s(pst_node_builder *b, const char *name, int n, const char *const *v) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, name, PST_ATTR_LIST_STRING);
    a->n = n;
    a->list.s = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) a->list.s[i] = xstrdup(v[i]);
}
void pst_nb_attr_list_type(pst_node_builder *b, const char *name, int n, const pst_dtype *v) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, name, PST_ATTR_LIST_TYPE);
    a->n = n;
    a->list.type = dupmem(v, (size_t)n * sizeof *v);
}
void pst_nb_attr_list_shape(pst_node_builder *b, const char *name, int n, const pst_shape *v) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, name, PST_ATTR_LIST_SHAPE);
    a->n = n;
    a->list.shape = dupmem(v, (size_t)n * sizeof *v);
}
void pst_nb_attr(pst_node_builder *b, const pst_attr *src) {
    if (b->failed) return;
    pst_attr *a = nb_new_attr(b, src->name, src->kind);
    free(a->name);
    pst_attr_copy(a, src, NULL);
}

static void nb_free(pst_node_builder *b) {
    free(b->op_name);
    free(b->name);
    free(b->inputs);
    free(b->ctrl);
    for (int i = 0; i < b->n_attrs; i++) pst_attr_destroy(&b->attrs[i]);
    free(b->attrs);
    free(b->device);
    free(b->exact);
    free(b);
}

void pst_node_set_num_outputs(pst_node *n, int k) {
    free(n->out_dtypes);
    free(n->out_shapes);
    n->n_outputs = k;
    n->out_dtypes = calloc((size_t)k + 1, sizeof(pst_dtype));
    n->out_shapes = calloc((size_t)k + 1, sizeof(pst_shape));
    PST_ASSERT(n->out_dtypes && n->out_shapes);
    for (int i = 0; i < k; i++) n->out_shapes[i].rank = -1;
}

static int validate_attrs(const pst_op_def *op, const pst_attr *attrs, int n, pst_status *st) {
    for (int i = 0; i < n; i++) {
        if (attrs[i].name[0] == '_') continue; /* internal attrs, as in TensorFlow */
        const pst_attr_spec *s = op->attrs;
        while (s && s->name && strcmp(s->name, attrs[i].name) != 0) s++;
        if (s == NULL || s->name == NULL)
            return pst_status_set(st, PST_E_INVALID, "op %s has no attr '%s'", op->name,
                                  attrs[i].name);
        if (s->kind != attrs[i].kind)
            return pst_status_set(st, PST_E_INVALID, "attr '%s' must be %s, got %s", s->name,
                                  pst_attr_kind_name(s->kind),
                                  pst_attr_kind_name(attrs[i].kind));
    }
    for (const pst_attr_spec *s = op->attrs; s && s->name; s++)
        if (s->required && pst_attr_find(attrs, n, s->name) == NULL)
            return pst_status_set(st, PST_E_INVALID, "missing required attr '%s' (%s)", s->name,
                                  pst_attr_kind_name(s->kind));
    return 0;
}

pst_node *pst_nb_finish(pst_node_builder *b) {
    pst_graph *g = b->g;
    pst_node *n = NULL;
    pst_status st = {0};
    char *full = NULL;
    if (b->failed || g->status.code) goto out;
    full = b->exact ? xstrdup(b->exact) : join_scope(g, b->name);
    const pst_op_def *op = b->op;
    if (b->exact && pst_strmap_has(g->by_name, full)) {
        pst_status_set(&st, PST_E_EXISTS, "a node with this name already exists");
        goto fail;
    }
    /* Inputs. */
    if (b->n_inputs < op->min_inputs || (op->max_inputs >= 0 && b->n_inputs > op->max_inputs)) {
        if (op->max_inputs == op->min_inputs)
            pst_status_set(&st, PST_E_INVALID, "op %s takes %d inputs, got %d", op->name,
                           op->min_inputs, b->n_inputs);
        else
            pst_status_set(&st, PST_E_INVALID, "op %s takes %d to %d inputs, got %d", op->name,
                           op->min_inputs, op->max_inputs, b->n_inputs);
        goto fail;
    }
    for (int i = 0; i < b->n_inputs; i++) {
        pst_output in = b->inputs[i];
        if (in.node == NULL) {
            pst_status_set(&st, PST_E_INVALID, "input %d is missing (null output)", i);
            goto fail;
        }
        if (in.node->graph != g || in.index < 0 || in.index >= in.node->n_outputs) {
            pst_status_set(&st, PST_E_INVALID, "input %d ('%s:%d') is not an output in this graph",
                           i, in.node->name, in.index);
            goto fail;
        }
    }
    for (int i = 0; i < b->n_inputs && i < 32; i++)
        if (((pst_op_ref_mask(op) >> i) & 1) &&
            !(b->inputs[i].node->op->flags & (PST_OP_VARIABLE | PST_OP_REF_OUTPUT))) {
            pst_status_set(&st, PST_E_INVALID, "input %d ('%s') must be a variable", i,
                           b->inputs[i].node->name);
            goto fail;
        }
    if (validate_attrs(op, b->attrs, b->n_attrs, &st) < 0) goto fail;

    n = calloc(1, sizeof *n);
    PST_ASSERT(n != NULL);
    n->graph = g;
    n->op = op;
    if (b->exact) {
        n->name = xstrdup(full);
        pst_strmap_put(g->names_in_use, full, (void *)(intptr_t)1);
    } else {
        n->name = unique_full(g, full, 1);
    }
    n->n_inputs = b->n_inputs;
    n->inputs = b->inputs;
    b->inputs = NULL;
    n->n_attrs = b->n_attrs;
    n->attrs = b->attrs;
    b->attrs = NULL;
    b->n_attrs = 0;
    /* Control inputs: explicit ones plus the enclosing control-dependency scopes. */
    for (int s = 0; s < g->n_ctrls; s++)
        for (int i = 0; i < g->ctrls[s].n; i++) pst_nb_control(b, g->ctrls[s].deps[i]);
    n->n_control = b->n_ctrl;
    n->control_inputs = b->ctrl;
    b->ctrl = NULL;
    /* Device: scopes merged with the explicit one, then the device function. */
    char dev[PST_DEVICE_MAX];
    if (merge_device(pst_graph_current_device(g), b->device ? b->device : "", dev, sizeof dev,
                     &st) < 0)
        goto fail_node;
    n->requested_device = xstrdup(dev);
    if (g->device_fn) {
        char out[PST_DEVICE_MAX];
        snprintf(out, sizeof out, "%s", dev);
        g->device_fn(g->device_ctx, n, dev, out);
        if (pst_device_canonical(out, dev, sizeof dev, &st) < 0) goto fail_node;
    }
    n->device = xstrdup(dev);
    /* Outputs. */
    if (op->n_outputs >= 0) pst_node_set_num_outputs(n, op->n_outputs);
    if (op->shape && op->shape(n, &st) < 0) goto fail_node;
    if (op->n_outputs < 0 && n->out_dtypes == NULL) pst_node_set_num_outputs(n, 0);
    /* String tensors reach only kernels written for them: a kernel that copies element bytes
     * would share (and double free) a string's heap bytes. */
    if (!(op->flags & PST_OP_STRINGS)) {
        for (int i = 0; i < n->n_inputs; i++)
            if (pst_output_dtype(n->inputs[i]) == PST_STRING) {
                pst_status_set(&st, PST_E_UNIMPLEMENTED, "op %s does not take string tensors "
                               "(input %d)", op->name, i);
                goto fail_node;
            }
        for (int i = 0; i < n->n_outputs; i++)
            if (n->out_dtypes[i] == PST_STRING) {
                pst_status_set(&st, PST_E_UNIMPLEMENTED, "op %s does not make string tensors "
                               "(output %d)", op->name, i);
                goto fail_node;
            }
    }

    n->id = g->n_nodes;
    if (op->flags & PST_OP_CONTROL_FLOW) g->n_control_flow++;
    GROW(g->nodes, g->n_nodes, g->cap_nodes);
    g->nodes[g->n_nodes++] = n;
    pst_strmap_put(g->by_name, n->name, n);
    goto out;

fail_node:
    if (!b->exact) pst_strmap_del(g->names_in_use, n->name);
    pst_graph_set_error(g, st.code ? st.code : PST_E_INVALID, "node '%s' (%s): %s", n->name,
                        op->name, st.msg);
    node_free(n);
    n = NULL;
    goto out;
fail:
    pst_graph_set_error(g, st.code, "node '%s' (%s): %s", full, op->name, st.msg);
out:
    free(full);
    nb_free(b);
    return n;
}

void pst_nb_abandon(pst_node_builder *b) { nb_free(b); }

int pst_graph_has_control_flow(const pst_graph *g) { return g->n_control_flow > 0; }

int pst_graph_set_back_edge(pst_graph *g, pst_node *n, int i, pst_output src) {
    if (g->status.code) return g->status.code;
    if (n == NULL || src.node == NULL || n->graph != g || src.node->graph != g || i < 0 ||
        i >= n->n_inputs || src.index < 0 || src.index >= src.node->n_outputs ||
        src.node->id <= n->id || !(n->op->flags & PST_OP_CONTROL_FLOW))
        return pst_graph_set_error(g, PST_E_INVALID, "node '%s': a back edge must come from a "
                                   "node created after a control-flow node",
                                   n ? n->name : "?");
    if (pst_output_dtype(src) != pst_output_dtype(n->inputs[i]))
        return pst_graph_set_error(g, PST_E_INVALID, "node '%s': back edge input %d from '%s' "
                                   "is %s, the node's other inputs are %s", n->name, i,
                                   src.node->name, pst_dtype_name(pst_output_dtype(src)),
                                   pst_dtype_name(pst_output_dtype(n->inputs[i])));
    n->inputs[i] = src;
    return 0;
}

pst_output pst_nb_finish_out(pst_node_builder *b) {
    pst_node *n = pst_nb_finish(b);
    pst_output o = {NULL, 0};
    if (n && n->n_outputs > 0) o.node = n;
    return o;
}

const pst_attr *pst_node_attr(const pst_node *n, const char *name) {
    return pst_attr_find(n->attrs, n->n_attrs, name);
}
int64_t pst_node_attr_i(const pst_node *n, const char *name, int64_t dflt) {
    const pst_attr *a = pst_node_attr(n, name);
    return (a && a->kind == PST_ATTR_INT) ? a->v.i : dflt;
}
float pst_node_attr_f(const pst_node *n, const char *name, float dflt) {
    const pst_attr *a = pst_node_attr(n, name);
    return (a && a->kind == PST_ATTR_FLOAT) ? a->v.f : dflt;
}
int pst_node_attr_b(const pst_node *n, const char *name, int dflt) {
    const pst_attr *a = pst_node_attr(n, name);
    return (a && a->kind == PST_ATTR_BOOL) ? a->v.b : dflt;
}
const char *pst_node_attr_s(const pst_node *n, const char *name, const char *dflt) {
    const pst_attr *a = pst_node_attr(n, name);
    return (a && a->kind == PST_ATTR_STRING) ? a->v.s : dflt;
}
pst_dtype pst_node_attr_type(const pst_node *n, const char *name, pst_dtype dflt) {
    const pst_attr *a = pst_node_attr(n, name);
    return (a && a->kind == PST_ATTR_TYPE) ? a->v.type : dflt;
}
const char *pst_node_op_name(const pst_node *n) { return n->op->name; }

const char *pst_output_name(pst_output o, char *buf, size_t len) {
    if (o.node == NULL)
        snprintf(buf, len, "<none>");
    else if (o.index == 0)
        snprintf(buf, len, "%s", o.node->name);
    else
        snprintf(buf, len, "%s:%d", o.node->name, o.index);
    return buf;
}

int pst_node_set_device(pst_node *n, const char *spec, pst_status *st) {
    char dev[PST_DEVICE_MAX];
    if (pst_device_canonical(spec, dev, sizeof dev, st) < 0) return PST_E_INVALID;
    free(n->device);
    n->device = xstrdup(dev);
    return 0;
}
