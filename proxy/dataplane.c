/* SPDX-License-Identifier: Apache-2.0 */
/* dataplane.c: the relay loops, the routing of each stream (hooked calls
 * to hooked.c), its record in the metrics and the trace, and the drain
 * (dataplane.h). */
#include "dataplane.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/status.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "dispatch.h"
#include "h2relay.h"
#include "hooked.h"
#include "intercept.h"
#include "listen.h"
#include "log.h"
#include "methods.h"
#include "metrics.h"
#include "percent.h"
#include "self_probe.h"
#include "trace.h"

enum { ROUTE_RUNTIME, ROUTE_IMAGE };
enum { CMD_NONE, CMD_DRAIN, CMD_CLOSE };

#define LISTEN_BACKLOG 4096
#define DRAIN_POLL_MS 10
#define LINGER_MS 100 /* after the last call ended, before the connections close */
#define DRAIN_MESSAGE "crihookd is shutting down"
#define SWEEP_MS (30 * 1000)      /* how often idle plugin connections are looked for */
#define CONN_IDLE_MS (120 * 1000) /* a plugin connection unused this long is closed */

typedef struct dp_worker {
  ch_dataplane *dp;
  int index;
  uv_loop_t loop;
  uv_async_t wake;
  h2r *relay;
  ch_hooked_env hooked; /* its conns: the hook servers and the runtime, for hooked calls */
  uv_timer_t sweep;     /* idle connections of the pool; after the close, its end */
  pthread_t thread;
  bool started;
  bool draining; /* its relay was told to drain (on its thread) */
} dp_worker;

struct ch_dataplane {
  ch_dataplane_config config;
  char *listen_path;
  int listen_fd;
  dp_worker *workers;
  int worker_count;
  atomic_int cmd;
  atomic_bool forced;
  atomic_int live; /* client streams, all loops (h2r_config.live_streams) */
};

/* ---- per stream (on a loop thread) ---- */

/* h2r_route_out.tag: the method is in the CRI method table (metrics.h). */
#define TAG_KNOWN 1u

static int route_of(void *ud, const char *path, size_t len, h2r_route_out *out) {
  dp_worker *w = ud;
  const ch_dataplane_config *c = &w->dp->config;
  ch_method_info info = ch_method_classify(path, len);
  out->streaming = info.known_streaming;
  out->tag = info.known_unary || info.known_streaming ? TAG_KNOWN : 0;
  out->intercept = c->registry && c->store && info.known_unary &&
                   ch_intercept_kind_of(info.cri_name, info.cri_name_len) != CH_INTERCEPT_NONE;
  return info.image_service ? ROUTE_IMAGE : ROUTE_RUNTIME;
}

static void on_request(void *ud, h2r_call *call, const uint8_t *body, size_t len) {
  dp_worker *w = ud;
  ch_hooked_request(&w->hooked, call, body, len);
}

static void on_answer(void *ud, h2r_call *call, const h2r_answer *answer) {
  (void)ud;
  ch_hooked_answer(call, answer);
}

static void trace_stream(const h2r_stream_end *e, ch_intercept *ic, int code, double seconds) {
  ch_trace_event *ev =
      ch_trace_event_new(e->path, e->path_len, (grpc_status_code)code, seconds * 1e3);
  if (!ev) return;
  if (code != GRPC_STATUS_OK && e->grpc_message)
    ch_percent_decode(e->grpc_message, e->grpc_message_len, ev->message, sizeof ev->message,
                      CH_PCT_GRPC_MESSAGE);
  if (ic) ch_intercept_trace(ic, ev); /* its pod, container and hook calls */
  ch_trace_publish(ev);
}

/* Counts a call (and traces it while someone watches); a hooked call's
 * once its Post hooks are done (hooked.c), with its intercept. */
static void record_stream(const h2r_stream_end *e, ch_intercept *ic) {
  if (e->client_reset) ch_info("relay", "client cancelled a stream method=%s", e->path);
  int code = e->grpc_status >= 0 ? e->grpc_status : GRPC_STATUS_CANCELLED;
  double seconds = (double)(e->ended_ns - e->started_ns) / 1e9;
  ch_metrics_cri_call(e->path, e->path_len, (e->tag & TAG_KNOWN) != 0, (grpc_status_code)code,
                      seconds);
  if (ch_trace_active()) trace_stream(e, ic, code, seconds);
}

static void on_stream_end(void *ud, const h2r_stream_end *e) {
  (void)ud;
  if (e->call_data)
    ch_hooked_end(e, record_stream);
  else if (!e->self_probe) /* see dataplane.h */
    record_stream(e, NULL);
}

/* ---- the loops ---- */

/* After the relay's close: once the last hooked call is done (its Post
 * hooks cancelled, its status lookup ended), the pool goes, and with it the
 * loop's last handles. */
static void close_when_done(uv_timer_t *t) {
  dp_worker *w = t->data;
  if (ch_hooked_live(&w->hooked) > 0) return;
  ch_rpc_pool_free(w->hooked.conns);
  w->hooked.conns = NULL;
  uv_close((uv_handle_t *)&w->sweep, NULL);
}

static void sweep_conns(uv_timer_t *t) {
  dp_worker *w = t->data;
  int n = ch_rpc_pool_sweep(w->hooked.conns, CONN_IDLE_MS);
  if (n) ch_debug("dataplane", "idle plugin connections closed count=%d loop=%d", n, w->index);
}

static void on_wake(uv_async_t *h) {
  dp_worker *w = h->data;
  int cmd = atomic_load(&w->dp->cmd);
  if (cmd == CMD_DRAIN) {
    h2r_drain(w->relay, DRAIN_MESSAGE);
    if (!w->draining) /* from here on, a new call on any connection is refused */
      ch_info("dataplane", "relay loop draining: new calls refused loop=%d", w->index);
    w->draining = true;
  } else if (cmd == CMD_CLOSE && !uv_is_closing((uv_handle_t *)&w->wake)) {
    ch_dispatch_cancel_all(); /* hooked calls in their Pre hooks are refused */
    h2r_close(w->relay);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_timer_start(&w->sweep, close_when_done, 0, DRAIN_POLL_MS);
  }
}

static void *worker_main(void *arg) {
  dp_worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  return NULL;
}

static int worker_init(ch_dataplane *dp, dp_worker *w, int index, ch_error *err) {
  const ch_dataplane_config *c = &dp->config;
  w->dp = dp;
  w->index = index;
  int listen_fd = fcntl(dp->listen_fd, F_DUPFD_CLOEXEC, 0); /* the relay's from here on */
  if (listen_fd < 0) return ch_fail_errno(err, errno, "dup the listen socket");
  uv_loop_init(&w->loop);
  w->hooked = (ch_hooked_env){.registry = c->registry,
                              .store = c->store,
                              .backend_path = c->backend_path,
                              .conns = ch_rpc_pool_new(&w->loop),
                              .loop = &w->loop};
  if (!w->hooked.conns) {
    close(listen_fd);
    uv_loop_close(&w->loop);
    return ch_fail(err, "relay loop %d: out of memory", index);
  }
  h2r_config rc = {.listen_path = dp->listen_path,
                   .backend_path = c->backend_path,
                   .ud = w,
                   .route = route_of,
                   .route_paths = {c->backend_path, c->image_backend_path},
                   .on_request = on_request,
                   .on_answer = on_answer,
                   .max_held_bytes = c->max_msg_size + 5, /* one message and its prefix */
                   .on_stream_end = on_stream_end,
                   .self_probe_header = CH_SELF_PROBE_KEY,
                   .max_msg_size = c->max_msg_size,
                   .have_listen_fd = true,
                   .listen_fd = listen_fd,
                   .live_streams = &dp->live,
                   .verbatim = c->verbatim};
  if (h2r_start(&w->loop, &rc, &w->relay, err) != 0) { /* it closed listen_fd */
    ch_rpc_pool_free(w->hooked.conns);
    w->hooked.conns = NULL;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    return ch_wrap(err, "relay loop %d", index);
  }
  uv_async_init(&w->loop, &w->wake, on_wake);
  w->wake.data = w;
  uv_timer_init(&w->loop, &w->sweep);
  w->sweep.data = w;
  uv_timer_start(&w->sweep, sweep_conns, SWEEP_MS, SWEEP_MS);
  return 0;
}

static int worker_run(dp_worker *w, ch_error *err) {
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
    return ch_fail(err, "cannot start relay loop thread %d", w->index);
  w->started = true;
  char name[16];
  snprintf(name, sizeof name, "ch-worker-%d", w->index);
  pthread_setname_np(w->thread, name); /* for top -H, gdb, and the stall test */
  return 0;
}

/* ---- the listen socket ---- */

static int open_listener(const char *path, ch_error *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return ch_fail(err, "socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ch_fail_errno(err, errno, "socket for %s", path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    return ch_fail_errno(err, e, "cannot listen on unix:%s", path);
  }
  return fd;
}

/* ---- start and stop ---- */

static void stop_workers(ch_dataplane *dp) {
  atomic_store(&dp->cmd, CMD_CLOSE);
  for (int i = 0; i < dp->worker_count; i++) {
    dp_worker *w = &dp->workers[i];
    uv_async_send(&w->wake);
    if (w->started) {
      pthread_join(w->thread, NULL);
    } else {
      on_wake(&w->wake);
      uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&w->loop); /* the relay closed its listen_fd */
  }
  dp->worker_count = 0;
}

static int start_workers(ch_dataplane *dp, int count, ch_error *err) {
  dp->workers = calloc((size_t)count, sizeof *dp->workers);
  if (!dp->workers) return ch_fail(err, "out of memory");
  for (int i = 0; i < count; i++) {
    if (worker_init(dp, &dp->workers[i], i, err) != 0) return -1;
    dp->worker_count = i + 1;
  }
  for (int i = 0; i < count; i++)
    if (worker_run(&dp->workers[i], err) != 0) return -1;
  return 0;
}

int ch_dataplane_start(const ch_dataplane_config *config, ch_dataplane **out, ch_error *err) {
  if (ch_listen_prepare(config->listen_path, err) != 0) return -1;
  ch_dataplane *dp = calloc(1, sizeof *dp);
  if (!dp) return ch_fail(err, "out of memory");
  dp->config = *config;
  dp->listen_fd = -1;
  if (!(dp->listen_path = strdup(config->listen_path))) {
    free(dp);
    return ch_fail(err, "out of memory");
  }
  dp->listen_fd = open_listener(dp->listen_path, err);
  if (dp->listen_fd < 0 || start_workers(dp, config->workers > 0 ? config->workers : 1, err) != 0 ||
      ch_listen_finish(dp->listen_path, err) != 0) {
    if (dp->listen_fd >= 0) unlink(dp->listen_path);
    stop_workers(dp);
    ch_dataplane_free(dp);
    return -1;
  }
  *out = dp;
  return 0;
}

int ch_dataplane_in_flight(const ch_dataplane *dp) { return atomic_load(&dp->live); }

void ch_dataplane_force(ch_dataplane *dp) { atomic_store(&dp->forced, true); }

static void wake_all(ch_dataplane *dp) {
  for (int i = 0; i < dp->worker_count; i++) uv_async_send(&dp->workers[i].wake);
}

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static void sleep_ms(long ms) { nanosleep(&(struct timespec){0, ms * 1000 * 1000}, NULL); }

void ch_dataplane_drain(ch_dataplane *dp) {
  uint64_t end = now_ms() + (uint64_t)dp->config.shutdown_grace_ms;
  unlink(dp->listen_path); /* kubelet should see the socket gone at once */
  close(dp->listen_fd);    /* each loop closes its own copy in h2r_drain */
  dp->listen_fd = -1;
  atomic_store(&dp->cmd, CMD_DRAIN);
  wake_all(dp);
  /* Each poll wakes the loops again: a stream that turned out to stream
   * since the last one is ended too. */
  while (ch_dataplane_in_flight(dp) > 0 && !atomic_load(&dp->forced) && now_ms() < end) {
    sleep_ms(DRAIN_POLL_MS);
    wake_all(dp);
  }
  int left = ch_dataplane_in_flight(dp);
  if (left > 0 && !atomic_load(&dp->forced))
    ch_warn("dataplane",
            "calls still in flight after the grace period; cancelling them in_flight=%d", left);
  /* The connections close next: a client that is still writing to one (a
   * window update) would otherwise see "Broken pipe" before it has read its
   * call's final status. */
  if (left == 0 && !atomic_load(&dp->forced)) sleep_ms(LINGER_MS);
  stop_workers(dp);
}

void ch_dataplane_free(ch_dataplane *dp) {
  if (dp->listen_fd >= 0) close(dp->listen_fd);
  dp->listen_fd = -1;
  free(dp->workers);
  free(dp->listen_path);
  free(dp);
}
