#include "metagraph.h"

#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_ops.h"
#include "op.h"
#include "ops_state.h"
#include "strmap.h"
#include "tf_graph.pb-c.h"

/* ---- A bump arena for building protobuf-c messages ------------------------------------- */

typedef struct arena {
    void **blocks;
    size_t n, cap;
} arena;

static void *arena_alloc(arena *a, size_t size) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->blocks = realloc(a->blocks, a->cap * sizeof *a->blocks);
        PST_ASSERT(a->blocks != NULL);
    }
    void *p = calloc(1, size ? size : 1);
    PST_ASSERT(p != NULL);
    a->blocks[a->n++] = p;
    return p;
}

static char *arena_strdup(arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = arena_alloc(a, n);
    memcpy(d, s, n);
    return d;
}

static void arena_free(arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->blocks[i]);
    free(a->blocks);
}

#define NEW(a, T, INIT)                                                                           \
    ({                                                                                            \
        T *p_ = arena_alloc((a), sizeof(T));                                                      \
        T init_ = INIT;                                                                           \
        *p_ = init_;                                                                              \
        p_;                                                                                       \
    })

/* ---- Shapes and tensors ---------------------------------------------------------------- */

static Tensorflow__TensorShapeProto *shape_to_proto(arena *a, const pst_shape *s) {
    Tensorflow__TensorShapeProto *p =
        NEW(a, Tensorflow__TensorShapeProto, TENSORFLOW__TENSOR_SHAPE_PROTO__INIT);
    if (s->rank < 0) {
        p->unknown_rank = 1;
        return p;
    }
    p->n_dim = (size_t)s->rank;
    p->dim = arena_alloc(a, (size_t)s->rank * sizeof *p->dim);
    for (int i = 0; i < s->rank; i++) {
        p->dim[i] = NEW(a, Tensorflow__TensorShapeProto__Dim, TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT);
        p->dim[i]->size = s->dims[i];
    }
    return p;
}

static int shape_from_proto(const Tensorflow__TensorShapeProto *p, pst_shape *s, pst_status *st) {
    if (p == NULL) {
        *s = pst_shape_scalar();
        return 0;
    }
    if (p->unknown_rank) {
        *s = pst_shape_unknown();
        return 0;
    }
    if (p->n_dim > PST_MAX_RANK)
        return pst_status_set(st, PST_E_INVALID, "shape has rank %zu, more than %d", p->n_dim,
                              PST_MAX_RANK);
    s->rank = (int)p->n_dim;
    for (size_t i = 0; i < p->n_dim; i++) {
        if (p->dim[i]->size < -1)
            return pst_status_set(st, PST_E_INVALID, "shape has a bad dim %lld",
                                  (long long)p->dim[i]->size);
        s->dims[i] = p->dim[i]->size;
    }
    return 0;
}

/* A tensor whose elements are all the same value is written as that one typed value with
 * the shape, as TensorFlow writes tf.constant(v, shape=...) (readers repeat the last value):
 * a model's all-zero constants then take bytes, not megabytes. 1 when done. */
static int tensor_to_proto_uniform(arena *a, const pst_tensor *t, Tensorflow__TensorProto *p) {
    size_t es = pst_dtype_size(t->dtype);
    if (t->n < 2 || es == 0) return 0;
    const uint8_t *d = t->data;
    for (int64_t i = 1; i < t->n; i++)
        if (memcmp(d, d + (size_t)i * es, es) != 0) return 0;
    switch (t->dtype) {
    case PST_FLOAT:
        p->n_float_val = 1;
        p->float_val = arena_alloc(a, sizeof(float));
        memcpy(p->float_val, d, sizeof(float));
        return 1;
    case PST_DOUBLE:
        p->n_double_val = 1;
        p->double_val = arena_alloc(a, sizeof(double));
        memcpy(p->double_val, d, sizeof(double));
        return 1;
    case PST_INT32:
    case PST_UINT8:
        p->n_int_val = 1;
        p->int_val = arena_alloc(a, sizeof(int32_t));
        p->int_val[0] = (int32_t)pst_tensor_get_i64(t, 0);
        return 1;
    case PST_INT64:
        p->n_int64_val = 1;
        p->int64_val = arena_alloc(a, sizeof(int64_t));
        p->int64_val[0] = pst_tensor_get_i64(t, 0);
        return 1;
    case PST_BOOL:
        p->n_bool_val = 1;
        p->bool_val = arena_alloc(a, sizeof(protobuf_c_boolean));
        p->bool_val[0] = d[0] != 0;
        return 1;
    default: return 0;
    }
}

static Tensorflow__TensorProto *tensor_to_proto(arena *a, const pst_tensor *t) {
    Tensorflow__TensorProto *p = NEW(a, Tensorflow__TensorProto, TENSORFLOW__TENSOR_PROTO__INIT);
    p->dtype = (Tensorflow__DataType)t->dtype;
    p->tensor_shape = shape_to_proto(a, &t->shape);
    if (t->dtype == PST_STRING) { /* TF keeps strings in string_val, never tensor_content */
        p->n_string_val = (size_t)t->n;
        p->string_val = arena_alloc(a, (size_t)t->n * sizeof *p->string_val);
        for (int64_t i = 0; i < t->n; i++) {
            p->string_val[i].data = (uint8_t *)pst_tensor_str(t)[i].p;
            p->string_val[i].len = pst_tensor_str(t)[i].len;
        }
        return p;
    }
    if (tensor_to_proto_uniform(a, t, p)) return p;
    p->tensor_content.len = t->nbytes;
    p->tensor_content.data = t->data; /* borrowed: packed before the tensor goes away */
    return p;
}

/* Fills a new string tensor from string_val (a shorter list repeats its last value); takes the
 * tensor and returns it, or NULL with st set. */
static pst_tensor *strings_from_proto(const Tensorflow__TensorProto *p, pst_tensor *t,
                                      pst_status *st) {
    size_t n = p->n_string_val;
    if (n > (size_t)t->n) {
        pst_status_set(st, PST_E_INVALID, "tensor has %zu strings for %lld elements", n,
                       (long long)t->n);
        pst_tensor_unref(t);
        return NULL;
    }
    for (int64_t i = 0; n > 0 && i < t->n; i++) {
        ProtobufCBinaryData b = p->string_val[(size_t)i < n ? (size_t)i : n - 1];
        if (pst_tstring_set(&pst_tensor_str(t)[i], b.data, b.len) < 0) {
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a %zu-byte string", b.len);
            pst_tensor_unref(t);
            return NULL;
        }
    }
    return t;
}

static pst_tensor *tensor_from_proto(const Tensorflow__TensorProto *p, pst_status *st) {
    pst_shape s;
    if (shape_from_proto(p->tensor_shape, &s, st) < 0) return NULL;
    pst_dtype dt = (pst_dtype)p->dtype;
    if (!pst_dtype_valid(dt)) {
        pst_status_set(st, PST_E_UNIMPLEMENTED, "tensor dtype %d is not supported", (int)p->dtype);
        return NULL;
    }
    /* The bytes the shape needs are checked against what the proto holds before allocating:
     * tensor_content must match exactly, and a few typed values broadcast over a shape may not
     * make a constant larger than a whole meta graph file may be. */
    int64_t elems, bytes;
    if (pst_shape_num_elements(&s, &elems, st) < 0) return NULL;
    if (pst_mul_overflow_i64(elems, (int64_t)pst_dtype_size(dt), &bytes)) bytes = INT64_MAX;
    if (p->tensor_content.len && (uint64_t)p->tensor_content.len != (uint64_t)bytes) {
        pst_status_set(st, PST_E_INVALID, "tensor_content has %zu bytes, shape needs %lld",
                       p->tensor_content.len, (long long)bytes);
        return NULL;
    }
    if (!p->tensor_content.len && bytes > (int64_t)PST_META_GRAPH_MAX_BYTES) {
        pst_status_set(st, PST_E_INVALID, "a constant of %lld bytes (shape with %lld elements) is "
                       "larger than the %zu bytes a meta graph may hold", (long long)bytes,
                       (long long)elems, PST_META_GRAPH_MAX_BYTES);
        return NULL;
    }
    if (dt == PST_STRING && p->tensor_content.len) {
        pst_status_set(st, PST_E_INVALID, "a string tensor has tensor_content");
        return NULL;
    }
    pst_tensor *t = pst_tensor_new_zeros(dt, s, st);
    if (t == NULL) return NULL;
    if (dt == PST_STRING) return strings_from_proto(p, t, st);
    if (p->tensor_content.len) {
        memcpy(t->data, p->tensor_content.data, t->nbytes);
        return t;
    }
    /* Typed value fields; a shorter list repeats its last value (TF's convention). */
    size_t n = 0;
    switch (dt) {
    case PST_FLOAT: n = p->n_float_val; break;
    case PST_DOUBLE: n = p->n_double_val; break;
    case PST_INT32:
    case PST_UINT8: n = p->n_int_val; break;
    case PST_INT64: n = p->n_int64_val; break;
    case PST_BOOL: n = p->n_bool_val; break;
    default: break;
    }
    if (n > (size_t)t->n) {
        pst_status_set(st, PST_E_INVALID, "tensor has %zu values for %lld elements", n,
                       (long long)t->n);
        pst_tensor_unref(t);
        return NULL;
    }
    for (int64_t i = 0; n > 0 && i < t->n; i++) {
        size_t k = (size_t)i < n ? (size_t)i : n - 1;
        double v = 0;
        switch (dt) {
        case PST_FLOAT: v = p->float_val[k]; break;
        case PST_DOUBLE: v = p->double_val[k]; break;
        case PST_INT32:
        case PST_UINT8: v = p->int_val[k]; break;
        case PST_INT64:
            pst_tensor_i64(t)[i] = p->int64_val[k];
            continue;
        case PST_BOOL: v = p->bool_val[k]; break;
        default: break;
        }
        pst_tensor_set_f64(t, i, v);
    }
    return t;
}

/* ---- Attrs ----------------------------------------------------------------------------- */

static Tensorflow__AttrValue *attr_to_proto(arena *a, const pst_attr *at) {
    Tensorflow__AttrValue *v = NEW(a, Tensorflow__AttrValue, TENSORFLOW__ATTR_VALUE__INIT);
    Tensorflow__AttrValue__ListValue *l = NULL;
    if (at->kind >= PST_ATTR_LIST_STRING) {
        l = NEW(a, Tensorflow__AttrValue__ListValue, TENSORFLOW__ATTR_VALUE__LIST_VALUE__INIT);
        v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST;
        v->list = l;
    }
    size_t n = (size_t)at->n;
    switch (at->kind) {
    case PST_ATTR_STRING:
        v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_S;
        v->s.data = (uint8_t *)at->v.s;
        v->s.len = strlen(at->v.s);
        break;
    case PST_ATTR_INT: v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_I; v->i = at->v.i; break;
    case PST_ATTR_FLOAT: v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_F; v->f = at->v.f; break;
    case PST_ATTR_BOOL: v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_B; v->b = at->v.b; break;
    case PST_ATTR_TYPE:
        v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
        v->type = (Tensorflow__DataType)at->v.type;
        break;
    case PST_ATTR_SHAPE:
        v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_SHAPE;
        v->shape = shape_to_proto(a, &at->v.shape);
        break;
    case PST_ATTR_TENSOR:
        v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
        v->tensor = tensor_to_proto(a, at->v.tensor);
        break;
    case PST_ATTR_LIST_STRING:
        l->n_s = n;
        l->s = arena_alloc(a, n * sizeof *l->s);
        for (size_t i = 0; i < n; i++) {
            l->s[i].data = (uint8_t *)at->list.s[i];
            l->s[i].len = strlen(at->list.s[i]);
        }
        break;
    case PST_ATTR_LIST_INT:
        l->n_i = n;
        l->i = at->list.i;
        break;
    case PST_ATTR_LIST_FLOAT:
        l->n_f = n;
        l->f = at->list.f;
        break;
    case PST_ATTR_LIST_BOOL:
        l->n_b = n;
        l->b = arena_alloc(a, n * sizeof *l->b);
        for (size_t i = 0; i < n; i++) l->b[i] = at->list.b[i];
        break;
    case PST_ATTR_LIST_TYPE:
        l->n_type = n;
        l->type = arena_alloc(a, n * sizeof *l->type);
        for (size_t i = 0; i < n; i++) l->type[i] = (Tensorflow__DataType)at->list.type[i];
        break;
    case PST_ATTR_LIST_SHAPE:
        l->n_shape = n;
        l->shape = arena_alloc(a, n * sizeof *l->shape);
        for (size_t i = 0; i < n; i++) l->shape[i] = shape_to_proto(a, &at->list.shape[i]);
        break;
    case PST_ATTR_LIST_TENSOR:
        l->n_tensor = n;
        l->tensor = arena_alloc(a, n * sizeof *l->tensor);
        for (size_t i = 0; i < n; i++) l->tensor[i] = tensor_to_proto(a, at->list.tensor[i]);
        break;
    default: break;
    }
    return v;
}

static pst_attr_kind spec_kind(const pst_op_def *op, const char *name) {
    for (const pst_attr_spec *s = op ? op->attrs : NULL; s && s->name; s++)
        if (strcmp(s->name, name) == 0) return s->kind;
    return PST_ATTR_NONE;
}

static char *bin_strdup(ProtobufCBinaryData b) {
    char *s = malloc(b.len + 1);
    PST_ASSERT(s != NULL);
    if (b.len) memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    return s;
}

/* Fills a pst_attr from an AttrValue (name set by the caller); 0 or an error. */
static int attr_from_proto(const pst_op_def *op, const char *name, const Tensorflow__AttrValue *v,
                           pst_attr *at, pst_status *st) {
    memset(at, 0, sizeof *at);
    /* A peer's GraphDef may hold an attr entry with a key and no value, or a value case whose
     * message is missing: errors, never dereferences. */
    if (v == NULL) return pst_status_set(st, PST_E_INVALID, "the attr has no value");
    if ((v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_SHAPE && !v->shape) ||
        (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_TENSOR && !v->tensor) ||
        (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_LIST && !v->list))
        return pst_status_set(st, PST_E_INVALID, "the attr's value is empty");
    at->name = strdup(name);
    if (!at->name) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    switch (v->value_case) {
    case TENSORFLOW__ATTR_VALUE__VALUE_S: at->kind = PST_ATTR_STRING; at->v.s = bin_strdup(v->s); break;
    case TENSORFLOW__ATTR_VALUE__VALUE_I: at->kind = PST_ATTR_INT; at->v.i = v->i; break;
    case TENSORFLOW__ATTR_VALUE__VALUE_F: at->kind = PST_ATTR_FLOAT; at->v.f = v->f; break;
    case TENSORFLOW__ATTR_VALUE__VALUE_B: at->kind = PST_ATTR_BOOL; at->v.b = v->b; break;
    case TENSORFLOW__ATTR_VALUE__VALUE_TYPE:
        at->kind = PST_ATTR_TYPE;
        at->v.type = (pst_dtype)(v->type >= 100 ? v->type - 100 : v->type);
        break;
    case TENSORFLOW__ATTR_VALUE__VALUE_SHAPE:
        at->kind = PST_ATTR_SHAPE;
        return shape_from_proto(v->shape, &at->v.shape, st);
    case TENSORFLOW__ATTR_VALUE__VALUE_FUNC: /* a function of the library, by name */
        at->kind = PST_ATTR_STRING;
        at->v.s = strdup(v->func && v->func->name ? v->func->name : "");
        break;
    case TENSORFLOW__ATTR_VALUE__VALUE_TENSOR:
        at->kind = PST_ATTR_TENSOR;
        at->v.tensor = tensor_from_proto(v->tensor, st);
        return at->v.tensor ? 0 : PST_E_INVALID;
    case TENSORFLOW__ATTR_VALUE__VALUE_LIST: {
        const Tensorflow__AttrValue__ListValue *l = v->list;
        pst_attr_kind k = spec_kind(op, name);
        if (l->n_s) k = PST_ATTR_LIST_STRING;
        else if (l->n_i) k = PST_ATTR_LIST_INT;
        else if (l->n_f) k = PST_ATTR_LIST_FLOAT;
        else if (l->n_b) k = PST_ATTR_LIST_BOOL;
        else if (l->n_type) k = PST_ATTR_LIST_TYPE;
        else if (l->n_shape) k = PST_ATTR_LIST_SHAPE;
        else if (l->n_tensor) k = PST_ATTR_LIST_TENSOR;
        else if (k < PST_ATTR_LIST_STRING) k = PST_ATTR_LIST_INT;
        at->kind = k;
        switch (k) {
        case PST_ATTR_LIST_STRING:
            at->n = (int)l->n_s;
            at->list.s = calloc(l->n_s + 1, sizeof(char *));
            for (size_t i = 0; i < l->n_s; i++) at->list.s[i] = bin_strdup(l->s[i]);
            break;
        case PST_ATTR_LIST_INT:
            at->n = (int)l->n_i;
            at->list.i = malloc((l->n_i + 1) * sizeof(int64_t));
            if (l->n_i) memcpy(at->list.i, l->i, l->n_i * sizeof(int64_t));
            break;
        case PST_ATTR_LIST_FLOAT:
            at->n = (int)l->n_f;
            at->list.f = malloc((l->n_f + 1) * sizeof(float));
            if (l->n_f) memcpy(at->list.f, l->f, l->n_f * sizeof(float));
            break;
        case PST_ATTR_LIST_BOOL:
            at->n = (int)l->n_b;
            at->list.b = malloc((l->n_b + 1) * sizeof(int));
            for (size_t i = 0; i < l->n_b; i++) at->list.b[i] = l->b[i];
            break;
        case PST_ATTR_LIST_TYPE:
            at->n = (int)l->n_type;
            at->list.type = malloc((l->n_type + 1) * sizeof(pst_dtype));
            for (size_t i = 0; i < l->n_type; i++) at->list.type[i] = (pst_dtype)l->type[i];
            break;
        case PST_ATTR_LIST_SHAPE:
            at->n = (int)l->n_shape;
            at->list.shape = calloc(l->n_shape + 1, sizeof(pst_shape));
            for (size_t i = 0; i < l->n_shape; i++)
                if (shape_from_proto(l->shape[i], &at->list.shape[i], st) < 0) return PST_E_INVALID;
            break;
        case PST_ATTR_LIST_TENSOR:
            at->n = (int)l->n_tensor;
            at->list.tensor = calloc(l->n_tensor + 1, sizeof(pst_tensor *));
            for (size_t i = 0; i < l->n_tensor; i++)
                if ((at->list.tensor[i] = tensor_from_proto(l->tensor[i], st)) == NULL)
                    return PST_E_INVALID;
            break;
        default: break;
        }
        break;
    }
    default:
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "attr '%s' has an unsupported value kind %d",
                              name, (int)v->value_case);
    }
    return 0;
}

/* ---- Export ---------------------------------------------------------------------------- */

static char *output_ref(arena *a, pst_output o) {
    char buf[1100];
    pst_output_name(o, buf, sizeof buf);
    return arena_strdup(a, buf);
}

static void *arena_pb_alloc(void *data, size_t size) { return arena_alloc(data, size); }
static void arena_pb_free(void *data, void *p) { (void)data, (void)p; }

/* The function library back as it was imported (each FunctionDef's own bytes); functions
 * pstrain built itself have no definition to write. */
static void library_to_proto(arena *a, const pst_graph *g, Tensorflow__GraphDef *gd) {
    int n = pst_graph_num_functions(g), k = 0;
    if (n == 0) return;
    Tensorflow__FunctionDefLibrary *lib =
        NEW(a, Tensorflow__FunctionDefLibrary, TENSORFLOW__FUNCTION_DEF_LIBRARY__INIT);
    lib->function = arena_alloc(a, (size_t)n * sizeof *lib->function);
    ProtobufCAllocator al = {.alloc = arena_pb_alloc, .free = arena_pb_free, .allocator_data = a};
    for (int i = 0; i < n; i++) {
        const pst_function *f = pst_graph_function_at(g, i);
        Tensorflow__FunctionDef *fd =
            f->def ? tensorflow__function_def__unpack(&al, f->def_len, f->def) : NULL;
        if (fd) lib->function[k++] = fd;
    }
    lib->n_function = (size_t)k;
    if (k) gd->library = lib;
}

/* A call of a library function that the importer made from a node whose op was the
 * function's name (a Defun call: a StatefulPartitionedCall with `f` and no Tout) goes back as
 * that node. Attrs naming a function of the library go as TF's func attrs. */
static int is_defun_call(const pst_node *n) {
    return strcmp(n->op->name, "StatefulPartitionedCall") == 0 && !pst_node_attr(n, "Tout") &&
           pst_node_attr(n, "f") && pst_node_attr(n, "f")->kind == PST_ATTR_STRING;
}

static int is_function_attr(const pst_graph *g, const pst_attr *at) {
    return at->kind == PST_ATTR_STRING &&
           (strcmp(at->name, "f") == 0 || strcmp(at->name, "predicate") == 0 ||
            strcmp(at->name, "dataset_factory") == 0) &&
           pst_graph_function(g, at->v.s) != NULL;
}

static Tensorflow__GraphDef *graph_to_proto(arena *a, const pst_graph *g, int clear_devices) {
    Tensorflow__GraphDef *gd = NEW(a, Tensorflow__GraphDef, TENSORFLOW__GRAPH_DEF__INIT);
    library_to_proto(a, g, gd);
    size_t nn = (size_t)pst_graph_num_nodes(g);
    gd->n_node = nn;
    gd->node = arena_alloc(a, nn * sizeof *gd->node);
    for (size_t i = 0; i < nn; i++) {
        const pst_node *n = pst_graph_node(g, (int)i);
        Tensorflow__NodeDef *nd = NEW(a, Tensorflow__NodeDef, TENSORFLOW__NODE_DEF__INIT);
        nd->name = n->name;
        nd->op = (char *)n->op->name;
        nd->device = clear_devices ? "" : n->device;
        nd->n_input = (size_t)(n->n_inputs + n->n_control);
        nd->input = arena_alloc(a, nd->n_input * sizeof *nd->input);
        for (int k = 0; k < n->n_inputs; k++) nd->input[k] = output_ref(a, n->inputs[k]);
        for (int k = 0; k < n->n_control; k++) {
            size_t len = strlen(n->control_inputs[k]->name) + 2;
            char *s = arena_alloc(a, len);
            snprintf(s, len, "^%s", n->control_inputs[k]->name);
            nd->input[n->n_inputs + k] = s;
        }
        int defun = is_defun_call(n);
        if (defun) nd->op = (char *)pst_node_attr_s(n, "f", "");
        nd->attr = arena_alloc(a, (size_t)n->n_attrs * sizeof *nd->attr);
        nd->n_attr = 0;
        for (int k = 0; k < n->n_attrs; k++) {
            const pst_attr *at = &n->attrs[k];
            if (defun && strcmp(at->name, "f") == 0) continue;
            Tensorflow__NodeDef__AttrEntry *e =
                NEW(a, Tensorflow__NodeDef__AttrEntry, TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT);
            e->key = at->name;
            if (is_function_attr(g, at)) {
                e->value = NEW(a, Tensorflow__AttrValue, TENSORFLOW__ATTR_VALUE__INIT);
                e->value->value_case = TENSORFLOW__ATTR_VALUE__VALUE_FUNC;
                e->value->func = NEW(a, Tensorflow__NameAttrList, TENSORFLOW__NAME_ATTR_LIST__INIT);
                e->value->func->name = at->v.s;
            } else {
                e->value = attr_to_proto(a, at);
            }
            nd->attr[nd->n_attr++] = e;
        }
        gd->node[i] = nd;
    }
    gd->versions = NEW(a, Tensorflow__VersionDef, TENSORFLOW__VERSION_DEF__INIT);
    gd->versions->producer = 27;
    return gd;
}

static int pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len, pst_status *st) {
    size_t n = protobuf_c_message_get_packed_size(m);
    *buf = malloc(n ? n : 1);
    if (*buf == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory (%zu bytes)", n);
    *len = protobuf_c_message_pack(m, *buf);
    return 0;
}

int pst_graph_def_export(const pst_graph *g, int clear_devices, uint8_t **buf, size_t *len,
                         pst_status *st) {
    arena a = {0};
    Tensorflow__GraphDef *gd = graph_to_proto(&a, g, clear_devices);
    int rc = pack(&gd->base, buf, len, st);
    arena_free(&a);
    return rc;
}

static int wanted(const pst_meta_export_opts *o, const char *key) {
    if (o == NULL || o->collection_list == NULL) return 1;
    for (const char *const *k = o->collection_list; *k; k++)
        if (strcmp(*k, key) == 0) return 1;
    return 0;
}

static int is_variable_collection(const pst_graph *g, const char *key) {
    int n;
    const pst_output *items = pst_graph_collection(g, key, &n);
    if (n == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!(items[i].node->op->flags & PST_OP_VARIABLE)) return 0;
    /* The collections TensorFlow registers with VariableDef protos ("global_step" included:
     * TF writes the global step as a variable record, not a node list). */
    return strcmp(key, PST_GLOBAL_VARIABLES) == 0 || strcmp(key, PST_TRAINABLE_VARIABLES) == 0 ||
           strcmp(key, PST_LOCAL_VARIABLES) == 0 || strcmp(key, PST_MODEL_VARIABLES) == 0 ||
           strcmp(key, "metric_variables") == 0 || strcmp(key, "global_step") == 0;
}

static int in_collection(const pst_graph *g, const char *key, const pst_node *n) {
    int k;
    const pst_output *items = pst_graph_collection(g, key, &k);
    for (int i = 0; i < k; i++)
        if (items[i].node == n) return 1;
    return 0;
}

static ProtobufCBinaryData variable_def(arena *a, const pst_graph *g, pst_output v) {
    Tensorflow__VariableDef vd = TENSORFLOW__VARIABLE_DEF__INIT;
    char buf[1100];
    snprintf(buf, sizeof buf, "%s:0", v.node->name);
    vd.variable_name = arena_strdup(a, buf);
    pst_node *init = pst_graph_find(g, (snprintf(buf, sizeof buf, "%s/Assign", v.node->name), buf));
    vd.initializer_name = init ? init->name : "";
    /* A tensor name ("x/Initializer/zeros:0"), as TensorFlow writes it, even for output 0. */
    if (init && init->n_inputs == 2) {
        char iv[1100];
        snprintf(iv, sizeof iv, "%s:%d", init->inputs[1].node->name, init->inputs[1].index);
        vd.initial_value_name = arena_strdup(a, iv);
    }
    vd.snapshot_name = arena_strdup(a, (snprintf(buf, sizeof buf, "%s/read:0", v.node->name), buf));
    vd.trainable = in_collection(g, PST_TRAINABLE_VARIABLES, v.node);
    const pst_attr *full = pst_node_attr(v.node, "_save_slice_full_name");
    if (full) {
        Tensorflow__SaveSliceInfoDef *si =
            NEW(a, Tensorflow__SaveSliceInfoDef, TENSORFLOW__SAVE_SLICE_INFO_DEF__INIT);
        si->full_name = full->v.s;
        const pst_attr *fs = pst_node_attr(v.node, "_save_slice_full_shape");
        const pst_attr *off = pst_node_attr(v.node, "_save_slice_var_offset");
        const pst_attr *vs = pst_node_attr(v.node, "_save_slice_var_shape");
        if (fs) { si->n_full_shape = (size_t)fs->n; si->full_shape = fs->list.i; }
        if (off) { si->n_var_offset = (size_t)off->n; si->var_offset = off->list.i; }
        if (vs) { si->n_var_shape = (size_t)vs->n; si->var_shape = vs->list.i; }
        vd.save_slice_info_def = si;
    }
    ProtobufCBinaryData b;
    b.len = tensorflow__variable_def__get_packed_size(&vd);
    b.data = arena_alloc(a, b.len);
    tensorflow__variable_def__pack(&vd, b.data);
    return b;
}

/* ---- The saver subgraph (export) ------------------------------------------------------- */

static Tensorflow__NodeDef *saver_node(arena *a, const char *scope, const char *name,
                                       const char *op, size_t n_input, size_t n_attr) {
    Tensorflow__NodeDef *nd = NEW(a, Tensorflow__NodeDef, TENSORFLOW__NODE_DEF__INIT);
    char full[1100];
    snprintf(full, sizeof full, "%s/%s", scope, name);
    nd->name = arena_strdup(a, full);
    nd->op = (char *)op;
    nd->device = "";
    nd->input = arena_alloc(a, (n_input ? n_input : 1) * sizeof *nd->input);
    nd->attr = arena_alloc(a, (n_attr ? n_attr : 1) * sizeof *nd->attr);
    return nd;
}

static Tensorflow__AttrValue *saver_attr(arena *a, Tensorflow__NodeDef *nd, const char *key) {
    Tensorflow__NodeDef__AttrEntry *e =
        NEW(a, Tensorflow__NodeDef__AttrEntry, TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT);
    e->key = (char *)key;
    e->value = NEW(a, Tensorflow__AttrValue, TENSORFLOW__ATTR_VALUE__INIT);
    nd->attr[nd->n_attr++] = e;
    return e->value;
}

static void saver_attr_type(arena *a, Tensorflow__NodeDef *nd, const char *key, int dtype) {
    Tensorflow__AttrValue *v = saver_attr(a, nd, key);
    v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
    v->type = (Tensorflow__DataType)dtype;
}

static void saver_attr_bool(arena *a, Tensorflow__NodeDef *nd, const char *key, int b) {
    Tensorflow__AttrValue *v = saver_attr(a, nd, key);
    v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_B;
    v->b = b;
}

static Tensorflow__AttrValue__ListValue *saver_attr_list(arena *a, Tensorflow__NodeDef *nd,
                                                         const char *key) {
    Tensorflow__AttrValue *v = saver_attr(a, nd, key);
    v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST;
    v->list = NEW(a, Tensorflow__AttrValue__ListValue, TENSORFLOW__ATTR_VALUE__LIST_VALUE__INIT);
    return v->list;
}

/* `_class: ["loc:@NODE"]`, TensorFlow's colocation record. */
static void saver_attr_colocate(arena *a, Tensorflow__NodeDef *nd, const char *with) {
    Tensorflow__AttrValue__ListValue *l = saver_attr_list(a, nd, "_class");
    char buf[1100];
    snprintf(buf, sizeof buf, "loc:@%s", with);
    l->n_s = 1;
    l->s = arena_alloc(a, sizeof *l->s);
    l->s[0].data = (uint8_t *)arena_strdup(a, buf);
    l->s[0].len = strlen(buf);
}

/* A DT_STRING Const: a scalar (n < 0) or a vector of n strings. */
static Tensorflow__NodeDef *saver_string_const(arena *a, const char *scope, const char *name,
                                               int n, char *const *vals) {
    Tensorflow__NodeDef *nd = saver_node(a, scope, name, "Const", 0, 2);
    saver_attr_type(a, nd, "dtype", PST_STRING);
    Tensorflow__AttrValue *v = saver_attr(a, nd, "value");
    v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
    Tensorflow__TensorProto *t = NEW(a, Tensorflow__TensorProto, TENSORFLOW__TENSOR_PROTO__INIT);
    t->dtype = (Tensorflow__DataType)PST_STRING;
    pst_shape shape = n < 0 ? pst_shape_scalar() : pst_shape_1d(n);
    t->tensor_shape = shape_to_proto(a, &shape);
    size_t k = n < 0 ? 1 : (size_t)n;
    t->n_string_val = k;
    t->string_val = arena_alloc(a, (k ? k : 1) * sizeof *t->string_val);
    for (size_t i = 0; i < k; i++) {
        t->string_val[i].data = (uint8_t *)vals[i];
        t->string_val[i].len = strlen(vals[i]);
    }
    v->tensor = t;
    return nd;
}

static void saver_attr_scalar_shape(arena *a, Tensorflow__NodeDef *nd) {
    Tensorflow__AttrValue *v = saver_attr(a, nd, "shape");
    v->value_case = TENSORFLOW__ATTR_VALUE__VALUE_SHAPE;
    pst_shape s = pst_shape_scalar();
    v->shape = shape_to_proto(a, &s);
}

typedef struct saveable {
    const pst_node *var;
    const char *name; /* checkpoint key */
    char *spec;       /* "" or "full dims offsets,lengths" */
} saveable;

static int cmp_saveable(const void *x, const void *y) {
    const saveable *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->var->id > b->var->id) - (a->var->id < b->var->id);
}

/* TF's slice spec of a partitioned part: full shape, then start,length per dimension; a
 * dimension the part covers whole is "-" (stored without a length, keyed with -1). */
static char *slice_spec(arena *a, const pst_node *v) {
    const pst_attr *fs = pst_node_attr(v, "_save_slice_full_shape");
    const pst_attr *off = pst_node_attr(v, "_save_slice_var_offset");
    const pst_attr *vs = pst_node_attr(v, "_save_slice_var_shape");
    if (!fs || !off || !vs || fs->n != off->n || fs->n != vs->n) return "";
    size_t cap = 64 + (size_t)fs->n * 64, n = 0;
    char *s = arena_alloc(a, cap);
    for (int d = 0; d < fs->n; d++)
        n += (size_t)snprintf(s + n, cap - n, "%s%lld", d ? " " : "", (long long)fs->list.i[d]);
    for (int d = 0; d < fs->n; d++) {
        int whole = off->list.i[d] == 0 && vs->list.i[d] == fs->list.i[d];
        if (whole)
            n += (size_t)snprintf(s + n, cap - n, "%s-", d ? ":" : " ");
        else
            n += (size_t)snprintf(s + n, cap - n, "%s%lld,%lld", d ? ":" : " ",
                                  (long long)off->list.i[d], (long long)vs->list.i[d]);
    }
    return s;
}

/* "save", or the first of "save_1", "save_2"... no node of g lives under. */
static void saver_scope(const pst_graph *g, char *out, size_t len) {
    for (int k = 0;; k++) {
        if (k == 0) snprintf(out, len, "save");
        else snprintf(out, len, "save_%d", k);
        size_t n = strlen(out);
        int taken = 0;
        for (int i = 0; i < pst_graph_num_nodes(g) && !taken; i++) {
            const char *name = pst_graph_node(g, i)->name;
            taken = strncmp(name, out, n) == 0 && (name[n] == '\0' || name[n] == '/');
        }
        if (!taken) return;
    }
}

/* Appends TensorFlow's non-sharded V2 saver subgraph for the saver's variables to gd and
 * fills sd's names. */
static void add_saver_subgraph(arena *a, const pst_graph *g, const pst_saver_def *def,
                               int clear_devices, Tensorflow__GraphDef *gd,
                               Tensorflow__SaverDef *sd) {
    int n = def->n_vars;
    const pst_output *vars = def->vars;
    if (vars == NULL) vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    saveable *sv = arena_alloc(a, (size_t)(n + 1) * sizeof *sv);
    int m = 0;
    for (int i = 0; i < n; i++) {
        const pst_node *v = vars[i].node;
        if (v == NULL || !(v->op->flags & PST_OP_VARIABLE)) continue;
        const char *full = pst_node_attr_s(v, "_save_slice_full_name", NULL);
        sv[m].var = v;
        sv[m].name = def->names && def->names[i] ? def->names[i] : full ? full : v->name;
        sv[m].spec = full ? slice_spec(a, v) : "";
        m++;
    }
    qsort(sv, (size_t)m, sizeof *sv, cmp_saveable);
    char scope[64];
    saver_scope(g, scope, sizeof scope);
    char **names = arena_alloc(a, (size_t)(m + 1) * sizeof *names);
    char **specs = arena_alloc(a, (size_t)(m + 1) * sizeof *specs);
    for (int i = 0; i < m; i++) {
        names[i] = (char *)sv[i].name;
        specs[i] = sv[i].spec;
    }
    size_t extra = 11 + (size_t)m, at = gd->n_node;
    Tensorflow__NodeDef **nodes = arena_alloc(a, (at + extra) * sizeof *nodes);
    if (at) memcpy(nodes, gd->node, at * sizeof *nodes);
    gd->node = nodes;
    char full[1100];
    /* The filename: a string placeholder with a default, fed by Saver.save/restore. */
    char *model = "model";
    nodes[at++] = saver_string_const(a, scope, "filename/input", -1, &model);
    Tensorflow__NodeDef *fname = saver_node(a, scope, "filename", "PlaceholderWithDefault", 1, 2);
    fname->input[fname->n_input++] = nodes[at - 1]->name;
    saver_attr_type(a, fname, "dtype", PST_STRING);
    saver_attr_scalar_shape(a, fname);
    nodes[at++] = fname;
    Tensorflow__NodeDef *cst = saver_node(a, scope, "Const", "PlaceholderWithDefault", 1, 2);
    cst->input[cst->n_input++] = fname->name;
    saver_attr_type(a, cst, "dtype", PST_STRING);
    saver_attr_scalar_shape(a, cst);
    nodes[at++] = cst;
    /* Save: SaveV2(prefix, tensor_names, shape_and_slices, variables...). */
    Tensorflow__NodeDef *sn = saver_string_const(a, scope, "SaveV2/tensor_names", m, names);
    Tensorflow__NodeDef *ss = saver_string_const(a, scope, "SaveV2/shape_and_slices", m, specs);
    nodes[at++] = sn;
    nodes[at++] = ss;
    Tensorflow__NodeDef *save = saver_node(a, scope, "SaveV2", "SaveV2", 3 + (size_t)m, 1);
    save->input[save->n_input++] = cst->name;
    save->input[save->n_input++] = sn->name;
    save->input[save->n_input++] = ss->name;
    Tensorflow__AttrValue__ListValue *dts = saver_attr_list(a, save, "dtypes");
    dts->type = arena_alloc(a, (size_t)(m + 1) * sizeof *dts->type);
    for (int i = 0; i < m; i++) {
        save->input[save->n_input++] = sv[i].var->name;
        dts->type[dts->n_type++] = (Tensorflow__DataType)sv[i].var->out_dtypes[0];
    }
    nodes[at++] = save;
    Tensorflow__NodeDef *dep = saver_node(a, scope, "control_dependency", "Identity", 2, 2);
    dep->input[dep->n_input++] = cst->name;
    snprintf(full, sizeof full, "^%s", save->name);
    dep->input[dep->n_input++] = arena_strdup(a, full);
    saver_attr_type(a, dep, "T", PST_STRING);
    saver_attr_colocate(a, dep, cst->name);
    nodes[at++] = dep;
    /* Restore: RestoreV2, then one Assign per variable, grouped by restore_all. */
    Tensorflow__NodeDef *rn = saver_string_const(a, scope, "RestoreV2/tensor_names", m, names);
    Tensorflow__NodeDef *rs = saver_string_const(a, scope, "RestoreV2/shape_and_slices", m, specs);
    nodes[at++] = rn;
    nodes[at++] = rs;
    Tensorflow__NodeDef *rest = saver_node(a, scope, "RestoreV2", "RestoreV2", 3, 1);
    rest->input[rest->n_input++] = cst->name;
    rest->input[rest->n_input++] = rn->name;
    rest->input[rest->n_input++] = rs->name;
    Tensorflow__AttrValue__ListValue *rdts = saver_attr_list(a, rest, "dtypes");
    rdts->n_type = dts->n_type;
    rdts->type = dts->type;
    nodes[at++] = rest;
    Tensorflow__NodeDef *all = saver_node(a, scope, "restore_all", "NoOp", (size_t)m, 0);
    for (int i = 0; i < m; i++) {
        char an[32];
        if (i == 0) snprintf(an, sizeof an, "Assign");
        else snprintf(an, sizeof an, "Assign_%d", i);
        Tensorflow__NodeDef *as = saver_node(a, scope, an, "Assign", 2, 4);
        as->input[as->n_input++] = sv[i].var->name;
        snprintf(full, sizeof full, "%s:%d", rest->name, i);
        as->input[as->n_input++] = arena_strdup(a, full);
        as->device = clear_devices ? "" : sv[i].var->device;
        saver_attr_type(a, as, "T", sv[i].var->out_dtypes[0]);
        saver_attr_bool(a, as, "use_locking", 1);
        saver_attr_bool(a, as, "validate_shape", 1);
        saver_attr_colocate(a, as, sv[i].var->name);
        nodes[at++] = as;
        snprintf(full, sizeof full, "^%s", as->name);
        all->input[all->n_input++] = arena_strdup(a, full);
    }
    nodes[at++] = all;
    gd->n_node = at;
    snprintf(full, sizeof full, "%s:0", cst->name);
    sd->filename_tensor_name = arena_strdup(a, full);
    snprintf(full, sizeof full, "%s:0", dep->name);
    sd->save_tensor_name = arena_strdup(a, full);
    sd->restore_op_name = all->name;
}

/* ---- Signatures and SavedModel (export) ------------------------------------------------ */

static Tensorflow__SignatureDef__InputsEntry **signature_tensors(arena *a,
                                                                 const pst_signature_tensor *ts,
                                                                 int n) {
    /* Inputs and outputs entries have the same layout (key, TensorInfo). */
    Tensorflow__SignatureDef__InputsEntry **es = arena_alloc(a, (size_t)(n + 1) * sizeof *es);
    for (int i = 0; i < n; i++) {
        Tensorflow__SignatureDef__InputsEntry *e = NEW(a, Tensorflow__SignatureDef__InputsEntry,
                                                       TENSORFLOW__SIGNATURE_DEF__INPUTS_ENTRY__INIT);
        e->key = (char *)ts[i].key;
        Tensorflow__TensorInfo *ti = NEW(a, Tensorflow__TensorInfo, TENSORFLOW__TENSOR_INFO__INIT);
        char name[1100];
        snprintf(name, sizeof name, "%s:%d", ts[i].tensor.node->name, ts[i].tensor.index);
        ti->name = arena_strdup(a, name);
        ti->dtype = (Tensorflow__DataType)pst_output_dtype(ts[i].tensor);
        pst_shape sh = pst_output_shape(ts[i].tensor);
        ti->tensor_shape = shape_to_proto(a, &sh);
        e->value = ti;
        es[i] = e;
    }
    return es;
}

static void add_signatures(arena *a, const pst_meta_export_opts *o, Tensorflow__MetaGraphDef *mg) {
    int n = o ? o->n_signatures : 0;
    if (n <= 0) return;
    mg->signature_def = arena_alloc(a, (size_t)n * sizeof *mg->signature_def);
    for (int i = 0; i < n; i++) {
        const pst_signature_def *d = &o->signatures[i];
        Tensorflow__SignatureDef *sd =
            NEW(a, Tensorflow__SignatureDef, TENSORFLOW__SIGNATURE_DEF__INIT);
        sd->method_name = (char *)d->method_name;
        sd->n_inputs = (size_t)d->n_inputs;
        sd->inputs = signature_tensors(a, d->inputs, d->n_inputs);
        sd->n_outputs = (size_t)d->n_outputs;
        sd->outputs = (Tensorflow__SignatureDef__OutputsEntry **)signature_tensors(a, d->outputs,
                                                                                   d->n_outputs);
        Tensorflow__MetaGraphDef__SignatureDefEntry *e =
            NEW(a, Tensorflow__MetaGraphDef__SignatureDefEntry,
                TENSORFLOW__META_GRAPH_DEF__SIGNATURE_DEF_ENTRY__INIT);
        e->key = (char *)d->name;
        e->value = sd;
        mg->signature_def[mg->n_signature_def++] = e;
    }
}

int pst_saved_model_export(const pst_graph *g, const pst_meta_export_opts *o, uint8_t **buf,
                           size_t *len, pst_status *st) {
    uint8_t *mg;
    size_t mlen;
    int rc = pst_meta_graph_export(g, o, &mg, &mlen, st);
    if (rc < 0) return rc;
    /* SavedModel{saved_model_schema_version: 1, meta_graphs: [the MetaGraphDef]} */
    *buf = malloc(mlen + 16);
    if (*buf == NULL) {
        free(mg);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory (%zu bytes)", mlen);
    }
    size_t n = 0;
    (*buf)[n++] = 0x08; /* field 1, varint */
    (*buf)[n++] = 0x01;
    (*buf)[n++] = 0x12; /* field 2, length-delimited */
    for (size_t v = mlen; ; v >>= 7) {
        (*buf)[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80) break;
    }
    memcpy(*buf + n, mg, mlen);
    *len = n + mlen;
    free(mg);
    return 0;
}

int pst_meta_graph_export(const pst_graph *g, const pst_meta_export_opts *o, uint8_t **buf,
                          size_t *len, pst_status *st) {
    arena a = {0};
    Tensorflow__MetaGraphDef mg = TENSORFLOW__META_GRAPH_DEF__INIT;
    mg.graph_def = graph_to_proto(&a, g, o && o->clear_devices);
    mg.meta_info_def =
        NEW(&a, Tensorflow__MetaGraphDef__MetaInfoDef, TENSORFLOW__META_GRAPH_DEF__META_INFO_DEF__INIT);
    mg.meta_info_def->meta_graph_version = "v1";
    mg.meta_info_def->tensorflow_version = "1.15.0 (pstrain)";
    mg.meta_info_def->tensorflow_git_version = "pstrain";
    if (o && o->tags) {
        size_t nt = 0;
        while (o->tags[nt]) nt++;
        mg.meta_info_def->n_tags = nt;
        mg.meta_info_def->tags = (char **)o->tags;
    }
    if (o && o->saver_def) {
        Tensorflow__SaverDef *sd = NEW(&a, Tensorflow__SaverDef, TENSORFLOW__SAVER_DEF__INIT);
        add_saver_subgraph(&a, g, o->saver_def, o->clear_devices, mg.graph_def, sd);
        sd->max_to_keep = o->saver_def->max_to_keep;
        sd->sharded = o->saver_def->sharded;
        sd->keep_checkpoint_every_n_hours = o->saver_def->keep_checkpoint_every_n_hours;
        sd->version = TENSORFLOW__SAVER_DEF__CHECKPOINT_FORMAT_VERSION__V2;
        mg.saver_def = sd;
    }
    add_signatures(&a, o, &mg);
    int nc = pst_graph_num_collections(g), nv = pst_graph_num_value_collections(g);
    mg.collection_def = arena_alloc(&a, (size_t)(nc + nv + 1) * sizeof *mg.collection_def);
    for (int i = 0; i < nv; i++) {
        int is_int;
        const char *key = pst_graph_value_collection_key(g, i, &is_int);
        if (!wanted(o, key)) continue;
        int n;
        Tensorflow__CollectionDef *cd =
            NEW(&a, Tensorflow__CollectionDef, TENSORFLOW__COLLECTION_DEF__INIT);
        if (is_int) {
            cd->kind_case = TENSORFLOW__COLLECTION_DEF__KIND_INT64_LIST;
            cd->int64_list = NEW(&a, Tensorflow__CollectionDef__Int64List,
                                 TENSORFLOW__COLLECTION_DEF__INT64_LIST__INIT);
            cd->int64_list->value = (int64_t *)pst_graph_int64_collection(g, key, &n);
            cd->int64_list->n_value = (size_t)n;
        } else {
            cd->kind_case = TENSORFLOW__COLLECTION_DEF__KIND_FLOAT_LIST;
            cd->float_list = NEW(&a, Tensorflow__CollectionDef__FloatList,
                                 TENSORFLOW__COLLECTION_DEF__FLOAT_LIST__INIT);
            cd->float_list->value = (float *)pst_graph_float_collection(g, key, &n);
            cd->float_list->n_value = (size_t)n;
        }
        Tensorflow__MetaGraphDef__CollectionDefEntry *e = NEW(
            &a, Tensorflow__MetaGraphDef__CollectionDefEntry,
            TENSORFLOW__META_GRAPH_DEF__COLLECTION_DEF_ENTRY__INIT);
        e->key = (char *)key;
        e->value = cd;
        mg.collection_def[mg.n_collection_def++] = e;
    }
    for (int i = 0; i < nc; i++) {
        const char *key = pst_graph_collection_key(g, i);
        int n;
        const pst_output *items = pst_graph_collection(g, key, &n);
        if (!wanted(o, key) || n == 0) continue;
        Tensorflow__CollectionDef *cd =
            NEW(&a, Tensorflow__CollectionDef, TENSORFLOW__COLLECTION_DEF__INIT);
        if (is_variable_collection(g, key)) {
            cd->kind_case = TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST;
            cd->bytes_list = NEW(&a, Tensorflow__CollectionDef__BytesList,
                                 TENSORFLOW__COLLECTION_DEF__BYTES_LIST__INIT);
            cd->bytes_list->n_value = (size_t)n;
            cd->bytes_list->value = arena_alloc(&a, (size_t)n * sizeof(ProtobufCBinaryData));
            for (int k = 0; k < n; k++) cd->bytes_list->value[k] = variable_def(&a, g, items[k]);
        } else {
            cd->kind_case = TENSORFLOW__COLLECTION_DEF__KIND_NODE_LIST;
            cd->node_list = NEW(&a, Tensorflow__CollectionDef__NodeList,
                                TENSORFLOW__COLLECTION_DEF__NODE_LIST__INIT);
            cd->node_list->n_value = (size_t)n;
            cd->node_list->value = arena_alloc(&a, (size_t)n * sizeof(char *));
            for (int k = 0; k < n; k++) {
                char b[1100];
                /* Ops (no outputs) by name, tensors as name:index like TensorFlow. */
                if (items[k].node->n_outputs == 0)
                    snprintf(b, sizeof b, "%s", items[k].node->name);
                else
                    snprintf(b, sizeof b, "%s:%d", items[k].node->name, items[k].index);
                cd->node_list->value[k] = arena_strdup(&a, b);
            }
        }
        Tensorflow__MetaGraphDef__CollectionDefEntry *e = NEW(
            &a, Tensorflow__MetaGraphDef__CollectionDefEntry,
            TENSORFLOW__META_GRAPH_DEF__COLLECTION_DEF_ENTRY__INIT);
        e->key = (char *)key;
        e->value = cd;
        mg.collection_def[mg.n_collection_def++] = e;
    }
    int rc = pack(&mg.base, buf, len, st);
    arena_free(&a);
    return rc;
}

int pst_meta_graph_write(const pst_graph *g, const pst_meta_export_opts *o, const char *path,
                         pst_status *st) {
    uint8_t *buf;
    size_t len;
    int rc = pst_meta_graph_export(g, o, &buf, &len, st);
    if (rc < 0) return rc;
    rc = pst_file_write_atomic(path, buf, len, st);
    free(buf);
    return rc;
}

/* ---- Import ---------------------------------------------------------------------------- */

/* Splits "name:idx" / "^name"; writes the node name into buf. */
static int parse_input(const char *in, char *buf, size_t len, int *index, int *control) {
    *control = in[0] == '^';
    if (*control) in++;
    snprintf(buf, len, "%s", in);
    *index = 0;
    char *colon = strrchr(buf, ':');
    if (colon && !*control) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || v < 0) return -1;
        *index = (int)v;
        *colon = '\0';
    }
    return 0;
}

static char *scoped(const pst_meta_import_opts *o, const char *name) {
    const char *pre = o && o->import_scope ? o->import_scope : "";
    size_t n = strlen(pre) + strlen(name) + 2;
    char *s = malloc(n);
    PST_ASSERT(s != NULL);
    snprintf(s, n, "%s%s%s", pre, pre[0] ? "/" : "", name);
    return s;
}

/* GraphDefs of producer version 21 and older (TF <= 1.1) write a Placeholder's unknown shape
 * as an empty shape, which later versions read as a scalar (TF's placeholder shape function
 * does the same). Such an attr becomes the node's recorded `_output_shapes[0]` when the graph
 * carries it, else an unknown shape. */
static void legacy_placeholder_shape(const Tensorflow__GraphDef *gd, const Tensorflow__NodeDef *nd,
                                     pst_attr *at) {
    if (gd->versions == NULL || gd->versions->producer > 21 || at->kind != PST_ATTR_SHAPE ||
        at->v.shape.rank != 0 || strcmp(at->name, "shape") != 0 ||
        (strcmp(nd->op, "Placeholder") != 0 && strcmp(nd->op, "PlaceholderV2") != 0))
        return;
    at->v.shape = pst_shape_unknown();
    for (size_t i = 0; i < nd->n_attr; i++) {
        const Tensorflow__AttrValue *v = nd->attr[i]->value;
        if (strcmp(nd->attr[i]->key, "_output_shapes") != 0 || v == NULL ||
            v->value_case != TENSORFLOW__ATTR_VALUE__VALUE_LIST || v->list == NULL ||
            v->list->n_shape < 1)
            continue;
        pst_shape s;
        if (shape_from_proto(v->list->shape[0], &s, NULL) == 0) at->v.shape = s;
    }
}

/* A while loop's NextIteration -> Merge edge: the one kind of cycle a TF graph holds. The
 * importer builds the Merge with a stand-in input and sets the real one once both exist. */
static int is_loop_back_edge(const Tensorflow__GraphDef *gd, pst_strmap *index,
                             const Tensorflow__NodeDef *nd, const char *src_name) {
    if (strcmp(nd->op, "Merge") != 0 && strcmp(nd->op, "RefMerge") != 0) return 0;
    size_t v = (size_t)pst_strmap_get(index, src_name);
    return v > 0 && (strcmp(gd->node[v - 1]->op, "NextIteration") == 0 ||
                     strcmp(gd->node[v - 1]->op, "RefNextIteration") == 0);
}

/* After every node exists: the loops' back edges (see is_loop_back_edge). */
static int set_back_edges(pst_graph *g, const Tensorflow__GraphDef *gd, pst_strmap *index,
                          const pst_meta_import_opts *o, pst_status *st) {
    char name[1024];
    for (size_t k = 0; k < gd->n_node; k++) {
        const Tensorflow__NodeDef *nd = gd->node[k];
        for (size_t i = 0; i < nd->n_input; i++) {
            int idx, ctl;
            parse_input(nd->input[i], name, sizeof name, &idx, &ctl);
            if (ctl || !is_loop_back_edge(gd, index, nd, name)) continue;
            char *a = scoped(o, nd->name), *b = scoped(o, name);
            pst_node *m = pst_graph_find(g, a), *src = pst_graph_find(g, b);
            free(a);
            free(b);
            if (pst_graph_set_back_edge(g, m, (int)i, pst_out(src, idx)) < 0)
                return pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
        }
    }
    return 0;
}

static int import_library(pst_graph *g, const Tensorflow__FunctionDefLibrary *lib,
                          pst_status *st);

static int import_graph_proto(pst_graph *g, const Tensorflow__GraphDef *gd,
                              const pst_meta_import_opts *o, pst_status *st) {
    pst_ckpt_ops_init(); /* an imported graph may hold TF's saver subgraph */
    if (gd->library && import_library(g, gd->library, st) < 0) return st->code;
    size_t nn = gd->n_node;
    pst_strmap *index = pst_strmap_new();
    int *state = calloc(nn + 1, sizeof(int)); /* 0 new, 1 visiting, 2 done */
    size_t *order = calloc(nn + 1, sizeof(size_t)), *stack = calloc(nn + 1, sizeof(size_t));
    size_t *next_in = calloc(nn + 1, sizeof(size_t));
    PST_ASSERT(index && state && order && stack && next_in);
    int rc = 0;
    size_t n_order = 0;
    char name[1024];
    for (size_t i = 0; i < nn; i++) {
        if (pst_strmap_has(index, gd->node[i]->name)) {
            rc = pst_status_set(st, PST_E_INVALID, "GraphDef has two nodes named '%s'",
                                gd->node[i]->name);
            goto out;
        }
        pst_strmap_put(index, gd->node[i]->name, (void *)(i + 1));
    }
    /* Depth-first topological order; a node met again while on the stack closes a cycle. */
    for (size_t r = 0; r < nn && rc == 0; r++) {
        if (state[r]) continue;
        size_t sp = 0;
        stack[sp++] = r;
        state[r] = 1;
        while (sp > 0 && rc == 0) {
            size_t u = stack[sp - 1];
            const Tensorflow__NodeDef *nd = gd->node[u];
            if (next_in[u] < nd->n_input) {
                int idx, ctl;
                if (parse_input(nd->input[next_in[u]++], name, sizeof name, &idx, &ctl) < 0) {
                    rc = pst_status_set(st, PST_E_INVALID, "node '%s': bad input '%s'", nd->name,
                                        nd->input[next_in[u] - 1]);
                    break;
                }
                size_t v = (size_t)pst_strmap_get(index, name);
                if (v == 0 && !ctl && pst_graph_find(g, name) != NULL) continue; /* an argument */
                if (v == 0) {
                    rc = pst_status_set(st, PST_E_INVALID, "node '%s': input '%s' does not exist",
                                        nd->name, name);
                    break;
                }
                v--;
                if (!ctl && is_loop_back_edge(gd, index, nd, name)) continue;
                if (state[v] == 1) {
                    rc = pst_status_set(st, PST_E_INVALID,
                                        "graph has a cycle through node '%s' (input of '%s')",
                                        gd->node[v]->name, nd->name);
                    break;
                }
                if (state[v] == 0) {
                    state[v] = 1;
                    stack[sp++] = v;
                }
            } else {
                state[u] = 2;
                order[n_order++] = u;
                sp--;
            }
        }
    }
    for (size_t k = 0; k < n_order && rc == 0; k++) {
        const Tensorflow__NodeDef *nd = gd->node[order[k]];
        const pst_op_def *op = pst_op_lookup(nd->op);
        /* A function of the library called by name (a Defun): a call of it. */
        int call = op == NULL && pst_graph_function(g, nd->op) != NULL &&
                   (op = pst_op_lookup("StatefulPartitionedCall")) != NULL;
        if (op == NULL) {
            rc = pst_status_set(st, PST_E_NOT_FOUND, "node '%s': unknown op '%s'", nd->name, nd->op);
            break;
        }
        pst_node_builder *b = pst_nb_new(g, op->name, NULL);
        if (call) pst_nb_attr_s(b, "f", nd->op);
        char *full = scoped(o, nd->name);
        pst_nb_exact_name(b, full);
        free(full);
        for (size_t i = 0; i < nd->n_input; i++) {
            int idx, ctl;
            parse_input(nd->input[i], name, sizeof name, &idx, &ctl);
            /* A loop's back edge: a stand-in (the Merge's first input) until set_back_edges. */
            if (!ctl && i > 0 && is_loop_back_edge(gd, index, nd, name))
                parse_input(nd->input[0], name, sizeof name, &idx, &ctl);
            char *src_name = scoped(o, name);
            pst_node *src = pst_graph_find(g, src_name);
            free(src_name);
            if (ctl)
                pst_nb_control(b, src);
            else
                pst_nb_input(b, pst_out(src, idx));
        }
        if (!(o && o->clear_devices)) pst_nb_device(b, nd->device);
        for (size_t i = 0; i < nd->n_attr && rc == 0; i++) {
            const char *an = nd->attr[i]->key;
            /* Attrs this runtime's op does not declare (GPU-only knobs such as
             * use_cudnn_on_gpu) are dropped; internal "_" attrs are kept. */
            if (an[0] != '_' && spec_kind(op, an) == PST_ATTR_NONE) continue;
            pst_attr at;
            pst_status ast = {0};
            if (attr_from_proto(op, an, nd->attr[i]->value, &at, &ast) < 0) {
                rc = pst_status_set(st, ast.code, "node '%s': attr '%s': %s", nd->name, an, ast.msg);
            } else {
                legacy_placeholder_shape(gd, nd, &at);
                pst_nb_attr(b, &at);
            }
            pst_attr_destroy(&at);
        }
        if (rc == 0 && pst_nb_finish(b) == NULL)
            rc = pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
        else if (rc)
            pst_nb_abandon(b);
    }
    if (rc == 0) rc = set_back_edges(g, gd, index, o, st);
out:
    pst_strmap_free(index);
    free(state);
    free(order);
    free(stack);
    free(next_in);
    return rc;
}

/* ---- Function library ------------------------------------------------------------------ */

/* Output args of ops with more than one (a FunctionDef names a body node's outputs
 * "node:arg:i"; a graph names them by their flat index). count: NULL one tensor, "#A" the
 * length of list attr A, else the int attr of that name. Ops not listed have one output arg. */
typedef struct out_arg {
    const char *name, *count;
} out_arg;
static const struct {
    const char *op;
    out_arg args[8];
} multi_out_ops[] = {
    {"ParseExample", {{"sparse_indices", "Nsparse"}, {"sparse_values", "#sparse_types"},
                      {"sparse_shapes", "Nsparse"}, {"dense_values", "#Tdense"}}},
    {"ParseSingleExample", {{"sparse_indices", "num_sparse"}, {"sparse_values", "#sparse_types"},
                            {"sparse_shapes", "num_sparse"}, {"dense_values", "#Tdense"}}},
    {"ParseSingleSequenceExample",
     {{"context_sparse_indices", "Ncontext_sparse"},
      {"context_sparse_values", "#context_sparse_types"},
      {"context_sparse_shapes", "Ncontext_sparse"},
      {"context_dense_values", "#Tcontext_dense"},
      {"feature_list_sparse_indices", "Nfeature_list_sparse"},
      {"feature_list_sparse_values", "#feature_list_sparse_types"},
      {"feature_list_sparse_shapes", "Nfeature_list_sparse"},
      {"feature_list_dense_values", "#feature_list_dense_types"}}},
    {"Unique", {{"y", NULL}, {"idx", NULL}}},
    {"UniqueWithCounts", {{"y", NULL}, {"idx", NULL}, {"count", NULL}}},
    {"TopKV2", {{"values", NULL}, {"indices", NULL}}},
    {"TopK", {{"values", NULL}, {"indices", NULL}}},
    {"Switch", {{"output_false", NULL}, {"output_true", NULL}}},
    {"Merge", {{"output", NULL}, {"value_index", NULL}}},
    {"StringSplit", {{"indices", NULL}, {"values", NULL}, {"shape", NULL}}},
    {"StringSplitV2", {{"indices", NULL}, {"values", NULL}, {"shape", NULL}}},
    {"BroadcastGradientArgs", {{"r0", NULL}, {"r1", NULL}}},
    {"SparseReorder", {{"output_indices", NULL}, {"output_values", NULL}}},
    {"SparseSlice", {{"output_indices", NULL}, {"output_values", NULL}, {"output_shape", NULL}}},
    {"SparseConcat", {{"output_indices", NULL}, {"output_values", NULL}, {"output_shape", NULL}}},
    {"SparseFillEmptyRows", {{"output_indices", NULL}, {"output_values", NULL},
                             {"empty_row_indicator", NULL}, {"reverse_index_map", NULL}}},
    {"FusedBatchNorm", {{"y", NULL}, {"batch_mean", NULL}, {"batch_variance", NULL},
                        {"reserve_space_1", NULL}, {"reserve_space_2", NULL}}},
    {"FusedBatchNormV2", {{"y", NULL}, {"batch_mean", NULL}, {"batch_variance", NULL},
                          {"reserve_space_1", NULL}, {"reserve_space_2", NULL}}},
};

static int64_t node_def_count(const Tensorflow__NodeDef *nd, const char *count) {
    if (count == NULL) return 1;
    int list = count[0] == '#';
    for (size_t i = 0; i < nd->n_attr; i++) {
        const Tensorflow__AttrValue *v = nd->attr[i]->value;
        if (strcmp(nd->attr[i]->key, count + list) != 0 || v == NULL) continue;
        if (!list) return v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_I ? v->i : 0;
        return v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_LIST && v->list
                   ? (int64_t)v->list->n_type : 0;
    }
    return 0;
}

/* "node:arg:i" of a function body -> "node:flat" in out; "arg" and "^node" as they are. */
static int function_ref(const Tensorflow__FunctionDef *fd, const char *ref, char *out,
                        size_t len, pst_status *st) {
    const char *c1 = strchr(ref, ':');
    if (ref[0] == '^' || c1 == NULL) {
        snprintf(out, len, "%s", ref);
        return 0;
    }
    const char *c2 = strchr(c1 + 1, ':');
    char node[512], arg[256];
    snprintf(node, sizeof node, "%.*s", (int)(c1 - ref), ref);
    if (c2 == NULL) { /* "node:i", as some writers put it */
        snprintf(out, len, "%s", ref);
        return 0;
    }
    snprintf(arg, sizeof arg, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    char *end;
    long idx = strtol(c2 + 1, &end, 10);
    if (*end || end == c2 + 1 || idx < 0)
        return pst_status_set(st, PST_E_INVALID, "bad output reference '%s'", ref);
    const Tensorflow__NodeDef *nd = NULL;
    for (size_t i = 0; i < fd->n_node_def && nd == NULL; i++)
        if (strcmp(fd->node_def[i]->name, node) == 0) nd = fd->node_def[i];
    if (nd == NULL)
        return pst_status_set(st, PST_E_INVALID, "'%s' names node '%s', which is not in the "
                              "function body", ref, node);
    int64_t flat = idx;
    for (size_t k = 0; k < sizeof multi_out_ops / sizeof multi_out_ops[0]; k++) {
        if (strcmp(multi_out_ops[k].op, nd->op) != 0) continue;
        int64_t before = 0;
        int found = 0;
        for (const out_arg *a = multi_out_ops[k].args; a->name && !found; a++) {
            if (strcmp(a->name, arg) == 0) found = 1;
            else before += node_def_count(nd, a->count);
        }
        if (!found)
            return pst_status_set(st, PST_E_INVALID, "'%s': op %s has no output named '%s'",
                                  ref, nd->op, arg);
        flat = before + idx;
    }
    snprintf(out, len, "%s:%lld", node, (long long)flat);
    return 0;
}

/* One FunctionDef as a body graph: a Placeholder per argument, the nodes, the results. */
static int import_function(pst_graph *g, const Tensorflow__FunctionDef *fd, pst_status *st) {
    const Tensorflow__OpDef *sig = fd->signature;
    const char *fname = sig && sig->name ? sig->name : "";
    if (sig == NULL || fname[0] == '\0')
        return pst_status_set(st, PST_E_INVALID, "a function of the library has no signature");
    pst_graph *body = pst_graph_new();
    pst_graph_set_library_parent(body, g);
    size_t na = sig->n_input_arg, nr = sig->n_output_arg;
    pst_node **args = calloc(na + 1, sizeof *args);
    const char **arg_names = calloc(na + 1, sizeof *arg_names);
    pst_output *rets = calloc(nr + 1, sizeof *rets);
    Tensorflow__NodeDef *nodes = calloc(fd->n_node_def + 1, sizeof *nodes);
    Tensorflow__NodeDef **node_ptrs = calloc(fd->n_node_def + 1, sizeof *node_ptrs);
    char **inputs = NULL;
    size_t n_inputs = 0;
    PST_ASSERT(args && arg_names && rets && nodes && node_ptrs);
    int rc = 0;
    for (size_t i = 0; i < na && rc == 0; i++) {
        const Tensorflow__OpDef__ArgDef *a = sig->input_arg[i];
        if (a->type == 0) {
            rc = pst_status_set(st, PST_E_UNIMPLEMENTED, "function '%s': argument '%s' has a "
                                "polymorphic type (%s), which pstrain does not instantiate",
                                fname, a->name, a->type_attr[0] ? a->type_attr : a->type_list_attr);
            break;
        }
        args[i] = pst_placeholder(body, a->name, (pst_dtype)a->type, pst_shape_unknown()).node;
        arg_names[i] = a->name;
        if (args[i] == NULL)
            rc = pst_status_set(st, pst_graph_error(body), "function '%s': %s", fname,
                                pst_graph_status(body)->msg);
    }
    for (size_t k = 0; k < fd->n_node_def; k++) n_inputs += fd->node_def[k]->n_input;
    inputs = calloc(n_inputs + 1, sizeof *inputs);
    PST_ASSERT(inputs != NULL);
    size_t at = 0;
    char ref[1100];
    for (size_t k = 0; k < fd->n_node_def && rc == 0; k++) {
        nodes[k] = *fd->node_def[k];
        nodes[k].input = inputs + at;
        for (size_t i = 0; i < fd->node_def[k]->n_input && rc == 0; i++) {
            pst_status rst = {0};
            if (function_ref(fd, fd->node_def[k]->input[i], ref, sizeof ref, &rst) < 0)
                rc = pst_status_set(st, rst.code, "function '%s': node '%s': %s", fname,
                                    fd->node_def[k]->name, rst.msg);
            inputs[at++] = strdup(ref);
        }
        node_ptrs[k] = &nodes[k];
    }
    if (rc == 0) {
        Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
        gd.n_node = fd->n_node_def;
        gd.node = node_ptrs;
        pst_status bst = {0};
        if (import_graph_proto(body, &gd, NULL, &bst) < 0)
            rc = pst_status_set(st, bst.code, "function '%s': %s", fname, bst.msg);
    }
    for (size_t i = 0; i < nr && rc == 0; i++) {
        const char *rname = sig->output_arg[i]->name, *val = NULL;
        for (size_t k = 0; k < fd->n_ret; k++)
            if (strcmp(fd->ret[k]->key, rname) == 0) val = fd->ret[k]->value;
        pst_status rst = {0};
        if (val == NULL) {
            rc = pst_status_set(st, PST_E_INVALID, "function '%s': output '%s' has no ret entry",
                                fname, rname);
        } else if (function_ref(fd, val, ref, sizeof ref, &rst) < 0) {
            rc = pst_status_set(st, rst.code, "function '%s': output '%s': %s", fname, rname,
                                rst.msg);
        } else if ((rets[i] = pst_graph_output_by_name(body, ref)).node == NULL) {
            rc = pst_status_set(st, PST_E_INVALID, "function '%s': output '%s' is '%s', which "
                                "is not in the function body", fname, rname, val);
        }
    }
    if (rc == 0 && pst_graph_add_function(g, fname, body, (int)na, args, arg_names, (int)nr,
                                          rets) < 0)
        rc = pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    else if (rc < 0)
        pst_graph_free(body);
    for (size_t i = 0; i < at; i++) free(inputs[i]);
    free(inputs), free(nodes), free(node_ptrs), free(args), free(arg_names), free(rets);
    return rc;
}

/* Every function of the library; one calling another defined after it is imported once that
 * one is (passes until nothing more imports). A function that still does not build (an op
 * pstrain lacks in its body, say) is kept as a broken function with its error: the graph
 * imports, and only running an op that calls it fails, with that error. */
static int import_library(pst_graph *g, const Tensorflow__FunctionDefLibrary *lib,
                          pst_status *st) {
    size_t n = lib->n_function, left = n;
    char *done = calloc(n + 1, 1);
    pst_status *errs = calloc(n + 1, sizeof *errs);
    PST_ASSERT(done != NULL && errs != NULL);
    while (left > 0) {
        size_t before = left;
        for (size_t i = 0; i < n; i++) {
            if (done[i]) continue;
            errs[i] = (pst_status){0};
            if (import_function(g, lib->function[i], &errs[i]) == 0) {
                done[i] = 1;
                left--;
            }
        }
        if (left == before) break;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Tensorflow__OpDef *sig = lib->function[i]->signature;
        /* (A function without a name cannot be called: nothing to keep.) */
        if (sig == NULL || sig->name == NULL || sig->name[0] == '\0') continue;
        if (!done[i] && pst_graph_add_broken_function(g, sig->name, errs[i].msg) < 0) {
            rc = pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
            break;
        }
        /* Its definition as TF wrote it, for an export. */
        size_t len = tensorflow__function_def__get_packed_size(lib->function[i]);
        uint8_t *def = malloc(len + 1);
        PST_ASSERT(def != NULL);
        tensorflow__function_def__pack(lib->function[i], def);
        pst_graph_set_function_def(g, sig->name, def, len);
        free(def);
    }
    free(done);
    free(errs);
    return rc;
}

int pst_graph_def_import(pst_graph *g, const uint8_t *buf, size_t len,
                         const pst_meta_import_opts *o, pst_status *st) {
    Tensorflow__GraphDef *gd = tensorflow__graph_def__unpack(NULL, len, buf);
    if (gd == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse GraphDef");
    int rc = import_graph_proto(g, gd, o, st);
    tensorflow__graph_def__free_unpacked(gd, NULL);
    return rc;
}

static pst_output resolve_ref(pst_graph *g, const pst_meta_import_opts *o, const char *ref) {
    char name[1024];
    int idx, ctl;
    if (parse_input(ref, name, sizeof name, &idx, &ctl) < 0) return pst_out(NULL, 0);
    char *full = scoped(o, name);
    pst_node *n = pst_graph_find(g, full);
    free(full);
    if (n == NULL || (idx >= n->n_outputs && !(idx == 0 && n->n_outputs == 0)))
        return pst_out(NULL, 0);
    return pst_out(n, idx);
}

/* Collections of VariableDefs ("variables", "trainable_variables", "local_variables", ...,
 * and "global_step", which TF writes as a variable record). TF's other bytes_list collections
 * (cond_context, while_context, savers, queue_runners) hold other protos that happen to parse
 * as VariableDefs; they are kept as empty collections. */
static int is_variables_key(const char *key) {
    size_t n = strlen(key);
    return (n >= 9 && strcmp(key + n - 9, "variables") == 0) || strcmp(key, "global_step") == 0;
}

int pst_meta_graph_import(pst_graph *g, const uint8_t *buf, size_t len,
                          const pst_meta_import_opts *o, pst_status *st) {
    Tensorflow__MetaGraphDef *mg = tensorflow__meta_graph_def__unpack(NULL, len, buf);
    if (mg == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse MetaGraphDef");
    int rc = mg->graph_def ? import_graph_proto(g, mg->graph_def, o, st) : 0;
    for (size_t i = 0; rc == 0 && i < mg->n_collection_def; i++) {
        const char *key = mg->collection_def[i]->key;
        const Tensorflow__CollectionDef *cd = mg->collection_def[i]->value;
        if (cd == NULL) continue; /* a map entry without its value names no members */
        if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_NODE_LIST ||
            cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST)
            pst_graph_add_to_collection(g, key, pst_out(NULL, 0));
        if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_NODE_LIST) {
            for (size_t k = 0; k < cd->node_list->n_value && rc == 0; k++) {
                pst_output out = resolve_ref(g, o, cd->node_list->value[k]);
                if (out.node == NULL)
                    rc = pst_status_set(st, PST_E_NOT_FOUND, "collection '%s' names '%s', which "
                                        "is not in the graph", key, cd->node_list->value[k]);
                else
                    pst_graph_add_to_collection(g, key, out);
            }
        } else if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST &&
                   is_variables_key(key)) {
            for (size_t k = 0; k < cd->bytes_list->n_value && rc == 0; k++) {
                ProtobufCBinaryData b = cd->bytes_list->value[k];
                Tensorflow__VariableDef *vd = tensorflow__variable_def__unpack(NULL, b.len, b.data);
                if (vd == NULL) continue; /* not a VariableDef (some other proto list) */
                pst_output out = resolve_ref(g, o, vd->variable_name);
                if (out.node == NULL)
                    rc = pst_status_set(st, PST_E_NOT_FOUND,
                                        "collection '%s' names variable '%s', which is not in "
                                        "the graph", key, vd->variable_name);
                else
                    pst_graph_add_to_collection(g, key, out);
                tensorflow__variable_def__free_unpacked(vd, NULL);
            }
        } else if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_INT64_LIST) {
            for (size_t k = 0; k < cd->int64_list->n_value; k++)
                pst_graph_add_int64_to_collection(g, key, cd->int64_list->value[k]);
        } else if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_FLOAT_LIST) {
            for (size_t k = 0; k < cd->float_list->n_value; k++)
                pst_graph_add_float_to_collection(g, key, cd->float_list->value[k]);
        }
    }
    tensorflow__meta_graph_def__free_unpacked(mg, NULL);
    return rc;
}

int pst_meta_graph_read(pst_graph *g, const char *path, const pst_meta_import_opts *o,
                        pst_status *st) {
    uint8_t *buf;
    size_t len;
    int rc = pst_file_read(path, PST_META_GRAPH_MAX_BYTES, &buf, &len, st);
    if (rc < 0) return rc;
    rc = pst_meta_graph_import(g, buf, len, o, st);
    if (rc < 0) pst_status_prefix(st, "%s: ", path);
    free(buf);
    return rc;
}

/* ---- Describe -------------------------------------------------------------------------- */

static const Tensorflow__NodeDef *find_node(const Tensorflow__GraphDef *gd, const char *name) {
    for (size_t i = 0; gd && i < gd->n_node; i++)
        if (strcmp(gd->node[i]->name, name) == 0) return gd->node[i];
    return NULL;
}

/* "signature NAME (METHOD)" and one line per input and output: key, tensor, dtype, shape. */
static void describe_signatures(const Tensorflow__MetaGraphDef *mg, FILE *out) {
    for (size_t i = 0; i < mg->n_signature_def; i++) {
        const Tensorflow__SignatureDef *sd = mg->signature_def[i]->value;
        if (sd == NULL) continue; /* an entry without its value describes nothing */
        fprintf(out, "signature %s (%s)\n", mg->signature_def[i]->key,
                sd->method_name ? sd->method_name : "");
        for (int side = 0; side < 2; side++) {
            size_t n = side ? sd->n_outputs : sd->n_inputs;
            for (size_t k = 0; k < n; k++) {
                const char *key = side ? sd->outputs[k]->key : sd->inputs[k]->key;
                const Tensorflow__TensorInfo *ti = side ? sd->outputs[k]->value : sd->inputs[k]->value;
                if (ti == NULL) continue;
                char shape[128] = "?";
                pst_shape s;
                if (ti->tensor_shape && shape_from_proto(ti->tensor_shape, &s, NULL) == 0)
                    pst_shape_str(&s, shape, sizeof shape);
                fprintf(out, "  %s %s: %s %s %s\n", side ? "output" : "input", key,
                        ti->name ? ti->name : "", pst_dtype_name((pst_dtype)ti->dtype), shape);
            }
        }
    }
}

static void describe_one(const Tensorflow__MetaGraphDef *mg, FILE *out) {
    if (mg->meta_info_def) {
        fprintf(out, "meta graph: tags [");
        for (size_t i = 0; i < mg->meta_info_def->n_tags; i++)
            fprintf(out, "%s%s", i ? ", " : "", mg->meta_info_def->tags[i]);
        fprintf(out, "], tensorflow %s\n", mg->meta_info_def->tensorflow_version);
    }
    fprintf(out, "nodes: %zu\n", mg->graph_def ? mg->graph_def->n_node : 0);
    describe_signatures(mg, out);
    for (size_t i = 0; i < mg->n_collection_def; i++) {
        const char *key = mg->collection_def[i]->key;
        const Tensorflow__CollectionDef *cd = mg->collection_def[i]->value;
        if (cd == NULL) { /* a map entry without its value: a collection with nothing in it */
            fprintf(out, "collection %s (none, 0)\n", key);
            continue;
        }
        static const char *kinds[] = {"none", "node_list", "bytes_list", "int64_list", "float_list"};
        size_t n = cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_NODE_LIST    ? cd->node_list->n_value
                   : cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST ? cd->bytes_list->n_value
                   : cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_INT64_LIST ? cd->int64_list->n_value
                   : cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_FLOAT_LIST ? cd->float_list->n_value
                                                                                  : 0;
        fprintf(out, "collection %s (%s, %zu)\n", key,
                (unsigned)cd->kind_case <= 4 ? kinds[cd->kind_case] : "?", n);
        if (cd->kind_case == TENSORFLOW__COLLECTION_DEF__KIND_NODE_LIST)
            for (size_t k = 0; k < n; k++) fprintf(out, "  %s\n", cd->node_list->value[k]);
        if (cd->kind_case != TENSORFLOW__COLLECTION_DEF__KIND_BYTES_LIST) continue;
        for (size_t k = 0; k < n; k++) {
            ProtobufCBinaryData b = cd->bytes_list->value[k];
            Tensorflow__VariableDef *vd = tensorflow__variable_def__unpack(NULL, b.len, b.data);
            if (vd == NULL) continue;
            char vname[1024];
            int idx, ctl;
            parse_input(vd->variable_name, vname, sizeof vname, &idx, &ctl);
            const Tensorflow__NodeDef *nd = find_node(mg->graph_def, vname);
            char shape[128] = "?", dtype[32] = "?";
            for (size_t a = 0; nd && a < nd->n_attr; a++) {
                const Tensorflow__AttrValue *v = nd->attr[a]->value;
                if (!v) continue; /* an entry without its value describes nothing */
                if (strcmp(nd->attr[a]->key, "dtype") == 0 &&
                    v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_TYPE)
                    snprintf(dtype, sizeof dtype, "%s", pst_dtype_name((pst_dtype)v->type));
                if (strcmp(nd->attr[a]->key, "shape") == 0 &&
                    v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_SHAPE) {
                    pst_shape s;
                    if (shape_from_proto(v->shape, &s, NULL) == 0)
                        pst_shape_str(&s, shape, sizeof shape);
                }
            }
            fprintf(out, "  %s %s %s%s%s\n", vname, dtype, shape, vd->trainable ? " trainable" : "",
                    vd->save_slice_info_def ? " (slice)" : "");
            tensorflow__variable_def__free_unpacked(vd, NULL);
        }
    }
}

int pst_meta_graph_describe(const uint8_t *buf, size_t len, int is_saved_model, FILE *out,
                            pst_status *st) {
    if (is_saved_model) {
        Tensorflow__SavedModel *sm = tensorflow__saved_model__unpack(NULL, len, buf);
        if (sm == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse SavedModel");
        fprintf(out, "saved model: schema version %lld, %zu meta graph(s)\n",
                (long long)sm->saved_model_schema_version, sm->n_meta_graphs);
        for (size_t i = 0; i < sm->n_meta_graphs; i++) describe_one(sm->meta_graphs[i], out);
        tensorflow__saved_model__free_unpacked(sm, NULL);
        return 0;
    }
    Tensorflow__MetaGraphDef *mg = tensorflow__meta_graph_def__unpack(NULL, len, buf);
    if (mg == NULL) return pst_status_set(st, PST_E_DATA_LOSS, "cannot parse MetaGraphDef");
    describe_one(mg, out);
    tensorflow__meta_graph_def__free_unpacked(mg, NULL);
    return 0;
}

/* ---- what a GraphDef's constants claim ------------------------------------------------ */

static int64_t claimed_bytes(const Tensorflow__TensorProto *p) {
    if (!p) return 0;
    if (p->tensor_content.len) return (int64_t)p->tensor_content.len;
    int64_t elems = 1;
    const Tensorflow__TensorShapeProto *s = p->tensor_shape;
    for (size_t i = 0; s && !s->unknown_rank && i < s->n_dim; i++) {
        int64_t d = s->dim[i] && s->dim[i]->size > 0 ? s->dim[i]->size : 0;
        if (pst_mul_overflow_i64(elems, d, &elems)) return INT64_MAX;
    }
    pst_dtype dt = (pst_dtype)p->dtype;
    int64_t size = pst_dtype_valid(dt) ? (int64_t)pst_dtype_size(dt) : 1;
    int64_t bytes;
    return pst_mul_overflow_i64(elems, size, &bytes) ? INT64_MAX : bytes;
}

static int64_t add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

int64_t pst_graph_def_constant_bytes(const uint8_t *buf, size_t len) {
    Tensorflow__GraphDef *gd = tensorflow__graph_def__unpack(NULL, len, buf);
    if (!gd) return -1;
    int64_t total = 0;
    for (size_t i = 0; i < gd->n_node; i++)
        for (size_t a = 0; gd->node[i] && a < gd->node[i]->n_attr; a++) {
            const Tensorflow__AttrValue *v = gd->node[i]->attr[a]->value;
            if (!v) continue;
            if (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_TENSOR)
                total = add_sat(total, claimed_bytes(v->tensor));
            if (v->value_case == TENSORFLOW__ATTR_VALUE__VALUE_LIST && v->list)
                for (size_t k = 0; k < v->list->n_tensor; k++)
                    total = add_sat(total, claimed_bytes(v->list->tensor[k]));
        }
    tensorflow__graph_def__free_unpacked(gd, NULL);
    return total;
}
