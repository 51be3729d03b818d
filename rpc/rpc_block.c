/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_block.c: the blocking face of crihook's gRPC client (rpc.h): a
 * private libuv loop, one connection, one call at a time.
 *
 * A call starts on the client's connection (opened on the first call, and
 * again on the next call after it was lost: a restarted runtime is found
 * again without the caller doing anything) and the loop runs until the
 * call's on_end. The call's own deadline bounds the wait; a call without
 * one waits as long as the server keeps it open, as grpc core's would.
 *
 * Used by code that already blocks: crihookctl, backend detection, the
 * store's rebuild and the self-probe. Not for a loop thread. */
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

struct ch_rpc_client {
  uv_loop_t loop;
  ch_rpc_conn *conn;
  char *path;
  ch_rpc_opts opts;
  char *user_agent, *authority;
};

typedef struct waiter {
  bool done;
  ch_rpc_result *res;
  uint8_t *answer;
  size_t len;
  const ch_rpc_stream_handler *h; /* a streaming call's */
} waiter;

static int keep_answer(void *ud, const uint8_t *msg, size_t len) {
  waiter *w = ud;
  free(w->answer);
  w->answer = malloc(len ? len : 1);
  if (!w->answer) return 1;
  memcpy(w->answer, msg, len);
  w->len = len;
  return 0;
}

static int pass_message(void *ud, const uint8_t *msg, size_t len) {
  waiter *w = ud;
  return w->h->on_message ? w->h->on_message(w->h->ud, msg, len) : 0;
}

static void on_end(void *ud, const ch_rpc_result *res) {
  waiter *w = ud;
  *w->res = *res;
  w->done = true;
}

/* ---- construction ----------------------------------------------------------- */

static ch_rpc_client *client_new(const ch_rpc_opts *opts, ch_error *err) {
  ch_rpc_client *c = calloc(1, sizeof *c);
  if (!c) {
    ch_fail(err, "out of memory");
    return NULL;
  }
  if (opts) c->opts = *opts;
  if ((c->opts.user_agent && !(c->user_agent = strdup(c->opts.user_agent))) ||
      (c->opts.authority && !(c->authority = strdup(c->opts.authority)))) {
    free(c->user_agent);
    free(c);
    ch_fail(err, "out of memory");
    return NULL;
  }
  c->opts.user_agent = c->user_agent;
  c->opts.authority = c->authority;
  int rc = uv_loop_init(&c->loop);
  if (rc < 0) {
    free(c->user_agent);
    free(c->authority);
    free(c);
    ch_fail(err, "event loop: %s", uv_strerror(rc));
    return NULL;
  }
  return c;
}

ch_rpc_client *ch_rpc_client_new(const char *path, const ch_rpc_opts *opts, ch_error *err) {
  ch_rpc_client *c = client_new(opts, err);
  if (c && !(c->path = strdup(path))) {
    ch_rpc_client_free(c);
    ch_fail(err, "out of memory");
    return NULL;
  }
  return c;
}

void ch_rpc_client_free(ch_rpc_client *c) {
  if (!c) return;
  ch_rpc_conn_close(c->conn);
  uv_run(&c->loop, UV_RUN_DEFAULT); /* until the close callbacks have run */
  uv_loop_close(&c->loop);
  free(c->path);
  free(c->user_agent);
  free(c->authority);
  free(c);
}

/* A usable connection: the current one, or a new one if it was lost. */
static int connection(ch_rpc_client *c, ch_error *err) {
  if (c->conn && ch_rpc_conn_usable(c->conn)) return 0;
  ch_rpc_conn_close(c->conn);
  c->conn = NULL;
  return ch_rpc_conn_open(&c->loop, c->path, &c->opts, &c->conn, err);
}

/* ---- calls -------------------------------------------------------------------- */

static void wake(uv_timer_t *t) { (void)t; } /* only ends uv_run's wait */

static void poll_closed(uv_handle_t *h) { *(bool *)h->data = true; }

/* Runs the loop until the call ends, asking should_stop every 100 ms. */
static void wait_call(ch_rpc_client *c, ch_rpc_call *call, waiter *w) {
  bool polling = w->h && w->h->should_stop, closed = false;
  uv_timer_t poll;
  if (polling) {
    uv_timer_init(&c->loop, &poll);
    poll.data = &closed;
    uv_timer_start(&poll, wake, 100, 100);
  }
  while (!w->done) {
    if (polling && w->h->should_stop(w->h->ud)) {
      ch_rpc_call_cancel(call, "stopped by the caller");
      break;
    }
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  if (!polling) return;
  uv_close((uv_handle_t *)&poll, poll_closed);
  while (!closed) uv_run(&c->loop, UV_RUN_NOWAIT);
}

static int run_call(ch_rpc_client *c, const ch_rpc_request *req, const ch_rpc_call_ops *ops,
                    waiter *w, ch_error *err) {
  if (connection(c, err) < 0) return -1;
  ch_rpc_call *call = ch_rpc_call_start(c->conn, req, ops, w, err);
  if (!call) return -1;
  wait_call(c, call, w);
  return 0;
}

int ch_rpc_unary(ch_rpc_client *c, const ch_rpc_request *req, uint8_t **answer, size_t *len,
                 ch_rpc_result *res, ch_error *err) {
  *answer = NULL;
  *len = 0;
  waiter w = {.res = res};
  ch_rpc_call_ops ops = {.on_message = keep_answer, .on_end = on_end};
  ch_rpc_request unary = *req;
  unary.unary = true;
  if (run_call(c, &unary, &ops, &w, err) < 0) return -1;
  if (res->status == GRPC_STATUS_OK) {
    *answer = w.answer;
    *len = w.len;
  } else {
    free(w.answer);
  }
  return 0;
}

int ch_rpc_stream(ch_rpc_client *c, const ch_rpc_request *req, const ch_rpc_stream_handler *h,
                  ch_rpc_result *res, ch_error *err) {
  waiter w = {.res = res, .h = h};
  ch_rpc_call_ops ops = {.on_message = pass_message, .on_end = on_end};
  return run_call(c, req, &ops, &w, err);
}

bool ch_rpc_client_ready(ch_rpc_client *c) { return c->conn && ch_rpc_conn_ready(c->conn); }
