/* task_wire: packing the task service's messages (see task_wire.h). */
#include "task_wire.h"

#include <stdlib.h>

static void free_owner(void *p) { free(p); }

int pst_task_wire_pack(const ProtobufCMessage *m, pst_msg *out, pst_status *st) {
    *out = (pst_msg){0};
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1); /* + 1: an empty message still gets a buffer to own */
    if (!buf)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory packing a %zu-byte %s", len,
                              m->descriptor->short_name);
    protobuf_c_message_pack(m, buf);
    *out = pst_msg_of(buf, len);
    out->release = free_owner;
    out->owner = buf;
    return 0;
}
