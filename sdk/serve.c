/* SPDX-License-Identifier: Apache-2.0 */
/* serve.c: the life of a hook server behind crihook_serve() (whose entry
 * points, one per symbol version, are in ops.c), and crihook_stop().
 *
 * Start: the endpoint parsed as crihookd parses one (common/endpoint.c:
 * "/x.sock", "unix:/x.sock", "unix:///x.sock"), grpc_init, the socket file
 * made ready (socket.c), a grpc server with one completion queue bound to
 * "unix:PATH", mode 0660, a few request_call armed (call.c). Run: this
 * thread drains the queue with a short timeout, so a stop request (a flag
 * set by the SIGTERM/SIGINT handler or by crihook_stop) is seen within one
 * tick. Stop, in the order grpc core needs: shutdown_and_notify (no new
 * calls; pending requests fire with ok=0 and are not re-armed), the calls in
 * flight get SHUTDOWN_GRACE_MS to finish (a second signal cuts that short),
 * then cancel_all_calls; once the shutdown tag fired and every call state is
 * freed: server destroy, queue shutdown and drain, socket file removed,
 * grpc_shutdown.
 *
 * One crihook_serve() per process at a time: the stop flag is process-wide,
 * as signals are. The previous SIGTERM/SIGINT dispositions are restored on
 * return. */
#include <errno.h>
#include <grpc/grpc_security.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "grpc_util.h"
#include "sdk.h"

#define TICK_MS 50
#define SHUTDOWN_GRACE_MS 2000
#define PENDING_REQUESTS 2

/* 0 running, 1 stop gracefully, 2 stop now (second signal). */
static atomic_int stop_level;
static atomic_bool serving;

void crihook_stop(void) {
  int expected = 0;
  atomic_compare_exchange_strong(&stop_level, &expected, 1);
}

static void on_signal(int sig) {
  (void)sig;
  int level = atomic_load(&stop_level);
  atomic_store(&stop_level, level == 0 ? 1 : 2);
}

typedef struct saved_signals {
  struct sigaction term, intr;
} saved_signals;

static void catch_signals(saved_signals *saved) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &saved->term);
  sigaction(SIGINT, &sa, &saved->intr);
}

static void restore_signals(const saved_signals *saved) {
  sigaction(SIGTERM, &saved->term, NULL);
  sigaction(SIGINT, &saved->intr, NULL);
}

/* The server on the endpoint's grpc target ("unix:PATH"), not started. */
static int create_server(sdk_server *s, const ch_endpoint *ep, crihook_error *err) {
  grpc_arg args[] = {ch_arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, CH_DEFAULT_MAX_MSG),
                     ch_arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, CH_DEFAULT_MAX_MSG)};
  grpc_channel_args channel_args = {.num_args = 2, .args = args};
  s->cq = grpc_completion_queue_create_for_next(NULL);
  s->server = grpc_server_create(&channel_args, NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, ep->target, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    snprintf(err->message, sizeof err->message, "cannot listen on %s: grpc could not bind it",
             ep->path);
    return -1;
  }
  return 0;
}

static void destroy_server(sdk_server *s) {
  if (s->server) grpc_server_destroy(s->server);
  if (s->cq) ch_queue_destroy(s->cq);
}

/* Shutdown bookkeeping of the loop. */
typedef struct shutdown_state {
  ch_tag tag; /* fires when the server has shut down */
  bool started, notified, cancelled;
  gpr_timespec cancel_at;
} shutdown_state;

static void on_shutdown(ch_tag *tag, bool ok) {
  (void)ok;
  ch_container_of(tag, shutdown_state, tag)->notified = true;
}

/* Called every tick: starts the shutdown on a stop request and cancels the
 * calls still open after the grace period or on a second signal. */
static void check_stop(sdk_server *s, shutdown_state *st) {
  int level = atomic_load(&stop_level);
  if (level == 0) return;
  if (!st->started) {
    st->started = true;
    s->accepting = false;
    st->cancel_at = ch_deadline_ms(SHUTDOWN_GRACE_MS);
    grpc_server_shutdown_and_notify(s->server, s->cq, &st->tag);
    if (s->log_debug) sdk_log("debug", "stopping: calls in flight get %d ms", SHUTDOWN_GRACE_MS);
  }
  bool late = gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), st->cancel_at) >= 0;
  if (!st->cancelled && (level > 1 || late)) {
    st->cancelled = true;
    grpc_server_cancel_all_calls(s->server);
  }
}

static void run_loop(sdk_server *s) {
  shutdown_state st = {.tag.fn = on_shutdown};
  while (!(st.notified && s->live_calls == 0)) {
    grpc_event ev = grpc_completion_queue_next(s->cq, ch_deadline_ms(TICK_MS), NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
      ch_tag *tag = ev.tag;
      tag->fn(tag, ev.success != 0);
    }
    check_stop(s, &st);
  }
}

static int arm_requests(sdk_server *s, crihook_error *err) {
  for (int i = 0; i < PENDING_REQUESTS; i++) {
    if (sdk_call_request(s) != 0) {
      snprintf(err->message, sizeof err->message, "cannot request calls from grpc");
      return -1;
    }
  }
  return 0;
}

/* Binds, starts and serves until stopped; the socket file is ours from the
 * bind on. */
static int serve_on(sdk_server *s, const ch_endpoint *ep, crihook_error *err) {
  const char *path = ep->path;
  ino_t ino = 0;
  if (sdk_socket_prepare(path, err) != 0) return -1;
  if (create_server(s, ep, err) != 0) return -1;
  grpc_server_start(s->server);
  if (sdk_socket_finish(path, &ino, err) != 0 || arm_requests(s, err) != 0) {
    atomic_store(&stop_level, 2);
    run_loop(s);
    sdk_socket_remove(path, ino);
    return -1;
  }
  if (s->log_debug) sdk_log("debug", "serving on %s", path);
  run_loop(s);
  if (s->log_debug) sdk_log("debug", "stopped, removing %s", path);
  destroy_server(s);
  s->server = NULL;
  s->cq = NULL;
  sdk_socket_remove(path, ino);
  return 0;
}

/* The endpoint as crihookd reads a registration file's (common/endpoint.c);
 * its "endpoint PATH: " prefix gives way to the SDK's "cannot listen on
 * PATH: ". */
static int parse_endpoint(const char *path, ch_endpoint *ep, crihook_error *err) {
  ch_error cerr;
  if (!path) path = "";
  if (ch_endpoint_parse(path, ep, &cerr) == 0) return 0;
  const char *why = cerr.msg;
  size_t n = strlen(path);
  if (strncmp(why, "endpoint ", 9) == 0 && strncmp(why + 9, path, n) == 0 &&
      strncmp(why + 9 + n, ": ", 2) == 0)
    why += 9 + n + 2;
  snprintf(err->message, sizeof err->message, "cannot listen on %s: %s", path, why);
  return -1;
}

int sdk_serve(const char *path, const crihook_plugin_ops *ops, void *user, crihook_error *err) {
  ch_endpoint ep;
  if (parse_endpoint(path, &ep, err) != 0) return -1;
  if (atomic_exchange(&serving, true)) {
    snprintf(err->message, sizeof err->message, "crihook_serve is already running");
    return -1;
  }
  const char *log = getenv("CRIHOOK_PLUGIN_LOG");
  sdk_server s = {.ops = *ops, .user = user, .accepting = true};
  s.log_debug = log && strcmp(log, "debug") == 0;
  saved_signals saved;
  atomic_store(&stop_level, 0);
  catch_signals(&saved);
  grpc_init();
  int rc = serve_on(&s, &ep, err);
  destroy_server(&s);
  grpc_shutdown();
  restore_signals(&saved);
  atomic_store(&serving, false);
  return rc;
}
