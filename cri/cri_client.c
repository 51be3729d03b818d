/* SPDX-License-Identifier: Apache-2.0 */
/* cri_client.c: blocking CRI calls by method name (contract in cri_client.h).
 *
 * A client precomputes the path of every method of the two CRI services for
 * its package ("/runtime.v1alpha2.RuntimeService/Version", ...) and keeps
 * them for its lifetime. The calls themselves go through crihook's own
 * blocking gRPC client (rpc/rpc.h: nghttp2 on a private libuv loop), so
 * nothing here needs grpc core. */
#include "cri_client.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "crihook-config.h"
#include "endpoint.h"
#include "pbjson.h"
#include "rpc.h"

enum { N_SERVICES = 2 };

static const ProtobufCServiceDescriptor *const cri_services[N_SERVICES] = {
    &runtime__v1__runtime_service__descriptor,
    &runtime__v1__image_service__descriptor,
};

struct cri_client {
  ch_rpc_client *rpc;
  int timeout_ms;
  const ch_rpc_header *md; /* sent with unary calls; the caller's */
  size_t n_md;
  char package[32];
  char **paths[N_SERVICES]; /* paths[service][method index] */
};

/* ---- names and paths ------------------------------------------------------ */

const char *cri_package_name(const char *api) {
  if (!api || strcmp(api, "v1") == 0 || strcmp(api, CRI_PACKAGE_V1) == 0) return CRI_PACKAGE_V1;
  if (strcmp(api, "v1alpha2") == 0 || strcmp(api, CRI_PACKAGE_V1ALPHA2) == 0)
    return CRI_PACKAGE_V1ALPHA2;
  return NULL;
}

/* Finds a method by name; *service_index and *method_index locate it. */
static const ProtobufCMethodDescriptor *lookup(const char *method, int *service_index,
                                               unsigned *method_index) {
  for (int s = 0; s < N_SERVICES; s++) {
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(cri_services[s], method);
    if (m) {
      *service_index = s;
      *method_index = (unsigned)(m - cri_services[s]->methods);
      return m;
    }
  }
  return NULL;
}

const ProtobufCMethodDescriptor *cri_method_find(const char *method, const char **service) {
  int s;
  unsigned i;
  const ProtobufCMethodDescriptor *m = lookup(method, &s, &i);
  if (m && service) *service = cri_services[s]->short_name;
  return m;
}

const ProtobufCMessageDescriptor *cri_method_input(const char *method) {
  const ProtobufCMethodDescriptor *m = cri_method_find(method, NULL);
  return m ? m->input : NULL;
}

static void free_paths(cri_client *c) {
  for (int s = 0; s < N_SERVICES; s++) {
    if (!c->paths[s]) continue;
    for (unsigned i = 0; i < cri_services[s]->n_methods; i++) free(c->paths[s][i]);
    free(c->paths[s]);
    c->paths[s] = NULL;
  }
}

static int build_paths(cri_client *c, ch_error *err) {
  for (int s = 0; s < N_SERVICES; s++) {
    const ProtobufCServiceDescriptor *sd = cri_services[s];
    c->paths[s] = calloc(sd->n_methods, sizeof(char *));
    if (!c->paths[s]) return ch_fail(err, "out of memory");
    for (unsigned i = 0; i < sd->n_methods; i++)
      if (asprintf(&c->paths[s][i], "/%s.%s/%s", c->package, sd->short_name, sd->methods[i].name) <
          0) {
        c->paths[s][i] = NULL;
        return ch_fail(err, "out of memory");
      }
  }
  return 0;
}

/* ---- construction --------------------------------------------------------- */

/* A client without its connection yet. */
static cri_client *client_new(const char *package, int timeout_ms, ch_error *err) {
  const char *pkg = cri_package_name(package);
  if (!pkg) {
    ch_fail(err, "unknown CRI API \"%s\" (want v1 or v1alpha2)", package);
    return NULL;
  }
  cri_client *c = calloc(1, sizeof *c);
  if (!c) {
    ch_fail(err, "out of memory");
    return NULL;
  }
  c->timeout_ms = timeout_ms;
  snprintf(c->package, sizeof c->package, "%s", pkg);
  if (build_paths(c, err) < 0) {
    cri_client_free(c);
    return NULL;
  }
  return c;
}

static const ch_rpc_opts client_opts = {.user_agent = "crihook-cri-client/" CRIHOOK_VERSION};

cri_client *cri_client_open(const char *endpoint, const char *package, int timeout_ms,
                            ch_error *err) {
  ch_endpoint ep;
  if (ch_endpoint_parse(endpoint, &ep, err) < 0) return NULL;
  cri_client *c = client_new(package, timeout_ms, err);
  if (c && !(c->rpc = ch_rpc_client_new(ep.path, &client_opts, err))) {
    cri_client_free(c);
    return NULL;
  }
  return c;
}

void cri_client_free(cri_client *c) {
  if (!c) return;
  ch_rpc_client_free(c->rpc);
  free_paths(c);
  free(c);
}

void cri_client_set_metadata(cri_client *c, const ch_rpc_header *md, size_t n) {
  c->md = md;
  c->n_md = md ? n : 0;
}

bool cri_client_connected(cri_client *c) { return ch_rpc_client_ready(c->rpc); }

void cri_client_set_timeout(cri_client *c, int timeout_ms) { c->timeout_ms = timeout_ms; }

int cri_client_timeout(const cri_client *c) { return c->timeout_ms; }

const char *cri_client_package(const cri_client *c) { return c->package; }

/* ---- unary calls ----------------------------------------------------------- */

static void report_status(grpc_status_code *status, char *details, size_t details_len,
                          grpc_status_code code, const char *text) {
  if (status) *status = code;
  if (details && details_len > 0) snprintf(details, details_len, "%s", text);
}

/* The common first step of a call: the method resolved, the request's type
 * checked and the request packed into a malloc'd *buf that req->message
 * points at (the caller frees *buf). */
static const ProtobufCMethodDescriptor *start_call(const cri_client *c, const char *method,
                                                   const ProtobufCMessage *request,
                                                   ch_rpc_request *req, uint8_t **buf,
                                                   ch_error *err) {
  int s;
  unsigned i;
  const ProtobufCMethodDescriptor *m = lookup(method, &s, &i);
  if (!m) {
    ch_fail(err, "%s: not a method of the CRI RuntimeService or ImageService", method);
    return NULL;
  }
  if (request && request->descriptor != m->input) {
    ch_fail(err, "%s: request is a %s, want %s", method, request->descriptor->short_name,
            m->input->short_name);
    return NULL;
  }
  size_t len = request ? protobuf_c_message_get_packed_size(request) : 0;
  *buf = malloc(len ? len : 1);
  if (!*buf) {
    ch_fail(err, "%s: out of memory", method);
    return NULL;
  }
  if (request) protobuf_c_message_pack(request, *buf);
  *req = (ch_rpc_request){.path = c->paths[s][i], .message = *buf, .len = len};
  return m;
}

int cri_call(cri_client *c, const char *method, const ProtobufCMessage *request,
             ProtobufCMessage **response, grpc_status_code *status, char *details,
             size_t details_len, ch_error *err) {
  *response = NULL;
  report_status(status, details, details_len, GRPC_STATUS_UNKNOWN, "");
  ch_rpc_request req;
  uint8_t *buf;
  const ProtobufCMethodDescriptor *m = start_call(c, method, request, &req, &buf, err);
  if (!m) return -1;
  req.md = c->md;
  req.n_md = c->n_md;
  req.timeout_ms = c->timeout_ms;
  ch_rpc_result res;
  uint8_t *answer;
  size_t answer_len;
  int rc = ch_rpc_unary(c->rpc, &req, &answer, &answer_len, &res, err);
  free(buf);
  if (rc < 0) return ch_wrap(err, "%s", method);
  report_status(status, details, details_len, res.status, res.message);
  if (res.status != GRPC_STATUS_OK)
    return ch_fail(err, "%s: %s: %s", method, ch_status_name(res.status), res.message);
  *response = protobuf_c_message_unpack(m->output, NULL, answer_len, answer);
  free(answer);
  if (!*response) return ch_fail(err, "%s: cannot decode the %s", method, m->output->short_name);
  return 0;
}

int cri_call_json(cri_client *c, const char *method, const json_t *request, json_t **response,
                  grpc_status_code *status, char *details, size_t details_len, ch_error *err) {
  *response = NULL;
  report_status(status, details, details_len, GRPC_STATUS_UNKNOWN, "");
  const ProtobufCMessageDescriptor *input = cri_method_input(method);
  if (!input)
    return ch_fail(err, "%s: not a method of the CRI RuntimeService or ImageService", method);
  ProtobufCMessage *req = NULL;
  if (ch_pb_from_json(input, request, &req, err) < 0) return ch_wrap(err, "%s: request", method);
  ProtobufCMessage *resp = NULL;
  int rc = cri_call(c, method, req, &resp, status, details, details_len, err);
  protobuf_c_message_free_unpacked(req, NULL);
  if (rc < 0) return -1;
  *response = ch_pb_to_json(resp);
  protobuf_c_message_free_unpacked(resp, NULL);
  return *response ? 0 : ch_fail(err, "%s: out of memory", method);
}

/* ---- server-streaming calls ------------------------------------------------ */

typedef struct stream_ctx {
  const ProtobufCMessageDescriptor *output;
  const cri_stream_handler *handler;
  bool decode_failed, stopped;
} stream_ctx;

/* Decodes one message and hands it to the handler. */
static int stream_message(void *ud, const uint8_t *msg, size_t len) {
  stream_ctx *sc = ud;
  ProtobufCMessage *m = protobuf_c_message_unpack(sc->output, NULL, len, msg);
  if (!m) {
    sc->decode_failed = true;
    return 1;
  }
  int stop = sc->handler->on_message ? sc->handler->on_message(m, sc->handler->user) : 0;
  protobuf_c_message_free_unpacked(m, NULL);
  sc->stopped = stop != 0;
  return stop;
}

static int stream_should_stop(void *ud) {
  stream_ctx *sc = ud;
  int stop = sc->handler->should_stop ? sc->handler->should_stop(sc->handler->user) : 0;
  if (stop) sc->stopped = true;
  return stop;
}

int cri_call_stream(cri_client *c, const char *method, const ProtobufCMessage *request,
                    int timeout_ms, const cri_stream_handler *handler, grpc_status_code *status,
                    char *details, size_t details_len, ch_error *err) {
  report_status(status, details, details_len, GRPC_STATUS_UNKNOWN, "");
  ch_rpc_request req;
  uint8_t *buf;
  const ProtobufCMethodDescriptor *m = start_call(c, method, request, &req, &buf, err);
  if (!m) return -1;
  req.timeout_ms = timeout_ms;
  stream_ctx sc = {.output = m->output, .handler = handler};
  ch_rpc_stream_handler h = {.on_message = stream_message,
                             .should_stop = handler->should_stop ? stream_should_stop : NULL,
                             .ud = &sc};
  ch_rpc_result res;
  int rc = ch_rpc_stream(c->rpc, &req, &h, &res, err);
  free(buf);
  if (rc < 0) return ch_wrap(err, "%s", method);
  report_status(status, details, details_len, res.status, res.message);
  if (sc.decode_failed)
    return ch_fail(err, "%s: cannot decode a %s", method, m->output->short_name);
  if (res.status == GRPC_STATUS_OK || (sc.stopped && res.status == GRPC_STATUS_CANCELLED)) return 0;
  return ch_fail(err, "%s: %s: %s", method, ch_status_name(res.status), res.message);
}
