/* SPDX-License-Identifier: Apache-2.0 */
/* health.c: readiness, backend probing and the store-rebuild retry of
 * health.h. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "log.h"
#include "reexec.h"
#include "rpc.h"
#include "self_probe.h"

#define POLL_MS 200
#define RETRY_MS 2000
#define REBUILD_TIMEOUT_MS 10000
#define WATCH_MS 5000    /* how often the listener watch probes */
#define WATCH_FAILURES 3 /* probes in a row that fail while the backend answers */

struct ch_health {
  uv_loop_t *loop;
  ch_backend_info info;
  ch_store *store;
  ch_rpc_conn *conn; /* the poll's own HTTP/2 connection to the backend */
  uv_timer_t poll, retry;
  bool store_rebuilt, retrying, stopped;
  bool resyncing, resync_again; /* a re-sync after a reconnect runs / is wanted */
  uint64_t resync_failed_ms;    /* when the last one failed (retried by the poll), or 0 */
  bool connected;
  uint64_t connects;
  uint64_t started_ms;
  char listen_path[CH_PATH_MAX]; /* "" until the data plane serves */
  uv_timer_t watch;
  struct probe_run *running; /* the probe in flight, or NULL */
  int listener_failures;
};

/* One probe in flight at a time: every /healthz, /status and the listener
 * watch that ask while it runs wait for its report (so a flood of /healthz
 * holds one thread of libuv's pool, never all of them). */
typedef struct probe_waiter {
  void (*done)(void *, const ch_health_report *);
  void *ctx;
  struct probe_waiter *next;
} probe_waiter;

typedef struct probe_run {
  uv_work_t work;
  ch_health *health;
  char listen_path[CH_PATH_MAX]; /* copied: the pool thread reads only these */
  char backend_path[CH_PATH_MAX];
  ch_health_report report;
  probe_waiter *waiters;
} probe_run;

typedef struct rebuild_work {
  uv_work_t work;
  ch_health *health;
  int rc;
  ch_error err;
} rebuild_work;

static void start_resync(ch_health *h);

ch_health *ch_health_new(uv_loop_t *loop, const ch_backend_info *info, ch_store *store) {
  ch_health *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->info = *info;
  h->store = store;
  h->started_ms = uv_now(loop);
  uv_timer_init(loop, &h->poll);
  uv_timer_init(loop, &h->retry);
  uv_timer_init(loop, &h->watch);
  h->poll.data = h->retry.data = h->watch.data = h;
  return h;
}

const ch_backend_info *ch_health_backend(const ch_health *h) { return &h->info; }
bool ch_health_connected(const ch_health *h) { return h->connected; }
uint64_t ch_health_connects(const ch_health *h) { return h->connects; }
bool ch_health_store_rebuilt(const ch_health *h) { return h->store_rebuilt; }

/* ---- the connection poll ---- */

/* The poll's connection, opened again once the last one failed or was
 * lost; NULL if it cannot even be started. */
static ch_rpc_conn *poll_conn(ch_health *h) {
  if (h->conn && ch_rpc_conn_usable(h->conn)) return h->conn;
  ch_rpc_conn_close(h->conn);
  h->conn = NULL;
  ch_error err;
  if (ch_rpc_conn_open(h->loop, h->info.path, NULL, &h->conn, &err) != 0) h->conn = NULL;
  return h->conn;
}

static void on_poll(uv_timer_t *t) {
  ch_health *h = t->data;
  ch_rpc_conn *conn = poll_conn(h);
  bool now = conn && ch_rpc_conn_ready(conn);
  if (now && !h->connected) {
    h->connects++;
    if (h->connects > 1) ch_info("health", "backend connected again path=%s", h->info.path);
    if (h->connects > 1) start_resync(h);
  } else if (!now && h->connected) {
    ch_warn("health", "backend connection lost path=%s", h->info.path);
  } else if (now && h->resync_failed_ms && uv_now(h->loop) - h->resync_failed_ms >= RETRY_MS) {
    start_resync(h);
  }
  h->connected = now;
}

void ch_health_attach(ch_health *h) { uv_timer_start(&h->poll, on_poll, 0, POLL_MS); }

/* ---- the store rebuild retry ---- */

static void rebuild_in_pool(uv_work_t *req) {
  rebuild_work *w = req->data;
  w->rc = ch_store_fill_missing(w->health->store, w->health->info.path, &w->health->info.found,
                                REBUILD_TIMEOUT_MS, &w->err);
}

static void after_rebuild(uv_work_t *req, int status) {
  rebuild_work *w = req->data;
  ch_health *h = w->health;
  h->retrying = false;
  if (status == 0 && w->rc == 0) {
    h->store_rebuilt = true;
    uv_timer_stop(&h->retry);
    ch_info("health", "store rebuilt from the backend on retry pods=%zu containers=%zu",
            ch_store_pod_count(h->store), ch_store_container_count(h->store));
  } else {
    ch_debug("health", "store rebuild retry failed: %s", w->rc ? w->err.msg : "cancelled");
  }
  free(w);
}

static void on_retry(uv_timer_t *t) {
  ch_health *h = t->data;
  if (h->retrying || h->store_rebuilt || h->stopped) return;
  rebuild_work *w = calloc(1, sizeof *w);
  if (!w) return;
  w->health = h;
  w->work.data = w;
  h->retrying = true;
  if (uv_queue_work(h->loop, &w->work, rebuild_in_pool, after_rebuild) != 0) {
    h->retrying = false;
    free(w);
  }
}

/* ---- the re-sync after the backend came back ---- */

static void resync_in_pool(uv_work_t *req) {
  rebuild_work *w = req->data;
  w->rc = ch_store_resync(w->health->store, w->health->info.path, &w->health->info.found,
                          REBUILD_TIMEOUT_MS, &w->err);
}

static void after_resync(uv_work_t *req, int status) {
  rebuild_work *w = req->data;
  ch_health *h = w->health;
  h->resyncing = false;
  h->resync_failed_ms = status == 0 && w->rc == 0 ? 0 : uv_now(h->loop);
  if (status == 0 && w->rc == 0)
    ch_info("health", "store re-synced with the backend after a reconnect pods=%zu containers=%zu",
            ch_store_pod_count(h->store), ch_store_container_count(h->store));
  else
    ch_warn("health", "store re-sync after a reconnect failed: %s",
            w->rc ? w->err.msg : "cancelled");
  free(w);
  if (h->resync_again && !h->stopped) start_resync(h);
}

/* The runtime may have created or removed pods while the connection was
 * down (calls cut off mid-way, a restart): read it again. A store not yet
 * rebuilt is left to the retry timer. */
static void start_resync(ch_health *h) {
  h->resync_again = h->resyncing;
  if (h->resyncing || !h->store_rebuilt || h->stopped) return;
  h->resync_failed_ms = 0;
  rebuild_work *w = calloc(1, sizeof *w);
  if (!w) return;
  w->health = h;
  w->work.data = w;
  h->resyncing = true;
  if (uv_queue_work(h->loop, &w->work, resync_in_pool, after_resync) != 0) {
    h->resyncing = false;
    free(w);
  }
}

void ch_health_set_store_rebuilt(ch_health *h, bool rebuilt) {
  h->store_rebuilt = rebuilt;
  if (!rebuilt) uv_timer_start(&h->retry, on_retry, RETRY_MS, RETRY_MS);
}

/* ---- probes ---- */

/* Both probes make a fresh connection and a Version call with a short
 * deadline: through crihookd's own listen socket (the whole data plane:
 * accept, a relay loop, its backend connection) and to the backend
 * directly (to tell a dead listener from a dead runtime). */
static void probe_in_pool(uv_work_t *req) {
  probe_run *run = req->data;
  ch_health_report *r = &run->report;
  if (run->listen_path[0]) {
    ch_self_probe(run->listen_path, CH_BACKEND_PROBE_TIMEOUT_MS, &r->listener,
                  &r->listener_connected);
  } else {
    snprintf(r->listener.why, sizeof r->listener.why, "the data plane is not serving yet");
  }
  ch_probe_backend(run->backend_path, CH_BACKEND_PROBE_TIMEOUT_MS, &r->probe);
  char why[128];
  r->backend_accepts = r->probe.answered || ch_socket_probe(run->backend_path, why, sizeof why) > 0;
}

static void after_probe(uv_work_t *req, int status) {
  (void)status;
  probe_run *run = req->data;
  ch_health *h = run->health;
  h->running = NULL;
  run->report.store_rebuilt = h->store_rebuilt;
  run->report.connected = h->connected;
  run->report.connects = h->connects;
  run->report.uptime_s = (double)(uv_now(h->loop) - h->started_ms) / 1000.0;
  for (probe_waiter *w = run->waiters, *next; w; w = next) {
    next = w->next;
    w->done(w->ctx, &run->report);
    free(w);
  }
  free(run);
}

static probe_run *start_run(ch_health *h) {
  probe_run *run = calloc(1, sizeof *run);
  if (!run) return NULL;
  run->health = h;
  run->work.data = run;
  snprintf(run->listen_path, sizeof run->listen_path, "%s", h->listen_path);
  snprintf(run->backend_path, sizeof run->backend_path, "%s", h->info.path);
  if (uv_queue_work(h->loop, &run->work, probe_in_pool, after_probe) != 0) {
    free(run);
    return NULL;
  }
  h->running = run;
  return run;
}

int ch_health_probe(ch_health *h, void (*done)(void *, const ch_health_report *), void *ctx) {
  probe_waiter *w = calloc(1, sizeof *w);
  if (!w) return -1;
  probe_run *run = h->running ? h->running : start_run(h);
  if (!run) {
    free(w);
    return -1;
  }
  *w = (probe_waiter){.done = done, .ctx = ctx, .next = run->waiters};
  run->waiters = w;
  return 0;
}

/* ---- the listener watch ---- */

/* The listen socket failed and it is not the backend's doing (health.h). */
static bool listener_at_fault(const ch_health_report *r) {
  if (r->listener.answered) return false;
  return r->probe.answered || (!r->listener_connected && r->backend_accepts);
}

static void on_watch_probed(void *ctx, const ch_health_report *r) {
  ch_health *h = ctx;
  if (h->stopped) return;
  if (!listener_at_fault(r)) {
    if (h->listener_failures > 0 && r->listener.answered)
      ch_info("health", "listen socket answers again path=%s", h->listen_path);
    h->listener_failures = 0;
    return;
  }
  h->listener_failures++;
  ch_warn("health",
          "listen socket does not answer, not the backend's fault path=%s failures=%d: %s",
          h->listen_path, h->listener_failures, r->listener.why);
  if (h->listener_failures < WATCH_FAILURES) return;
  char reason[512];
  snprintf(
      reason, sizeof reason,
      "the listen socket %s has not answered a Version call for %d probes in a row while the "
      "backend accepted connections (grpc's accept loop stops for good after running out of file "
      "descriptors; a stalled data plane looks the same): %s",
      h->listen_path, h->listener_failures, r->listener.why);
  ch_reexec(reason);
}

static void on_watch(uv_timer_t *t) {
  ch_health *h = t->data;
  if (!h->stopped && ch_health_probe(h, on_watch_probed, h) != 0)
    ch_warn("health", "cannot probe the listen socket: out of memory");
}

void ch_health_watch_listener(ch_health *h, const char *listen_path) {
  snprintf(h->listen_path, sizeof h->listen_path, "%s", listen_path);
  uv_timer_start(&h->watch, on_watch, WATCH_MS, WATCH_MS);
}

/* ---- teardown ---- */

void ch_health_stop(ch_health *h) {
  if (h->stopped) return;
  h->stopped = true;
  uv_close((uv_handle_t *)&h->poll, NULL);
  ch_rpc_conn_close(h->conn); /* frees itself on the loop */
  h->conn = NULL;
  uv_close((uv_handle_t *)&h->retry, NULL);
  uv_close((uv_handle_t *)&h->watch, NULL);
}

void ch_health_free(ch_health *h) { free(h); }
