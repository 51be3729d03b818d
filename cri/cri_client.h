/* SPDX-License-Identifier: Apache-2.0 */
/* cri_client.h: a small blocking CRI client on crihook's own gRPC client (rpc.h).
 *
 * The one CRI client of crihook: used by crihookctl, the end-to-end tests,
 * the backend probe (backend/detect.c), the store's rebuild
 * (store/rebuild.c) and the self-probe (proxy/self_probe.c). A cri_client is a connection,
 * a CRI package ("runtime.v1" or "runtime.v1alpha2": same messages, same
 * field numbers) and a per-call timeout. Methods are named as in the .proto
 * ("RunPodSandbox", "ListImages"); the client finds each in the generated
 * RuntimeService or ImageService descriptor, which gives the request and
 * response types and the path ("/runtime.v1.ImageService/ListImages").
 *
 * Three levels, all blocking, one call at a time per thread:
 * - cri_call():        protobuf-c message in, message out;
 * - cri_call_json():   JSON in, JSON out (through api/pbjson.h);
 * - cri_call_stream(): a server-streaming call (GetContainerEvents), one
 *   callback per message, cancellable from the callback or a poll hook.
 *
 * Return convention (error.h): 0 when the call completed with status OK and
 * the answer decoded; -1 otherwise, with `err` filled as
 *   "<Method>: <STATUS_NAME>: <details>"   for a non-OK gRPC status, or
 *   "<Method>: <reason>"                   for a local failure (bad request,
 *                                          undecodable answer, unknown method).
 * `status` and `details` are optional (NULL/0); when given they receive the
 * gRPC status and its message (GRPC_STATUS_UNKNOWN and "" for local failures
 * that happen before a call is made).
 *
 * The calls go through crihook's own gRPC client (rpc/rpc.h, nghttp2 on a
 * private libuv loop): nothing here needs grpc core or grpc_init(). */
#pragma once

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "error.h"
#include "rpc.h"

#define CRI_PACKAGE_V1 "runtime.v1"
#define CRI_PACKAGE_V1ALPHA2 "runtime.v1alpha2"

typedef struct cri_client cri_client;

/* Maps "v1"/"v1alpha2" (or a full package name) to the package name; NULL if
 * unknown. NULL input gives runtime.v1. */
const char *cri_package_name(const char *api);

/* A client for a unix endpoint as users write it ("unix:///run/x.sock",
 * "/run/x.sock", see endpoint.h); `package` NULL means runtime.v1;
 * timeout_ms <= 0 means no deadline. It connects on the first call, and
 * again on the next call after the connection was lost. Returns NULL with
 * err filled for an unknown package or a bad endpoint. */
cri_client *cri_client_open(const char *endpoint, const char *package, int timeout_ms,
                            ch_error *err);

void cri_client_free(cri_client *c);

/* Metadata sent with every later unary call (`md` stays the caller's and
 * must outlive them; NULL/0: none), e.g. the self-probe's mark. */
void cri_client_set_metadata(cri_client *c, const ch_rpc_header *md, size_t n);

/* True if the last call found the server speaking HTTP/2 and the
 * connection is still up (the self-probe's "connected"). */
bool cri_client_connected(cri_client *c);

/* Changes the deadline of later calls (ms; <= 0: none). */
void cri_client_set_timeout(cri_client *c, int timeout_ms);
int cri_client_timeout(const cri_client *c);
const char *cri_client_package(const cri_client *c);

/* Looks a method up in RuntimeService and ImageService. Returns NULL if
 * neither declares it; *service gets the service's short name. */
const ProtobufCMethodDescriptor *cri_method_find(const char *method, const char **service);

/* The request type of a method (to build one with ch_pb_from_json or init). */
const ProtobufCMessageDescriptor *cri_method_input(const char *method);

/* Unary call. `request` must be of the method's input type (NULL sends the
 * empty message, which is every CRI request at its defaults). On success
 * *response is a new message of the output type: free it with
 * protobuf_c_message_free_unpacked(*response, NULL). */
int cri_call(cri_client *c, const char *method, const ProtobufCMessage *request,
             ProtobufCMessage **response, grpc_status_code *status, char *details,
             size_t details_len, ch_error *err);

/* Unary call with JSON (request NULL = empty request). On success *response is
 * a new JSON object (json_decref it). */
int cri_call_json(cri_client *c, const char *method, const json_t *request, json_t **response,
                  grpc_status_code *status, char *details, size_t details_len, ch_error *err);

/* Server-streaming call (request as for cri_call). on_message gets each answer message (owned by
 * the client, valid during the callback) and returns non-zero to cancel the call. should_stop, if
 * set, is polled about every 100 ms (e.g. a signal flag) and returns non-zero to cancel. timeout_ms
 * <= 0: no deadline (streams are usually open-ended; the client's unary timeout does not apply).
 * Returns 0 if the stream ended with OK or was cancelled by on_message or
 * should_stop; -1 otherwise (status as for cri_call). */
typedef struct cri_stream_handler {
  int (*on_message)(const ProtobufCMessage *msg, void *user);
  int (*should_stop)(void *user);
  void *user;
} cri_stream_handler;

int cri_call_stream(cri_client *c, const char *method, const ProtobufCMessage *request,
                    int timeout_ms, const cri_stream_handler *handler, grpc_status_code *status,
                    char *details, size_t details_len, ch_error *err);
