/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: crihookd start-up and shutdown.
 *
 * Order: options -> choose the backend(s) -> on the control loop
 * (libuv): watch hookserver.d, rebuild the store from the backend (retried
 * by health.c if it fails), open the admin socket (and the metrics address)
 * -> start the data plane (dataplane.h) -> tell systemd READY=1 -> run the
 * loop -> on SIGTERM/SIGINT/SIGQUIT tell systemd STOPPING=1 and drain on the
 * loop's thread pool (a second signal cuts the grace short) -> exit 0. Every
 * error that stops start-up is printed once here, with the context the
 * helpers added on the way up.
 *
 * Signals (README "Signals"): SIGTERM, SIGINT and SIGQUIT drain (SIGQUIT's
 * default core dump would skip the drain and leave kubelet's calls cut);
 * SIGHUP reads the hook directory again; SIGUSR1 and SIGUSR2 are logged and
 * ignored (their default would kill the node's CRI path); SIGPIPE is
 * ignored (a write to a closed peer is an error return, not a death).
 *
 * The exit is bounded: the drain ends within the grace (dataplane.h) and a
 * second signal ends it at once; should it still not end (a worker stuck in
 * something no cancel reaches), a watchdog on the loop exits the process
 * with _exit(1) EXIT_WATCHDOG_MS after the grace (or after the second
 * signal), without cleanup, so that systemd or the DaemonSet restarts it. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "admin_trace.h"
#include "crihook-config.h"
#include "dataplane.h"
#include "detect.h"
#include "endpoint.h"
#include "fdlimit.h"
#include "health.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "options.h"
#include "stats.h"
#include "store.h"
#include "tuning.h"
#include "watch.h"

#define REBUILD_TIMEOUT_MS 10000
#define EXIT_WATCHDOG_MS 1000

/* Resolves "auto" or an endpoint into `out`, logging why it was chosen and
 * writing that into why[0..why_len). */
static int resolve_backend(const char *what, const char *value, ch_endpoint *out, char *why,
                           size_t why_len, ch_probe_result *found, ch_error *err) {
  if (strcmp(value, "auto") != 0) {
    if (ch_endpoint_parse(value, out, err) != 0) return ch_wrap(err, "%s", what);
    snprintf(why, why_len, "set by flag or environment");
    ch_probe_result probe;
    ch_probe_backend(out->path, CH_BACKEND_PROBE_TIMEOUT_MS, &probe);
    *found = probe;
    if (probe.answered)
      ch_info("main", "%s set by flag path=%s kind=%s: %s", what, out->path, probe.kind->name,
              probe.why);
    else
      ch_warn("main",
              "%s set by flag does not answer yet path=%s: %s (calls fail with "
              "UNAVAILABLE until it does)",
              what, out->path, probe.why);
    return 0;
  }
  ch_probe_result chosen;
  ch_backend_candidate list[CH_MAX_DEFAULT_CANDIDATES];
  size_t n = ch_default_candidates(list, CH_MAX_DEFAULT_CANDIDATES);
  const ch_backend_candidate *c =
      &list[ch_detect_backend_wait(list, n, CH_BACKEND_PROBE_TIMEOUT_MS, &chosen)];
  *found = chosen;
  if (ch_endpoint_parse(c->path, out, err) != 0) return -1;
  snprintf(why, why_len, "auto-detected: %s is the first in probe order that %s", c->name,
           chosen.why);
  ch_info("main", "%s auto-detected runtime=%s kind=%s path=%s: first in probe order that %s", what,
          c->name, chosen.kind->name, c->path, chosen.why);
  return 0;
}

static int open_backends(const crihookd_options *o, ch_backend_info *info, ch_error *err) {
  static ch_endpoint backend, image;
  char unused[sizeof info->chosen_by];
  ch_probe_result image_found;
  if (resolve_backend("backend", o->backend, &backend, info->chosen_by, sizeof info->chosen_by,
                      &info->found, err) != 0)
    return -1;
  snprintf(info->path, sizeof info->path, "%s", backend.path);
  snprintf(info->image_path, sizeof info->image_path, "%s", backend.path);
  if (o->image_backend[0] && strcmp(o->image_backend, o->backend) != 0) {
    if (resolve_backend("image backend", o->image_backend, &image, unused, sizeof unused,
                        &image_found, err) != 0)
      return -1;
    snprintf(info->image_path, sizeof info->image_path, "%s", image.path);
  }
  return 0;
}

/* The control loop's state: the plugin watch, the admin socket, the
 * signals, and the drain it runs on libuv's thread pool, so a second signal
 * can still be heard while the first drains. */
typedef struct control {
  uv_loop_t loop;
  uv_signal_t signals[6]; /* one per entry of signal_table (start_signals) */
  uv_timer_t watchdog;
  int grace_ms;
  uv_work_t drain;
  ch_registry_slot registry;
  ch_store *store;
  ch_plugin_watch *watch;
  ch_admin *admin;
  ch_health *health;
  ch_dataplane *dataplane; /* the listen socket's relay, in front (dataplane.h) */
  bool draining;
} control;

static void close_control_handles(control *c) {
  for (size_t i = 0; i < sizeof c->signals / sizeof c->signals[0]; i++)
    uv_close((uv_handle_t *)&c->signals[i], NULL);
  uv_close((uv_handle_t *)&c->watchdog, NULL);
  if (c->watch) ch_plugin_watch_stop(c->watch);
  if (c->admin) ch_admin_stop(c->admin);
  ch_trace_shutdown(); /* ends `crihookctl trace` streams */
  if (c->health) ch_health_stop(c->health);
  c->watch = NULL;
  c->admin = NULL;
}

static void notify(const char *state) {
  ch_error err;
  if (ch_sd_notify(state, &err) != 0) ch_warn("main", "systemd not told %s", err.msg);
}

static void drain_in_pool(uv_work_t *req) {
  control *c = req->data;
  ch_dataplane_drain(c->dataplane);
}

static void after_drain(uv_work_t *req, int status) {
  control *c = req->data;
  (void)status;
  close_control_handles(c);
  /* Drained (and libuv has reset the handlers): a late signal must not turn
   * a clean exit into a kill. */
  static const int late[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) signal(late[i], SIG_IGN);
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  ch_error_log("main", "the drain did not end in time; exiting without cleanup");
  _exit(1);
}

static void on_stop_signal(uv_signal_t *handle, int signum) {
  control *c = handle->data;
  if (c->draining) {
    ch_warn("main", "second signal: cancelling in-flight calls now signal=%s", strsignal(signum));
    ch_dataplane_force(c->dataplane);
    uv_timer_start(&c->watchdog, on_watchdog, EXIT_WATCHDOG_MS, 0);
    return;
  }
  uv_timer_start(&c->watchdog, on_watchdog, (uint64_t)c->grace_ms + EXIT_WATCHDOG_MS, 0);
  ch_info("main", "signal received, draining signal=%s in_flight=%d", strsignal(signum),
          ch_dataplane_in_flight(c->dataplane));
  notify("STOPPING=1\nSTATUS=draining");
  ch_health_stop(c->health); /* no new backend connection while crihookd ends */
  c->draining = true;
  c->drain.data = c;
  uv_queue_work(&c->loop, &c->drain, drain_in_pool, after_drain);
}

static void on_reload_signal(uv_signal_t *handle, int signum) {
  control *c = handle->data;
  (void)signum;
  if (c->watch) ch_plugin_watch_reload_now(c->watch, "SIGHUP");
}

static void on_ignored_signal(uv_signal_t *handle, int signum) {
  (void)handle;
  ch_info("main", "signal ignored signal=%s", strsignal(signum));
}

/* Every catchable signal whose default would end the process without a
 * drain is handled (see the top of this file). */
static void start_signals(control *c) {
  static const struct {
    int signum;
    uv_signal_cb cb;
  } table[] = {{SIGTERM, on_stop_signal},    {SIGINT, on_stop_signal},
               {SIGQUIT, on_stop_signal},    {SIGHUP, on_reload_signal},
               {SIGUSR1, on_ignored_signal}, {SIGUSR2, on_ignored_signal}};
  _Static_assert(sizeof table / sizeof table[0] == sizeof c->signals / sizeof c->signals[0],
                 "one handle per signal");
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    uv_signal_init(&c->loop, &c->signals[i]);
    c->signals[i].data = c;
    uv_signal_start(&c->signals[i], table[i].cb, table[i].signum);
  }
  uv_timer_init(&c->loop, &c->watchdog);
  uv_unref((uv_handle_t *)&c->watchdog);
}

static bool rebuild_store(ch_store *store, const char *backend, const ch_probe_result *found) {
  ch_error err;
  if (ch_store_rebuild(store, backend, found, REBUILD_TIMEOUT_MS, &err) != 0) {
    ch_warn("main",
            "store not rebuilt from the backend, retrying in the background (until then "
            "/healthz says not ready and hooks for existing pods lack their data): %s",
            err.msg);
    return false;
  }
  ch_info("main", "store rebuilt from the backend pods=%zu containers=%zu",
          ch_store_pod_count(store), ch_store_container_count(store));
  return true;
}

/* Everything on the control loop, before the data plane starts. */
static int start_admin(control *c, const crihookd_options *o, const char *listen, ch_error *err) {
  ch_endpoint admin;
  if (ch_endpoint_parse(o->admin_socket, &admin, err) != 0) return ch_wrap(err, "--admin-socket");
  if (ch_listen_check_path(admin.path, err) != 0) return ch_wrap(err, "--admin-socket");
  ch_admin_config cfg = {
      .registry = &c->registry, .store = c->store, .health = c->health, .listen = listen};
  if (ch_admin_start(&c->loop, &admin, &cfg, &c->admin, err) != 0) return -1;
  if (!o->metrics_port) return 0;
  if (ch_admin_listen_tcp(c->admin, o->metrics_address, o->metrics_port, err) != 0) return -1;
  ch_info("main", "metrics served over HTTP address=%s port=%d",
          o->metrics_address[0] ? o->metrics_address : "*", o->metrics_port);
  return 0;
}

static int start_control(control *c, const crihookd_options *o, const ch_backend_info *info,
                         const char *listen, ch_error *err) {
  c->grace_ms = o->shutdown_grace_ms;
  start_signals(c);
  if (ch_plugin_watch_start(&c->loop, o->hook_dir, &c->registry, &c->watch, err) != 0)
    return ch_wrap(err, "hook directory %s", o->hook_dir);
  if (!(c->health = ch_health_new(&c->loop, info, c->store))) return ch_fail(err, "out of memory");
  ch_health_set_store_rebuilt(c->health, rebuild_store(c->store, info->path, &info->found));
  return start_admin(c, o, listen, err);
}

/* The relay loops on the listen socket, hooked calls included (dataplane.h). */
static int start_data_plane(control *c, const crihookd_options *o, const ch_backend_info *info,
                            const char *listen, ch_error *err) {
  ch_dataplane_config dcfg = {.listen_path = listen,
                              .backend_path = info->path,
                              .image_backend_path = info->image_path,
                              .workers = o->workers,
                              .verbatim = o->relay_verbatim,
                              .max_msg_size = (size_t)o->max_msg_size,
                              .shutdown_grace_ms = o->shutdown_grace_ms,
                              .registry = &c->registry,
                              .store = c->store};
  return ch_dataplane_start(&dcfg, &c->dataplane, err) == 0 ? 0 : ch_wrap(err, "start");
}

static int serve(const crihookd_options *o, ch_error *err) {
  ch_endpoint listen;
  if (ch_endpoint_parse(o->listen, &listen, err) != 0) return ch_wrap(err, "--listen");
  if (ch_listen_check_path(listen.path, err) != 0) return ch_wrap(err, "--listen");
  ch_backend_info info = {0};
  if (open_backends(o, &info, err) != 0) return -1;
  control c = {0};
  uv_loop_init(&c.loop);
  ch_registry_slot_init(&c.registry);
  c.store = ch_store_new();
  int rc = start_control(&c, o, &info, listen.path, err);
  if (rc == 0) rc = start_data_plane(&c, o, &info, listen.path, err);
  if (rc == 0) {
    ch_admin_attach_proxy(c.admin, c.dataplane);
    ch_health_attach(c.health);
    ch_health_watch_listener(c.health, listen.path);
    ch_info("main", "serving listen=%s workers=%d max_msg_size=%d version=%s", listen.path,
            o->workers, o->max_msg_size, CRIHOOK_VERSION);
    notify("READY=1\nSTATUS=serving");
    uv_run(&c.loop, UV_RUN_DEFAULT);
    ch_dataplane_free(c.dataplane);
  } else {
    close_control_handles(&c);
  }
  uv_run(&c.loop, UV_RUN_DEFAULT); /* lets closed handles finish */
  uv_loop_close(&c.loop);
  ch_health_free(c.health);
  ch_store_free(c.store);
  ch_registry_slot_destroy(&c.registry);
  ch_plugin_stats_reset();
  ch_metrics_reset();
  if (rc == 0) ch_info("main", "stopped cleanly");
  return rc;
}

int main(int argc, char **argv) {
  crihookd_options opts;
  ch_error err;
  if (crihookd_options_parse(&opts, argc, argv, &err) != 0) {
    fprintf(stderr, "crihookd: %s\n%s", err.msg, crihookd_usage());
    return 2;
  }
  if (opts.help) {
    fputs(crihookd_usage(), stdout);
    return 0;
  }
  if (opts.version) {
    printf("crihookd %s\n", CRIHOOK_VERSION);
    return 0;
  }
  ch_log_set_level(opts.log_level);
  ch_log_set_format(opts.log_format);
  ch_metrics_enable(opts.metrics);
  signal(SIGPIPE, SIG_IGN);
  /* Sockets are created 0600 (libuv binds them by path): none is
   * ever open to others, even for an instant; the CRI socket is then widened
   * to 0660 (listen.h). crihookd creates no other files. */
  umask(0077);
  if (ch_raise_fd_limit(&err) != 0) ch_warn("main", "%s", err.msg);
  ch_process_tune();
  int rc = serve(&opts, &err);
  if (rc != 0) ch_error_log("main", "%s", err.msg);
  return rc == 0 ? 0 : 1;
}
