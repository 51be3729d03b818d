/* fake_cri_server.c: a tiny CRI server on grpc core (fake_cri_server.h).
 *
 * One thread runs the completion queue. Each incoming call is answered with
 * a single batch: initial metadata, receive the request, maybe send the
 * response, send the status, receive close. Initial metadata always goes in
 * the same batch as the status, so error answers are valid trailers-only
 * answers. */
#include "fake_cri_server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"

#define FAKE_MAX_CALLS 64

enum { STAGE_REQUESTED, STAGE_ANSWERING };

typedef struct fake_call {
  int stage;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  grpc_byte_buffer *request;
  grpc_byte_buffer *response;
  grpc_slice status_details;
  int cancelled;
} fake_call;

struct fake_cri_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  fake_cri_mode mode;
  char runtime_name[64];
  char runtime_version[64];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int shutting_down;
  int shutdown_done;
  int calls;
  char methods[FAKE_MAX_CALLS][128];
};

static void free_call(fake_call *c) {
  if (c->call) grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->request_md);
  if (c->request) grpc_byte_buffer_destroy(c->request);
  if (c->response) grpc_byte_buffer_destroy(c->response);
  grpc_slice_unref(c->status_details);
  free(c);
}

static void arm(fake_cri_server *s) {
  pthread_mutex_lock(&s->mu);
  int stop = s->shutting_down;
  pthread_mutex_unlock(&s->mu);
  if (stop) return;
  fake_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->stage = STAGE_REQUESTED;
  c->status_details = grpc_empty_slice();
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->request_md);
  if (grpc_server_request_call(s->server, &c->call, &c->details, &c->request_md, s->cq, s->cq, c) !=
      GRPC_CALL_OK)
    free_call(c);
}

static int method_is(const char *method, const char *api, const char *name) {
  char want[128];
  snprintf(want, sizeof want, "/runtime.%s.RuntimeService/%s", api, name);
  return strcmp(method, want) == 0;
}

static grpc_byte_buffer *version_response(const fake_cri_server *s, const char *api) {
  Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
  v.version = "0.1.0";
  v.runtime_name = (char *)s->runtime_name;
  v.runtime_version = (char *)s->runtime_version;
  v.runtime_api_version = (char *)api;
  size_t len = runtime__v1__version_response__get_packed_size(&v);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) abort();
  runtime__v1__version_response__pack(&v, buf);
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)buf, len);
  free(buf);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

static void answer(fake_cri_server *s, fake_call *c) {
  char method[128];
  size_t n = GRPC_SLICE_LENGTH(c->details.method);
  if (n >= sizeof method) n = sizeof method - 1;
  memcpy(method, GRPC_SLICE_START_PTR(c->details.method), n);
  method[n] = '\0';

  pthread_mutex_lock(&s->mu);
  if (s->calls < FAKE_MAX_CALLS) snprintf(s->methods[s->calls], sizeof s->methods[0], "%s", method);
  s->calls++;
  pthread_mutex_unlock(&s->mu);

  grpc_op ops[5];
  memset(ops, 0, sizeof ops);
  size_t k = 0;
  if (s->mode == FAKE_CRI_HANG) {
    /* only wait for the client to give up (or the server to shut down) */
    ops[k].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[k++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->stage = STAGE_ANSWERING;
    if (grpc_call_start_batch(c->call, ops, k, c, NULL) != GRPC_CALL_OK) free_call(c);
    return;
  }

  grpc_status_code status = GRPC_STATUS_UNIMPLEMENTED;
  const char *details = "unknown method";
  const char *api = NULL;
  switch (s->mode) {
    case FAKE_CRI_OK:
      if (method_is(method, "v1", "Version")) api = "v1";
      if (method_is(method, "v1alpha2", "Version")) api = "v1alpha2";
      break;
    case FAKE_CRI_V1_UNIMPLEMENTED:
      if (method_is(method, "v1alpha2", "Version")) api = "v1alpha2";
      break;
    case FAKE_CRI_ALL_UNIMPLEMENTED:
    case FAKE_CRI_HANG:
      break;
    case FAKE_CRI_UNAVAILABLE:
      status = GRPC_STATUS_UNAVAILABLE;
      details = FAKE_CRI_UNAVAILABLE_TEXT;
      break;
  }
  if (api) {
    status = GRPC_STATUS_OK;
    details = "";
    c->response = version_response(s, api);
  }
  c->status_details = grpc_slice_from_static_string(details);

  ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[k].op = GRPC_OP_RECV_MESSAGE;
  ops[k++].data.recv_message.recv_message = &c->request;
  if (c->response) {
    ops[k].op = GRPC_OP_SEND_MESSAGE;
    ops[k++].data.send_message.send_message = c->response;
  }
  ops[k].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[k].data.send_status_from_server.status = status;
  ops[k++].data.send_status_from_server.status_details = &c->status_details;
  ops[k].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[k++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->stage = STAGE_ANSWERING;
  if (grpc_call_start_batch(c->call, ops, k, c, NULL) != GRPC_CALL_OK) free_call(c);
}

static void *serve(void *arg) {
  fake_cri_server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    if (ev.tag == s) {
      pthread_mutex_lock(&s->mu);
      s->shutdown_done = 1;
      pthread_cond_broadcast(&s->cv);
      pthread_mutex_unlock(&s->mu);
      continue;
    }
    fake_call *c = ev.tag;
    if (c->stage == STAGE_REQUESTED && ev.success) {
      arm(s);
      answer(s, c);
    } else {
      free_call(c);
    }
  }
  return NULL;
}

fake_cri_server *fake_cri_start(const char *path, fake_cri_mode mode, const char *runtime_name,
                                const char *runtime_version) {
  fake_cri_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->mode = mode;
  snprintf(s->runtime_name, sizeof s->runtime_name, "%s", runtime_name);
  snprintf(s->runtime_version, sizeof s->runtime_version, "%s", runtime_version);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->server = grpc_server_create(NULL, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  char target[256];
  snprintf(target, sizeof target, "unix:%s", path);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, target, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return NULL;
  }
  grpc_server_start(s->server);
  arm(s);
  if (pthread_create(&s->thread, NULL, serve, s) != 0) abort();
  return s;
}

void fake_cri_stop(fake_cri_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->shutting_down = 1;
  pthread_mutex_unlock(&s->mu);
  grpc_server_shutdown_and_notify(s->server, s->cq, s);
  grpc_server_cancel_all_calls(s->server);
  pthread_mutex_lock(&s->mu);
  while (!s->shutdown_done) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  pthread_join(s->thread, NULL);
  grpc_completion_queue_destroy(s->cq);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

int fake_cri_call_count(fake_cri_server *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->calls;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void fake_cri_call_method(fake_cri_server *s, int i, char *buf, size_t len) {
  pthread_mutex_lock(&s->mu);
  snprintf(buf, len, "%s", i >= 0 && i < s->calls && i < FAKE_MAX_CALLS ? s->methods[i] : "");
  pthread_mutex_unlock(&s->mu);
}
