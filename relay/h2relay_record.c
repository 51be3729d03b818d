/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_record.c: what both engines learn of a stream for its report and
 * its answer (h2r_record, h2relay_int.h). One set of functions reads the
 * request's and the answer's fields, routes, builds the owner's h2r_answer
 * and the h2r_stream_end report, so the terminating engine (h2relay_stream.c)
 * and the verbatim one (h2verbatim_frame.c) cannot drift apart in what they
 * tell the owner. Runs on the relay's loop thread; strings are the relay
 * pool's. */
#include <string.h>

#include "h2relay_int.h"

void h2r_record_start(h2r_record *rec) {
  rec->grpc_status = -1;
  rec->started_ns = uv_hrtime();
}

static bool named(const uint8_t *name, size_t nlen, const char *want, size_t wlen) {
  return nlen == wlen && memcmp(name, want, wlen) == 0;
}

void h2r_record_request_field(const h2r *r, h2r_record *rec, h2r_call *call, const uint8_t *name,
                              size_t nlen, const uint8_t *value, size_t vlen) {
  if (named(name, nlen, ":path", 5)) {
    if (rec->path) return; /* the first one routes */
    rec->path = h2r_pool_strndup(r->pool, (const char *)value, vlen);
    rec->path_len = rec->path ? strlen(rec->path) : 0;
    call->path = rec->path;
  } else if (named(name, nlen, "grpc-timeout", 12)) {
    uint64_t ns = h2r_grpc_timeout_ns(value, vlen);
    call->deadline_ns = ns ? rec->started_ns + ns : 0;
  } else if (r->probe_len && named(name, nlen, r->cfg.self_probe_header, r->probe_len)) {
    rec->self_probe = true;
  }
}

void h2r_record_answer_field(h2r_pool *p, h2r_record *rec, const uint8_t *name, size_t nlen,
                             const uint8_t *value, size_t vlen) {
  if (named(name, nlen, "grpc-status", 11))
    rec->grpc_status = h2r_grpc_status_value(value, vlen);
  else if (named(name, nlen, "grpc-message", 12))
    h2r_record_message(p, rec, value, vlen);
}

void h2r_record_message(h2r_pool *p, h2r_record *rec, const uint8_t *m, size_t n) {
  h2r_pool_free(p, rec->grpc_message);
  rec->grpc_message = h2r_pool_malloc(p, n + 1);
  rec->grpc_message_len = rec->grpc_message ? n : 0;
  if (!rec->grpc_message) return;
  memcpy(rec->grpc_message, m, n);
  rec->grpc_message[n] = '\0';
}

h2r_route_out h2r_record_route(const h2r_config *cfg, h2r_record *rec) {
  h2r_route_out out = {0};
  int rt = cfg->route ? cfg->route(cfg->ud, rec->path ? rec->path : "", rec->path_len, &out) : 0;
  rec->route = rt >= 0 && rt < H2R_ROUTES ? rt : 0;
  rec->tag = out.tag;
  return out;
}

h2r_answer h2r_record_answer(const h2r_record *rec, const uint8_t *body, size_t len) {
  return (h2r_answer){.grpc_status = rec->grpc_status,
                      .body = body ? body : (const uint8_t *)"",
                      .len = len,
                      .grpc_message = rec->grpc_message,
                      .grpc_message_len = rec->grpc_message_len};
}

void h2r_record_report(const h2r_config *cfg, const h2r_record *rec, void *call_data) {
  if (!cfg->on_stream_end) return;
  h2r_stream_end e = {.path = rec->path ? rec->path : "",
                      .path_len = rec->path_len,
                      .route = rec->route,
                      .grpc_status = rec->grpc_status,
                      .grpc_message = rec->grpc_message,
                      .grpc_message_len = rec->grpc_message_len,
                      .started_ns = rec->started_ns,
                      .ended_ns = uv_hrtime(),
                      .self_probe = rec->self_probe,
                      .client_reset = rec->client_reset,
                      .tag = rec->tag,
                      .call_data = call_data};
  cfg->on_stream_end(cfg->ud, &e);
}

void h2r_record_free(h2r_pool *p, h2r_record *rec) {
  h2r_pool_free(p, rec->grpc_message);
  h2r_pool_free(p, rec->path);
  rec->grpc_message = rec->path = NULL;
}
