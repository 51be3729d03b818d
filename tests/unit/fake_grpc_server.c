/* SPDX-License-Identifier: Apache-2.0 */
/* fake_grpc_server.c: a scriptable unary gRPC server (fake_grpc_server.h).
 *
 * Each call goes through three steps on the server's completion queue:
 * REQUESTED (grpc handed us a call) -> RECEIVING (the request message is
 * read) -> ANSWERING (the handler's answer is sent with initial metadata,
 * status and close in one batch; or, for a hanging answer, only the close
 * is awaited) -> freed. */
#include "fake_grpc_server.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_util.h"

enum { STAGE_REQUESTED, STAGE_RECEIVING, STAGE_ANSWERING };

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

struct fake_grpc_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  fake_handler handler;
  void *data;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int shutting_down;
  int shutdown_done;
  int calls;
};

void fake_answer_message(fake_answer *answer, const ProtobufCMessage *msg) {
  free(answer->response);
  answer->status = GRPC_STATUS_OK;
  answer->response_len = protobuf_c_message_get_packed_size(msg);
  answer->response = malloc(answer->response_len ? answer->response_len : 1);
  if (!answer->response) abort();
  protobuf_c_message_pack(msg, answer->response);
}

void fake_answer_error(fake_answer *answer, grpc_status_code status, const char *details) {
  free(answer->response);
  answer->response = NULL;
  answer->response_len = 0;
  answer->status = status;
  snprintf(answer->details, sizeof answer->details, "%s", details);
}

static void free_call(fake_call *c) {
  if (c->call) grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->request_md);
  if (c->request) grpc_byte_buffer_destroy(c->request);
  if (c->response) grpc_byte_buffer_destroy(c->response);
  grpc_slice_unref(c->status_details);
  free(c);
}

static int stopping(fake_grpc_server *b) {
  pthread_mutex_lock(&b->mu);
  int stop = b->shutting_down;
  pthread_mutex_unlock(&b->mu);
  return stop;
}

/* Asks grpc for the next incoming call. */
static void arm(fake_grpc_server *b) {
  if (stopping(b)) return;
  fake_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->stage = STAGE_REQUESTED;
  c->status_details = grpc_empty_slice();
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->request_md);
  if (grpc_server_request_call(b->server, &c->call, &c->details, &c->request_md, b->cq, b->cq, c) !=
      GRPC_CALL_OK)
    free_call(c);
}

static void receive(fake_call *c) {
  grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
  op.data.recv_message.recv_message = &c->request;
  c->stage = STAGE_RECEIVING;
  if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK) free_call(c);
}

/* Runs the handler on the request and turns its answer into c's fields. */
static grpc_status_code run_handler(fake_grpc_server *b, fake_call *c, bool *hang) {
  char method[256];
  size_t n = GRPC_SLICE_LENGTH(c->details.method);
  if (n >= sizeof method) n = sizeof method - 1;
  memcpy(method, GRPC_SLICE_START_PTR(c->details.method), n);
  method[n] = '\0';
  size_t len = 0;
  uint8_t *request = c->request ? ch_byte_buffer_flatten(c->request, &len) : NULL;
  fake_answer answer = {.status = GRPC_STATUS_OK};
  b->handler(b->data, method, request ? request : (const uint8_t *)"", len, &answer);
  free(request);
  if (answer.response && answer.status == GRPC_STATUS_OK) {
    grpc_slice slice =
        grpc_slice_from_copied_buffer((const char *)answer.response, answer.response_len);
    c->response = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
  }
  free(answer.response);
  *hang = answer.hang;
  c->status_details = grpc_slice_from_copied_string(answer.details);
  pthread_mutex_lock(&b->mu);
  b->calls++;
  pthread_mutex_unlock(&b->mu);
  return answer.status;
}

/* The ops of the answer batch: the whole answer, or only the close. */
static size_t answer_ops(fake_call *c, grpc_status_code status, bool hang, grpc_op ops[4]) {
  if (!hang)
    return ch_unary_server_ops(ops, c->response, status, &c->status_details, &c->cancelled);
  memset(ops, 0, sizeof *ops);
  ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
  return 1;
}

static void answer(fake_grpc_server *b, fake_call *c) {
  bool hang = false;
  grpc_status_code status = run_handler(b, c, &hang);
  grpc_op ops[4];
  size_t k = answer_ops(c, status, hang, ops);
  c->stage = STAGE_ANSWERING;
  if (grpc_call_start_batch(c->call, ops, k, c, NULL) != GRPC_CALL_OK) free_call(c);
}

static void step(fake_grpc_server *b, fake_call *c, int success) {
  if (c->stage == STAGE_REQUESTED && success) {
    arm(b);
    receive(c);
  } else if (c->stage == STAGE_RECEIVING && success) {
    answer(b, c);
  } else {
    free_call(c);
  }
}

static void mark_shutdown_done(fake_grpc_server *b) {
  pthread_mutex_lock(&b->mu);
  b->shutdown_done = 1;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static void *serve(void *arg) {
  fake_grpc_server *b = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    if (ev.tag == b)
      mark_shutdown_done(b);
    else
      step(b, ev.tag, ev.success);
  }
  return NULL;
}

static void drain_and_destroy_cq(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

static int bind_unix(grpc_server *server, const char *path) {
  char target[256];
  snprintf(target, sizeof target, "unix:%s", path);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(server, target, creds);
  grpc_server_credentials_release(creds);
  return port;
}

fake_grpc_server *fake_grpc_start(const char *path, fake_handler handler, void *data) {
  fake_grpc_server *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->handler = handler;
  b->data = data;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  b->server = grpc_server_create(NULL, NULL);
  b->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(b->server, b->cq, NULL);
  if (bind_unix(b->server, path) == 0) {
    grpc_server_destroy(b->server);
    drain_and_destroy_cq(b->cq);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    return NULL;
  }
  grpc_server_start(b->server);
  arm(b);
  if (pthread_create(&b->thread, NULL, serve, b) != 0) abort();
  return b;
}

void fake_grpc_stop(fake_grpc_server *b) {
  if (!b) return;
  pthread_mutex_lock(&b->mu);
  b->shutting_down = 1;
  pthread_mutex_unlock(&b->mu);
  grpc_server_shutdown_and_notify(b->server, b->cq, b);
  grpc_server_cancel_all_calls(b->server);
  pthread_mutex_lock(&b->mu);
  while (!b->shutdown_done) pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  grpc_server_destroy(b->server);
  grpc_completion_queue_shutdown(b->cq);
  pthread_join(b->thread, NULL);
  grpc_completion_queue_destroy(b->cq);
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  free(b);
}

int fake_grpc_calls(fake_grpc_server *b) {
  pthread_mutex_lock(&b->mu);
  int n = b->calls;
  pthread_mutex_unlock(&b->mu);
  return n;
}
