/* health.c: readiness, backend probing and the store-rebuild retry of
 * health.h. */
#include "health.h"

#include <stdlib.h>
#include <string.h>

#include "grpc_util.h"
#include "log.h"

#define POLL_MS 200
#define RETRY_MS 2000
#define PROBE_TIMEOUT_MS 1000
#define REBUILD_TIMEOUT_MS 10000

struct ch_health {
  uv_loop_t *loop;
  ch_backend_info info;
  ch_store *store;
  grpc_channel *channel; /* the data plane's; polled on the loop only */
  uv_timer_t poll, retry;
  bool store_rebuilt, retrying, stopped;
  bool resyncing, resync_again; /* a re-sync after a reconnect runs / is wanted */
  uint64_t resync_failed_ms;    /* when the last one failed (retried by the poll), or 0 */
  bool connected;
  uint64_t connects;
  uint64_t started_ms;
};

typedef struct probe_work {
  uv_work_t work;
  ch_health *health;
  ch_health_report report;
  void (*done)(void *, const ch_health_report *);
  void *ctx;
} probe_work;

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
  h->poll.data = h->retry.data = h;
  return h;
}

const ch_backend_info *ch_health_backend(const ch_health *h) { return &h->info; }
bool ch_health_connected(const ch_health *h) { return h->connected; }
uint64_t ch_health_connects(const ch_health *h) { return h->connects; }
bool ch_health_store_rebuilt(const ch_health *h) { return h->store_rebuilt; }

/* ---- the channel poll ---- */

static void on_poll(uv_timer_t *t) {
  ch_health *h = t->data;
  grpc_connectivity_state s = grpc_channel_check_connectivity_state(h->channel, 1);
  bool now = s == GRPC_CHANNEL_READY;
  if (now && !h->connected) {
    h->connects++;
    if (h->connects > 1) ch_info("health", "backend connected again path=%s", h->info.path);
    if (h->connects > 1) start_resync(h);
  } else if (!now && h->connected) {
    ch_warn("health", "backend connection lost path=%s state=%d", h->info.path, (int)s);
  } else if (now && h->resync_failed_ms && uv_now(h->loop) - h->resync_failed_ms >= RETRY_MS) {
    start_resync(h);
  }
  h->connected = now;
}

void ch_health_attach(ch_health *h, grpc_channel *backend) {
  h->channel = backend;
  uv_timer_start(&h->poll, on_poll, 0, POLL_MS);
}

/* ---- the store rebuild retry ---- */

static void rebuild_in_pool(uv_work_t *req) {
  rebuild_work *w = req->data;
  char target[300];
  snprintf(target, sizeof target, "unix://%s", w->health->info.path);
  grpc_channel *ch = ch_channel_open(target, NULL);
  w->rc = ch_store_fill_missing(w->health->store, ch, REBUILD_TIMEOUT_MS, &w->err);
  grpc_channel_destroy(ch);
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
  char target[300]; /* its own channel: the drain may destroy the data plane's meanwhile */
  snprintf(target, sizeof target, "unix://%s", w->health->info.path);
  grpc_channel *ch = ch_channel_open(target, NULL);
  w->rc = ch_store_resync(w->health->store, ch, REBUILD_TIMEOUT_MS, &w->err);
  grpc_channel_destroy(ch);
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

static void probe_in_pool(uv_work_t *req) {
  probe_work *w = req->data;
  ch_probe_backend(w->health->info.path, PROBE_TIMEOUT_MS, &w->report.probe);
}

static void after_probe(uv_work_t *req, int status) {
  (void)status;
  probe_work *w = req->data;
  ch_health *h = w->health;
  w->report.store_rebuilt = h->store_rebuilt;
  w->report.connected = h->connected;
  w->report.connects = h->connects;
  w->report.uptime_s = (double)(uv_now(h->loop) - h->started_ms) / 1000.0;
  w->done(w->ctx, &w->report);
  free(w);
}

int ch_health_probe(ch_health *h, void (*done)(void *, const ch_health_report *), void *ctx) {
  probe_work *w = calloc(1, sizeof *w);
  if (!w) return -1;
  w->health = h;
  w->done = done;
  w->ctx = ctx;
  w->work.data = w;
  if (uv_queue_work(h->loop, &w->work, probe_in_pool, after_probe) != 0) {
    free(w);
    return -1;
  }
  return 0;
}

/* ---- teardown ---- */

void ch_health_stop(ch_health *h) {
  if (h->stopped) return;
  h->stopped = true;
  uv_close((uv_handle_t *)&h->poll, NULL);
  uv_close((uv_handle_t *)&h->retry, NULL);
}

void ch_health_free(ch_health *h) { free(h); }
