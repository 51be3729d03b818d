/* SPDX-License-Identifier: Apache-2.0 */
/* call.c: one hook call on the plugin's side, from request to answer.
 *
 *   requested  grpc_server_request_call fired: arm the next request, find
 *              the hook by method path (registry/hooks.c), receive the message
 *   received   decode it (protobuf-c), run the plugin's callback, encode its
 *              response, send initial metadata + message + status in one
 *              batch (initial metadata always goes with the status, or a
 *              trailers-only answer would hang the client)
 *   done       log one line at debug level, free everything
 *
 * An unknown method, or a hook whose callback is NULL, is answered
 * UNIMPLEMENTED without reading the message. A callback's non-zero return is
 * the status, its crihook_error the status message. */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grpc_util.h"
#include "hooks.h"
#include "sdk.h"

_Static_assert(CH_HOOK_COUNT == 10,
               "a new hook point needs its callback appended at the end of crihook_plugin_ops");

/* Where each hook point's callback sits in crihook_plugin_ops. */
static const size_t callback_offset[CH_HOOK_COUNT] = {
    [CH_HOOK_PRE_RUN_POD_SANDBOX] = offsetof(crihook_plugin_ops, pre_run_pod_sandbox),
    [CH_HOOK_POST_STOP_POD_SANDBOX] = offsetof(crihook_plugin_ops, post_stop_pod_sandbox),
    [CH_HOOK_PRE_CREATE_CONTAINER] = offsetof(crihook_plugin_ops, pre_create_container),
    [CH_HOOK_PRE_START_CONTAINER] = offsetof(crihook_plugin_ops, pre_start_container),
    [CH_HOOK_POST_START_CONTAINER] = offsetof(crihook_plugin_ops, post_start_container),
    [CH_HOOK_POST_STOP_CONTAINER] = offsetof(crihook_plugin_ops, post_stop_container),
    [CH_HOOK_PRE_UPDATE_CONTAINER_RESOURCES] =
        offsetof(crihook_plugin_ops, pre_update_container_resources),
    [CH_HOOK_PRE_STOP_CONTAINER] = offsetof(crihook_plugin_ops, pre_stop_container),
    [CH_HOOK_PRE_REMOVE_POD_SANDBOX] = offsetof(crihook_plugin_ops, pre_remove_pod_sandbox),
    [CH_HOOK_POST_REMOVE_CONTAINER] = offsetof(crihook_plugin_ops, post_remove_container),
};

typedef struct sdk_call {
  ch_tag tag;
  sdk_server *server;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  grpc_byte_buffer *request;  /* received; ours */
  grpc_byte_buffer *response; /* sent; ours */
  grpc_slice status_message;
  grpc_status_code status;
  int cancelled;
  int hook; /* ch_hook_point, or -1 */
  struct timespec start;
  char pod[256], container[128]; /* for the log line */
} sdk_call;

static void on_requested(ch_tag *tag, bool ok);
static void on_received(ch_tag *tag, bool ok);
static void on_done(ch_tag *tag, bool ok);

void sdk_log(const char *level, const char *fmt, ...) {
  char line[2048];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(line + n, sizeof line - n,
                        ".%03ldZ %-5s crihook-plugin: ", now.tv_nsec / 1000000, level);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  n = (m < 0 || n + (size_t)m >= sizeof line - 1) ? sizeof line - 2 : n + (size_t)m;
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, n);
  (void)ignored;
}

static void call_free(sdk_call *c) {
  if (c->call) grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->request_md);
  if (c->request) grpc_byte_buffer_destroy(c->request);
  if (c->response) grpc_byte_buffer_destroy(c->response);
  grpc_slice_unref(c->status_message);
  c->server->live_calls--;
  free(c);
}

int sdk_call_request(sdk_server *s) {
  sdk_call *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->server = s;
  c->hook = -1;
  c->status_message = grpc_empty_slice();
  c->tag.fn = on_requested;
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->request_md);
  s->live_calls++;
  grpc_call_error rc = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_md,
                                                s->cq, s->cq, &c->tag);
  if (rc != GRPC_CALL_OK) {
    call_free(c);
    return -1;
  }
  return 0;
}

static int find_hook(grpc_slice method) {
  for (int i = 0; i < CH_HOOK_COUNT; i++) {
    if (grpc_slice_str_cmp(method, ch_hook_method((ch_hook_point)i)) == 0) return i;
  }
  return -1;
}

typedef void (*any_callback)(void);

static any_callback callback_of(const sdk_call *c) {
  any_callback fn;
  memcpy(&fn, (const char *)&c->server->ops + callback_offset[c->hook], sizeof fn);
  return fn;
}

/* The final batch: initial metadata, the message if any, the status. */
static void answer(sdk_call *c, grpc_status_code status, const char *message) {
  c->status = status;
  grpc_slice_unref(c->status_message);
  c->status_message = grpc_slice_from_copied_string(message ? message : "");
  grpc_op ops[4];
  size_t n = ch_unary_server_ops(ops, status == GRPC_STATUS_OK ? c->response : NULL, status,
                                 &c->status_message, &c->cancelled);
  c->tag.fn = on_done;
  if (grpc_call_start_batch(c->call, ops, n, &c->tag, NULL) != GRPC_CALL_OK) call_free(c);
}

static void receive(sdk_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->request;
  c->tag.fn = on_received;
  if (grpc_call_start_batch(c->call, &op, 1, &c->tag, NULL) != GRPC_CALL_OK) call_free(c);
}

static void on_requested(ch_tag *tag, bool ok) {
  sdk_call *c = ch_container_of(tag, sdk_call, tag);
  sdk_server *s = c->server;
  if (!ok) { /* the server is shutting down */
    call_free(c);
    return;
  }
  clock_gettime(CLOCK_MONOTONIC, &c->start);
  if (s->accepting && sdk_call_request(s) != 0)
    sdk_log("error", "cannot wait for the next call (out of memory?)");
  c->hook = find_hook(c->details.method);
  if (c->hook < 0) {
    char *method = grpc_slice_to_c_string(c->details.method);
    char message[512];
    snprintf(message, sizeof message, "unknown method %s", method);
    gpr_free(method);
    answer(c, GRPC_STATUS_UNIMPLEMENTED, message);
  } else if (!callback_of(c)) {
    char message[256];
    snprintf(message, sizeof message, "this plugin does not implement the %s hook",
             ch_hook_name((ch_hook_point)c->hook));
    answer(c, GRPC_STATUS_UNIMPLEMENTED, message);
  } else {
    receive(c);
  }
}

/* The request's bytes as one slice (unref it). */
static grpc_slice request_bytes(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return grpc_empty_slice();
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  return all;
}

static void note_who(sdk_call *c, const Runtime__V1alpha1__PodSandboxMetadata *pod,
                     const Runtime__V1alpha1__ContainerMetadata *ctr) {
  if (pod) snprintf(c->pod, sizeof c->pod, "%s/%s", pod->namespace_, pod->name);
  if (ctr) snprintf(c->container, sizeof c->container, "%s", ctr->name);
}

static int run_callback(sdk_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        crihook_error *err) {
  sdk_server *s = c->server;
  if (ch_hook_is_pod_level((ch_hook_point)c->hook)) {
    const crihook_pod_request *pr = (const crihook_pod_request *)req;
    note_who(c, pr->pod_meta, NULL);
    crihook_pod_hook fn = (crihook_pod_hook)callback_of(c);
    return fn(s->user, pr, (crihook_pod_response *)resp, err);
  }
  const crihook_container_request *cr = (const crihook_container_request *)req;
  note_who(c, cr->pod_meta, cr->container_meta);
  crihook_container_hook fn = (crihook_container_hook)callback_of(c);
  return fn(s->user, cr, (crihook_container_response *)resp, err);
}

static grpc_byte_buffer *encode(const ProtobufCMessage *msg) {
  grpc_slice slice = grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

/* A callback's return as a grpc status: 1..16 as they are, anything else
 * INTERNAL. */
static grpc_status_code status_of(int rc) {
  if (rc == 0) return GRPC_STATUS_OK;
  return (rc > 0 && rc <= GRPC_STATUS_UNAUTHENTICATED) ? (grpc_status_code)rc
                                                       : GRPC_STATUS_INTERNAL;
}

/* Decodes, calls the plugin, encodes; returns the status and fills `err`. */
static grpc_status_code handle(sdk_call *c, grpc_slice bytes, crihook_error *err) {
  bool pod_level = ch_hook_is_pod_level((ch_hook_point)c->hook);
  const ProtobufCMessageDescriptor *req_desc =
      pod_level ? &runtime__v1alpha1__pod_sandbox_hook_request__descriptor
                : &runtime__v1alpha1__container_resource_hook_request__descriptor;
  const ProtobufCMessageDescriptor *resp_desc =
      pod_level ? &runtime__v1alpha1__pod_sandbox_hook_response__descriptor
                : &runtime__v1alpha1__container_resource_hook_response__descriptor;
  ProtobufCMessage *req = protobuf_c_message_unpack(req_desc, NULL, GRPC_SLICE_LENGTH(bytes),
                                                    GRPC_SLICE_START_PTR(bytes));
  if (!req)
    return crihook_fail(err, GRPC_STATUS_INVALID_ARGUMENT, "cannot decode %s", req_desc->name);
  ProtobufCMessage *resp = malloc(resp_desc->sizeof_message);
  if (!resp) {
    protobuf_c_message_free_unpacked(req, NULL);
    return crihook_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  protobuf_c_message_init(resp_desc, resp);
  grpc_status_code status = status_of(run_callback(c, req, resp, err));
  if (status == GRPC_STATUS_OK) c->response = encode(resp);
  protobuf_c_message_free_unpacked(resp, NULL);
  protobuf_c_message_free_unpacked(req, NULL);
  return status;
}

static void on_received(ch_tag *tag, bool ok) {
  sdk_call *c = ch_container_of(tag, sdk_call, tag);
  if (!ok || !c->request) { /* cancelled, or the client sent no message */
    if (!ok) {
      call_free(c);
      return;
    }
    answer(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
    return;
  }
  crihook_error err = {{0}};
  grpc_slice bytes = request_bytes(c->request);
  grpc_status_code status = handle(c, bytes, &err);
  grpc_slice_unref(bytes);
  if (status != GRPC_STATUS_OK && err.message[0] == '\0')
    snprintf(err.message, sizeof err.message, "the %s hook failed (status %d)",
             ch_hook_name((ch_hook_point)c->hook), (int)status);
  answer(c, status, status == GRPC_STATUS_OK ? "" : err.message);
}

static double ms_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) * 1e3 + (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void log_call(const sdk_call *c, bool ok) {
  char *method = grpc_slice_to_c_string(c->details.method);
  const char *hook = c->hook >= 0 ? ch_hook_name((ch_hook_point)c->hook) : method;
  char *message = grpc_slice_to_c_string(c->status_message);
  sdk_log("debug", "hook=%s pod=%s container=%s status=%s%s%s%s ms=%.2f", hook,
          c->pod[0] ? c->pod : "-", c->container[0] ? c->container : "-", ch_status_name(c->status),
          message[0] ? " message=\"" : "", message, message[0] ? "\"" : "", ms_since(&c->start));
  if (!ok || c->cancelled)
    sdk_log("debug", "hook=%s: the client went away before the answer", hook);
  gpr_free(message);
  gpr_free(method);
}

static void on_done(ch_tag *tag, bool ok) {
  sdk_call *c = ch_container_of(tag, sdk_call, tag);
  if (c->server->log_debug) log_call(c, ok);
  call_free(c);
}
