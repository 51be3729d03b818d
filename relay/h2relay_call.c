/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_call.c: the owner's face of an intercepted stream (h2relay.h
 * Interception), the same for both engines: what they share lives in
 * struct h2r_call, what differs goes through its ops (h2relay_int.h). */
#include "h2relay_int.h"

int h2r_call_forward(h2r_call *call, const uint8_t *body, size_t len) {
  return call->ops->forward(call, body, len);
}

void h2r_call_refuse(h2r_call *call, int grpc_status, const char *message) {
  call->ops->refuse(call, grpc_status, message);
}

void h2r_call_set_data(h2r_call *call, void *data) { call->data = data; }
void *h2r_call_data(const h2r_call *call) { return call->data; }
const char *h2r_call_path(const h2r_call *call) { return call->path ? call->path : ""; }
uint64_t h2r_call_deadline_ns(const h2r_call *call) { return call->deadline_ns; }
