#include "meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagraph.h"
#include "file.h"

int pst_cmd_meta(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "show") != 0) {
        fprintf(stderr, "usage: pstrain meta show FILE   (a .meta file or a saved_model.pb)\n");
        return 2;
    }
    const char *path = argv[2];
    uint8_t *buf;
    size_t len;
    pst_status st = {0};
    if (pst_file_read(path, PST_META_GRAPH_MAX_BYTES, &buf, &len, &st) < 0) {
        fprintf(stderr, "pstrain meta show: %s\n", st.msg);
        return 1;
    }
    size_t n = strlen(path);
    int saved_model = n >= 14 && strcmp(path + n - 14, "saved_model.pb") == 0;
    int rc = pst_meta_graph_describe(buf, len, saved_model, stdout, &st);
    if (rc < 0) fprintf(stderr, "pstrain meta show: %s: %s\n", path, st.msg);
    free(buf);
    return rc < 0 ? 1 : 0;
}
