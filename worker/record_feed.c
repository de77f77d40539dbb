/* record_feed: a placeholder fed from a TFRecord file's Examples (see record_feed.h). */
#include "record_feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "imported.h"
#include "op.h"

int pst_record_feed_parse(const char *s, pst_record_feed *f, pst_status *st) {
    memset(f, 0, sizeof *f);
    const char *eq = strchr(s, '='), *colon = strrchr(s, ':');
    if (!eq || !colon || colon < eq || eq == s || colon == eq + 1 || colon[1] == '\0' ||
        (size_t)(eq - s) >= sizeof f->name || (size_t)(colon - eq - 1) >= sizeof f->path ||
        strlen(colon + 1) >= sizeof f->feature)
        return pst_status_set(st, PST_E_INVALID, "--feed '%s': not PLACEHOLDER=FILE:FEATURE", s);
    snprintf(f->name, sizeof f->name, "%.*s", (int)(eq - s), s);
    snprintf(f->path, sizeof f->path, "%.*s", (int)(colon - eq - 1), eq + 1);
    snprintf(f->feature, sizeof f->feature, "%s", colon + 1);
    return 0;
}

int pst_record_feed_load(pst_graph *g, pst_record_feed *f, pst_status *st) {
    f->ph = pst_graph_output_by_name(g, f->name);
    if (f->ph.node == NULL || strcmp(f->ph.node->op->name, "Placeholder") != 0)
        return pst_status_set(st, PST_E_NOT_FOUND, "--feed %s: no placeholder '%s' in the graph",
                              f->name, f->name);
    pst_shape s = pst_output_shape(f->ph);
    if (s.rank < 1)
        return pst_status_set(st, PST_E_INVALID, "--feed %s: the placeholder has shape rank %d, "
                              "it needs a batch dimension", f->name, s.rank);
    pst_example_spec spec = {f->feature, pst_output_dtype(f->ph), {.rank = s.rank - 1}};
    for (int d = 1; d < s.rank; d++) {
        if (s.dims[d] < 0)
            return pst_status_set(st, PST_E_INVALID, "--feed %s: dim %d of the placeholder is "
                                  "unknown; only the batch dimension may be", f->name, d);
        spec.shape.dims[d - 1] = s.dims[d];
    }
    if (pst_example_load_tfrecord(f->path, NULL, &spec, 1, &f->all, st) < 0) return st->code;
    if (f->all->shape.dims[0] == 0)
        return pst_status_set(st, PST_E_INVALID, "--feed %s: %s holds no records", f->name,
                              f->path);
    return 0;
}

int64_t pst_record_feed_count(const pst_record_feed *f) {
    return f->all ? f->all->shape.dims[0] : 0;
}

int pst_record_feed_batch(pst_record_feed *f, const int64_t *rows, int b, pst_status *st) {
    int64_t n = pst_record_feed_count(f), row = n ? f->all->n / n : 0;
    /* A new tensor every batch: the step that took the last one may still hold it. */
    pst_tensor_unref(f->batch);
    pst_shape s = f->all->shape;
    s.dims[0] = b;
    if ((f->batch = pst_tensor_new(f->all->dtype, s, st)) == NULL) return st->code;
    for (int i = 0; i < b; i++)
        if (pst_tensor_copy_elems(f->batch, (int64_t)i * row, f->all, (rows[i] % n) * row, row,
                                  st) < 0)
            return st->code;
    return 0;
}

void pst_record_feed_destroy(pst_record_feed *f) {
    pst_tensor_unref(f->all);
    pst_tensor_unref(f->batch);
    f->all = f->batch = NULL;
}

int pst_record_feeds_cover(pst_imported *m, pst_node *const *targets, int n_targets,
                           const pst_record_feed *feeds, int n_feeds, pst_status *st) {
    pst_output *need = NULL;
    int n_need = 0, rc = 0;
    pst_imported_placeholders(m, targets, n_targets, &need, &n_need);
    for (int k = 0; k < n_need && rc == 0; k++) {
        int fed = 0;
        for (int i = 0; i < n_feeds; i++) fed |= feeds[i].ph.node == need[k].node;
        if (!fed)
            rc = pst_status_set(st, PST_E_INVALID, "placeholder '%s' needs a --feed",
                                need[k].node->name);
    }
    free(need);
    return rc;
}
