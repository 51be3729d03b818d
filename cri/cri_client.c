/* SPDX-License-Identifier: Apache-2.0 */
/* cri_client.c: blocking CRI calls by method name (contract in cri_client.h).
 *
 * A client precomputes the path of every method of the two CRI services for
 * its package ("/runtime.v1alpha2.RuntimeService/Version", ...) and keeps
 * them for its lifetime: grpc core refers to the method string of a call
 * without copying it. Unary calls go through ch_unary_call() (grpc_util.h);
 * the server-streaming call runs its own small event loop on a private
 * completion queue, polling every 100 ms so that a caller can stop it. */
#include "cri_client.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "crihook-config.h"
#include "endpoint.h"
#include "grpc_util.h"
#include "pbjson.h"

enum { N_SERVICES = 2 };

static const ProtobufCServiceDescriptor *const cri_services[N_SERVICES] = {
    &runtime__v1__runtime_service__descriptor,
    &runtime__v1__image_service__descriptor,
};

struct cri_client {
  grpc_channel *channel;
  bool owns_channel;
  int timeout_ms;
  const grpc_metadata *md; /* sent with unary calls; the caller's */
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

cri_client *cri_client_new(grpc_channel *channel, const char *package, int timeout_ms,
                           ch_error *err) {
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
  c->channel = channel;
  c->timeout_ms = timeout_ms;
  snprintf(c->package, sizeof c->package, "%s", pkg);
  if (build_paths(c, err) < 0) {
    cri_client_free(c);
    return NULL;
  }
  return c;
}

cri_client *cri_client_open(const char *endpoint, const char *package, int timeout_ms,
                            ch_error *err) {
  ch_endpoint ep;
  if (ch_endpoint_parse(endpoint, &ep, err) < 0) return NULL;
  ch_channel_opts opts = {.user_agent = "crihook-cri-client/" CRIHOOK_VERSION};
  grpc_channel *channel = ch_channel_open(ep.target, &opts);
  cri_client *c = cri_client_new(channel, package, timeout_ms, err);
  if (!c) {
    grpc_channel_destroy(channel);
    return NULL;
  }
  c->owns_channel = true;
  return c;
}

void cri_client_free(cri_client *c) {
  if (!c) return;
  if (c->owns_channel) grpc_channel_destroy(c->channel);
  free_paths(c);
  free(c);
}

void cri_client_set_metadata(cri_client *c, const grpc_metadata *md, size_t n) {
  c->md = md;
  c->n_md = md ? n : 0;
}

void cri_client_set_timeout(cri_client *c, int timeout_ms) { c->timeout_ms = timeout_ms; }

int cri_client_timeout(const cri_client *c) { return c->timeout_ms; }

const char *cri_client_package(const cri_client *c) { return c->package; }

/* ---- unary calls ----------------------------------------------------------- */

static void report_status(grpc_status_code *status, char *details, size_t details_len,
                          grpc_status_code code, const char *text) {
  if (status) *status = code;
  if (details && details_len > 0) snprintf(details, details_len, "%s", text);
}

/* Resolves the method and checks the request type: the common first step. */
static const ProtobufCMethodDescriptor *prepare(const char *method, const ProtobufCMessage *request,
                                                int *service, unsigned *index, ch_error *err) {
  const ProtobufCMethodDescriptor *m = lookup(method, service, index);
  if (!m) {
    ch_fail(err, "%s: not a method of the CRI RuntimeService or ImageService", method);
    return NULL;
  }
  if (request && request->descriptor != m->input) {
    ch_fail(err, "%s: request is a %s, want %s", method, request->descriptor->short_name,
            m->input->short_name);
    return NULL;
  }
  return m;
}

/* Encodes a message (NULL: the empty message) into a malloc'd block. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len) {
  *len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
  if (!msg) return malloc(1);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf) protobuf_c_message_pack(msg, buf);
  return buf;
}

int cri_call(cri_client *c, const char *method, const ProtobufCMessage *request,
             ProtobufCMessage **response, grpc_status_code *status, char *details,
             size_t details_len, ch_error *err) {
  *response = NULL;
  report_status(status, details, details_len, GRPC_STATUS_UNKNOWN, "");
  int s;
  unsigned i;
  const ProtobufCMethodDescriptor *m = prepare(method, request, &s, &i, err);
  if (!m) return -1;
  size_t len;
  uint8_t *buf = pack(request, &len);
  if (!buf) return ch_fail(err, "%s: out of memory", method);
  ch_unary_result res;
  int rc =
      ch_unary_call(c->channel, c->paths[s][i], buf, len, c->timeout_ms, c->md, c->n_md, &res, err);
  free(buf);
  if (rc < 0) return ch_wrap(err, "%s", method);
  report_status(status, details, details_len, res.status, res.details);
  if (res.status != GRPC_STATUS_OK) {
    ch_fail(err, "%s: %s: %s", method, ch_status_name(res.status), res.details);
    ch_unary_result_clear(&res);
    return -1;
  }
  static const uint8_t empty[1];
  *response = protobuf_c_message_unpack(m->output, NULL, res.response_len,
                                        res.response ? res.response : empty);
  ch_unary_result_clear(&res);
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

enum { TAG_START = 1, TAG_STATUS, TAG_MESSAGE };

/* State of one streaming call; every field is touched by one thread only. */
typedef struct stream_call {
  grpc_completion_queue *cq;
  grpc_call *call;
  const ProtobufCMessageDescriptor *output;
  const cri_stream_handler *handler;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *request, *received;
  grpc_status_code code;
  grpc_slice details;
  bool start_done, status_done, receiving, stopped;
  int decode_failed;
} stream_call;

static grpc_call_error start_ops(stream_call *sc, grpc_op *ops, size_t n, intptr_t tag) {
  return grpc_call_start_batch(sc->call, ops, n, (void *)tag, NULL);
}

/* Sends the request, half-closes, and asks for headers and the final status. */
static int stream_start(stream_call *sc) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = sc->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &sc->initial_md;
  if (start_ops(sc, ops, 4, TAG_START) != GRPC_CALL_OK) return -1;
  grpc_op status_op;
  memset(&status_op, 0, sizeof status_op);
  status_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  status_op.data.recv_status_on_client.status = &sc->code;
  status_op.data.recv_status_on_client.status_details = &sc->details;
  status_op.data.recv_status_on_client.trailing_metadata = &sc->trailing_md;
  return start_ops(sc, &status_op, 1, TAG_STATUS) == GRPC_CALL_OK ? 0 : -1;
}

static void stream_receive(stream_call *sc) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &sc->received;
  sc->received = NULL;
  sc->receiving = start_ops(sc, &op, 1, TAG_MESSAGE) == GRPC_CALL_OK;
}

static void stream_stop(stream_call *sc) {
  if (sc->stopped) return;
  sc->stopped = true;
  grpc_call_cancel(sc->call, NULL);
}

/* Decodes one received message and hands it to the handler. */
static void stream_deliver(stream_call *sc) {
  size_t len;
  uint8_t *bytes = ch_byte_buffer_flatten(sc->received, &len);
  ProtobufCMessage *msg = bytes ? protobuf_c_message_unpack(sc->output, NULL, len, bytes) : NULL;
  free(bytes);
  if (!msg) {
    sc->decode_failed = 1;
    stream_stop(sc);
    return;
  }
  if (sc->handler->on_message && sc->handler->on_message(msg, sc->handler->user) != 0)
    stream_stop(sc);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void stream_on_message(stream_call *sc, int success) {
  sc->receiving = false;
  if (success && sc->received) {
    stream_deliver(sc);
    grpc_byte_buffer_destroy(sc->received);
    sc->received = NULL;
    if (!sc->stopped) stream_receive(sc);
  }
}

static bool stream_finished(const stream_call *sc) {
  return sc->start_done && sc->status_done && !sc->receiving;
}

/* Runs the call until the status is in and no receive is pending. */
static void stream_loop(stream_call *sc) {
  while (!stream_finished(sc)) {
    if (!sc->stopped && sc->handler->should_stop && sc->handler->should_stop(sc->handler->user))
      stream_stop(sc);
    grpc_event ev = grpc_completion_queue_next(sc->cq, ch_deadline_ms(100), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) continue;
    if (ev.type != GRPC_OP_COMPLETE) break;
    switch ((intptr_t)ev.tag) {
      case TAG_START:
        sc->start_done = true;
        break;
      case TAG_STATUS:
        sc->status_done = true;
        break;
      case TAG_MESSAGE:
        stream_on_message(sc, ev.success);
        break;
    }
  }
}

/* Drains the queue before freeing what pending operations may still write. */
static void stream_teardown(stream_call *sc) {
  grpc_call_unref(sc->call);
  grpc_completion_queue_shutdown(sc->cq);
  while (grpc_completion_queue_next(sc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(sc->cq);
  if (sc->request) grpc_byte_buffer_destroy(sc->request);
  if (sc->received) grpc_byte_buffer_destroy(sc->received);
  grpc_slice_unref(sc->details);
  grpc_metadata_array_destroy(&sc->initial_md);
  grpc_metadata_array_destroy(&sc->trailing_md);
}

static grpc_byte_buffer *request_buffer(const ProtobufCMessage *request) {
  size_t len;
  uint8_t *buf = pack(request, &len);
  if (!buf) return NULL;
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)buf, len);
  free(buf);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

static void stream_init(stream_call *sc, cri_client *c, const char *path,
                        const ProtobufCMethodDescriptor *m, const ProtobufCMessage *request,
                        int timeout_ms, const cri_stream_handler *handler) {
  memset(sc, 0, sizeof *sc);
  sc->output = m->output;
  sc->handler = handler;
  sc->details = grpc_empty_slice();
  sc->code = GRPC_STATUS_UNKNOWN;
  grpc_metadata_array_init(&sc->initial_md);
  grpc_metadata_array_init(&sc->trailing_md);
  sc->cq = grpc_completion_queue_create_for_next(NULL);
  gpr_timespec deadline =
      timeout_ms > 0 ? ch_deadline_ms(timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
  sc->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, sc->cq,
                                      grpc_slice_from_static_string(path), NULL, deadline, NULL);
  sc->request = request_buffer(request);
}

/* Turns the finished call into the return value, status and error. */
static int stream_result(stream_call *sc, const char *method, grpc_status_code *status,
                         char *details, size_t details_len, ch_error *err) {
  char text[512];
  size_t n = GRPC_SLICE_LENGTH(sc->details);
  if (n >= sizeof text) n = sizeof text - 1;
  memcpy(text, GRPC_SLICE_START_PTR(sc->details), n);
  text[n] = '\0';
  report_status(status, details, details_len, sc->code, text);
  if (sc->decode_failed)
    return ch_fail(err, "%s: cannot decode a %s", method, sc->output->short_name);
  if (sc->code == GRPC_STATUS_OK || (sc->stopped && sc->code == GRPC_STATUS_CANCELLED)) return 0;
  return ch_fail(err, "%s: %s: %s", method, ch_status_name(sc->code), text);
}

int cri_call_stream(cri_client *c, const char *method, const ProtobufCMessage *request,
                    int timeout_ms, const cri_stream_handler *handler, grpc_status_code *status,
                    char *details, size_t details_len, ch_error *err) {
  report_status(status, details, details_len, GRPC_STATUS_UNKNOWN, "");
  int s;
  unsigned i;
  const ProtobufCMethodDescriptor *m = prepare(method, request, &s, &i, err);
  if (!m) return -1;
  stream_call sc;
  stream_init(&sc, c, c->paths[s][i], m, request, timeout_ms, handler);
  int rc = 0;
  if (!sc.request || stream_start(&sc) < 0) {
    rc = ch_fail(err, "%s: grpc refused to start the call", method);
    grpc_call_cancel(sc.call, NULL);
  } else {
    stream_receive(&sc);
    stream_loop(&sc);
    rc = stream_result(&sc, method, status, details, details_len, err);
  }
  stream_teardown(&sc);
  return rc;
}
