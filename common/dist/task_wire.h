/*
 * task_wire — the task service's messages on the wire: a protobuf-c message (pstrain_task.proto)
 * packed into a transport message that owns its buffer, for the server's replies (task.c) and
 * the client's requests (task_client.c) alike.
 *
 *     Pstrain__SaveRequest r = PSTRAIN__SAVE_REQUEST__INIT;
 *     pst_msg m;
 *     if (pst_task_wire_pack(&r.base, &m, &st) < 0) return st.code;
 *     pst_transport_call(tr, addr, PST_TASK_SAVE, &m, ...);   // the transport releases m
 */
#ifndef PST_TASK_WIRE_H
#define PST_TASK_WIRE_H

#include "pstrain_task.pb-c.h"
#include "status.h"
#include "transport.h"

/* Packs m into *out, a message owning a malloc'd buffer (its release frees it). Returns 0, or
 * PST_E_EXHAUSTED with st set (naming the message type) when out of memory; *out is then an
 * empty message with no release. */
int pst_task_wire_pack(const ProtobufCMessage *m, pst_msg *out, pst_status *st);

#endif
