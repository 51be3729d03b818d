/* SPDX-License-Identifier: Apache-2.0 */
/* admin.c: the admin endpoints of admin.h: accept on the unix socket (and
 * the optional TCP listener), read one request line, route it, answer. The
 * documents come from admin_docs.c and observe/metrics.c.
 *
 * Bounds, so that admin and metrics clients can never take the file
 * descriptors the CRI socket needs, nor the loop: at most MAX_CONNS
 * connections are open at once (more are accepted and closed at once); a
 * connection is closed CONN_DEADLINE_MS after it was accepted, whatever it
 * is doing (sending its request, waiting for a probe, not reading the
 * answer), except a /trace stream, which admin_trace.c owns once handed
 * over; a request line longer than MAX_REQUEST gets 400.
 *
 * A connection's memory is held by its handle, its deadline timer and a
 * health probe it waits for (refs); it is freed when all three let go.
 * ch_admin_stop closes every open connection, so none delays the exit. */
#include "admin.h"

#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_docs.h"
#include "admin_http.h"
#include "admin_trace.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"

#define MAX_REQUEST 4096
#define MAX_CONNS 64
#define CONN_DEADLINE_MS 10000
#define REFUSED_LOG_EVERY_MS 10000

typedef struct admin_listener {
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  struct ch_admin *admin;
  bool full_access; /* every route, or only /metrics and /healthz */
} admin_listener;

struct ch_admin {
  admin_listener unix_listener;
  admin_listener *tcp_listener; /* NULL unless --metrics-address */
  ch_endpoint endpoint;
  ch_admin_config config;
  ch_dataplane *proxy;     /* NULL until attached */
  int refs;                /* open listeners and connections; freed at zero */
  int conns;               /* connections open now (at most MAX_CONNS) */
  struct admin_conn *open; /* those connections, closed by ch_admin_stop */
  uint64_t refused, refused_logged_at_ms;
};

typedef struct admin_conn {
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uv_timer_t deadline;
  ch_admin *admin;
  bool full_access;
  bool closing;
  bool discard; /* the request was too long: read and drop the rest */
  int refs;     /* the handle, the deadline timer, a probe in flight */
  char request[MAX_REQUEST];
  size_t used;
  uv_write_t write;
  uv_shutdown_t shutdown;
  char *response;                 /* owned until the write completes */
  struct admin_conn *next, *prev; /* ch_admin.open */
} admin_conn;

static uv_stream_t *conn_stream(admin_conn *c) { return (uv_stream_t *)&c->h; }

/* ---- answers ---- */

static void admin_unref(ch_admin *a) {
  if (--a->refs == 0) free(a);
}

static void conn_release(admin_conn *c) {
  if (--c->refs > 0) return;
  ch_admin *a = c->admin;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->open = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c->response);
  free(c);
  a->conns--;
  admin_unref(a);
}

static void on_closed(uv_handle_t *h) { conn_release(h->data); }

static void conn_close(admin_conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->h, on_closed);
  uv_close((uv_handle_t *)&c->deadline, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  if (status != 0) conn_close(req->data);
}

/* Closing with the client's bytes unread would reset the connection and
 * lose the answer: after a request that was too long, send FIN and read
 * until the client closes (or the deadline). */
static void on_written(uv_write_t *w, int status) {
  admin_conn *c = w->data;
  c->shutdown.data = c;
  if (status != 0 || !c->discard || uv_shutdown(&c->shutdown, conn_stream(c), on_shutdown) != 0)
    conn_close(c);
}

static const char *reason_of(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 503:
      return "Service Unavailable";
    default:
      return "Bad Request";
  }
}

/* Sends `body` (taken; may be NULL) with a newline after it, then closes. */
static void respond_text(admin_conn *c, int code, char *body, const char *type) {
  if (c->closing) {
    free(body);
    return;
  }
  size_t len = body ? strlen(body) : 0;
  size_t size = len + 256;
  c->response = malloc(size);
  if (!c->response) {
    free(body);
    conn_close(c);
    return;
  }
  int n = snprintf(c->response, size,
                   "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s\n",
                   code, reason_of(code), type, len + 1, body ? body : "");
  free(body);
  uv_buf_t buf = uv_buf_init(c->response, (unsigned)n);
  c->write.data = c;
  if (uv_write(&c->write, conn_stream(c), &buf, 1, on_written) != 0) conn_close(c);
}

static void respond(admin_conn *c, int code, json_t *doc) {
  char *body = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  respond_text(c, code, body, "application/json");
}

static void respond_error(admin_conn *c, int code, const char *message) {
  respond(c, code, json_pack("{s:s}", "error", message));
}

/* ---- routes ---- */

static ch_admin_view view_of(ch_admin *a) {
  return (ch_admin_view){.registry = a->config.registry,
                         .store = a->config.store,
                         .backend = ch_health_backend(a->config.health),
                         .listen = a->config.listen,
                         .in_flight = a->proxy ? ch_dataplane_in_flight(a->proxy) : -1};
}

/* The gauges of /metrics, gathered here and passed in (observe/ reads
 * nothing of the registry or the store); `names` holds r->count names that
 * point into `r`, which the caller keeps referenced while they are used. */
static void gather_gauges(ch_admin *a, const ch_registry *r, const char **names,
                          ch_metrics_gauges *g) {
  for (size_t i = 0; i < r->count; i++) names[i] = r->plugins[i].name;
  *g = (ch_metrics_gauges){.plugins = r->count,
                           .plugin_files_rejected = r->error_count,
                           .registry_generation = r->generation,
                           .store_pods = ch_store_pod_count(a->config.store),
                           .store_containers = ch_store_container_count(a->config.store),
                           .in_flight = a->proxy ? ch_dataplane_in_flight(a->proxy) : 0,
                           .backend_connected = ch_health_connected(a->config.health),
                           .backend_connects = ch_health_connects(a->config.health),
                           .log_dropped = ch_log_dropped(),
                           .store_rebuilt = ch_health_store_rebuilt(a->config.health),
                           .plugin_names = names,
                           .plugin_count = r->count};
}

static void answer_metrics(admin_conn *c) {
  ch_admin *a = c->admin;
  ch_registry *r = ch_registry_slot_acquire(a->config.registry);
  const char **names = calloc(r->count ? r->count : 1, sizeof *names);
  char *text = NULL;
  if (names) {
    ch_metrics_gauges gauges;
    gather_gauges(a, r, names, &gauges);
    text = ch_metrics_render(&gauges);
  }
  free(names);
  ch_registry_unref(r);
  if (!text) return respond_error(c, 500, "out of memory");
  respond_text(c, 200, text, "text/plain; version=0.0.4");
}

/* The probe's answer may come after the deadline closed the connection. */
static void on_healthz_probed(void *ctx, const ch_health_report *report) {
  admin_conn *c = ctx;
  if (!c->closing) respond(c, ch_admin_ready(report) ? 200 : 503, ch_admin_healthz_json(report));
  conn_release(c);
}

static void on_status_probed(void *ctx, const ch_health_report *report) {
  admin_conn *c = ctx;
  ch_admin_view v = view_of(c->admin);
  if (!c->closing) respond(c, 200, ch_admin_status_json(&v, report));
  conn_release(c);
}

static void probe_then(admin_conn *c, void (*done)(void *, const ch_health_report *)) {
  c->refs++;
  if (ch_health_probe(c->admin->config.health, done, c) != 0) {
    c->refs--;
    respond_error(c, 500, "cannot probe the backend: out of memory");
  }
}

/* GET /trace[?method=RE&pod=NAME]: the live call trace (admin_trace.h)
 * keeps its own copy of the socket and streams until the client leaves. */
static void answer_trace(admin_conn *c, const char *query) {
  ch_error err;
  if (ch_trace_serve(conn_stream(c), query, &err) != 0) return respond_error(c, 400, err.msg);
  conn_close(c);
}

static void route(admin_conn *c, const char *path) {
  ch_admin *a = c->admin;
  if (strcmp(path, "/metrics") == 0) return answer_metrics(c);
  if (strcmp(path, "/healthz") == 0) return probe_then(c, on_healthz_probed);
  if (!c->full_access)
    return respond_error(c, 403, "only /metrics and /healthz are served on this address");
  if (strcmp(path, "/status") == 0) return probe_then(c, on_status_probed);
  if (strncmp(path, "/trace", 6) == 0 && (path[6] == '\0' || path[6] == '?'))
    return answer_trace(c, path + 6);
  if (strcmp(path, "/plugins") == 0)
    return respond(c, 200, ch_admin_plugins_json(a->config.registry));
  if (strcmp(path, "/store/pods") == 0) return respond(c, 200, ch_store_pods_json(a->config.store));
  if (strcmp(path, "/store/containers") == 0)
    return respond(c, 200, ch_store_containers_json(a->config.store));
  respond_error(c, 404,
                "no such path; try /status, /healthz, /plugins, /store/pods, "
                "/store/containers, /metrics, /trace");
}

/* Answers once the request line is complete ("GET /path HTTP/1.x"). */
static void maybe_answer(admin_conn *c) {
  ch_admin_request req;
  int rc = ch_admin_http_parse(c->request, c->used, &req);
  if (rc == 0 && c->used >= sizeof c->request - 1) {
    c->discard = true;
    return respond_error(c, 400, "request line too long (at most 4095 bytes)");
  }
  if (rc == 0) return;
  uv_read_stop(conn_stream(c));
  if (rc < 0) return respond_error(c, 400, "only GET is served");
  route(c, req.path);
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  static char dropped[4096]; /* the loop's thread only */
  admin_conn *c = h->data;
  if (c->discard)
    *buf = uv_buf_init(dropped, sizeof dropped);
  else
    *buf = uv_buf_init(c->request + c->used, (unsigned)(sizeof c->request - 1 - c->used));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  admin_conn *c = s->data;
  if (n < 0) {
    uv_read_stop(s);
    conn_close(c);
    return;
  }
  if (c->discard) return;
  c->used += (size_t)n;
  c->request[c->used] = '\0';
  maybe_answer(c);
}

static void on_deadline(uv_timer_t *t) {
  admin_conn *c = t->data;
  ch_debug("admin", "connection closed: no complete request and answer within %d ms",
           CONN_DEADLINE_MS);
  conn_close(c);
}

static void log_refused(ch_admin *a, uv_loop_t *loop) {
  a->refused++;
  uint64_t now = uv_now(loop);
  if (a->refused_logged_at_ms && now - a->refused_logged_at_ms < REFUSED_LOG_EVERY_MS) return;
  a->refused_logged_at_ms = now;
  ch_warn("admin", "too many admin/metrics connections open, closing new ones max=%d refused=%llu",
          MAX_CONNS, (unsigned long long)a->refused);
}

static void on_connection(uv_stream_t *server, int status) {
  admin_listener *l = server->data;
  if (status != 0) return;
  admin_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->admin = l->admin;
  c->admin->refs++;
  c->admin->conns++;
  c->next = c->admin->open;
  if (c->next) c->next->prev = c;
  c->admin->open = c;
  c->refs = 2; /* the handle and the timer */
  c->full_access = l->full_access;
  if (server->type == UV_TCP)
    uv_tcp_init(server->loop, &c->h.tcp);
  else
    uv_pipe_init(server->loop, &c->h.pipe, 0);
  uv_timer_init(server->loop, &c->deadline);
  c->h.pipe.data = c; /* the same place in both members */
  c->deadline.data = c;
  if (uv_accept(server, conn_stream(c)) != 0) return conn_close(c);
  if (c->admin->conns > MAX_CONNS) {
    log_refused(c->admin, server->loop);
    return conn_close(c);
  }
  uv_timer_start(&c->deadline, on_deadline, CONN_DEADLINE_MS, 0);
  if (uv_read_start(conn_stream(c), on_alloc, on_read) != 0) conn_close(c);
}

/* ---- listeners ---- */

static void on_listener_closed(uv_handle_t *h) {
  admin_listener *l = h->data;
  ch_admin *a = l->admin;
  if (l != &a->unix_listener) free(l);
  admin_unref(a);
}

void ch_admin_attach_proxy(ch_admin *a, ch_dataplane *proxy) { a->proxy = proxy; }

int ch_admin_start(uv_loop_t *loop, const ch_endpoint *endpoint, const ch_admin_config *config,
                   ch_admin **out, ch_error *err) {
  if (ch_listen_prepare(endpoint->path, err) != 0) return ch_wrap(err, "admin socket");
  ch_admin *a = calloc(1, sizeof *a);
  if (!a) return ch_fail(err, "out of memory");
  a->endpoint = *endpoint;
  a->config = *config;
  a->unix_listener.admin = a;
  a->unix_listener.full_access = true;
  uv_pipe_init(loop, &a->unix_listener.h.pipe, 0);
  a->unix_listener.h.pipe.data = &a->unix_listener;
  a->refs = 1;
  int rc = uv_pipe_bind(&a->unix_listener.h.pipe, endpoint->path);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&a->unix_listener.h, 16, on_connection);
  if (rc != 0) {
    uv_close((uv_handle_t *)&a->unix_listener.h, on_listener_closed);
    return ch_fail(err, "admin socket %s: %s", endpoint->path, uv_strerror(rc));
  }
  chmod(endpoint->path, 0600);
  *out = a;
  return 0;
}

static int resolve_tcp(const char *host, int port, struct sockaddr_storage *addr) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)addr) == 0) return 0;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)addr);
}

/* Binds `host` ("" = every address: IPv6 and IPv4 where the kernel has
 * IPv6, else IPv4 only) and listens. */
static int bind_tcp(uv_tcp_t *tcp, const char *host, int port, ch_error *err) {
  struct sockaddr_storage addr;
  const char *try[2] = {host, NULL};
  if (!*host) {
    try[0] = "::";
    try[1] = "0.0.0.0";
  }
  int rc = UV_EINVAL;
  for (int i = 0; i < 2 && try[i]; i++) {
    if (resolve_tcp(try[i], port, &addr) != 0)
      return ch_fail(err, "--metrics-address: \"%s\" is not an IP address", host);
    rc = uv_tcp_bind(tcp, (const struct sockaddr *)&addr, 0);
    if (rc != UV_EAFNOSUPPORT) break;
  }
  if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, 64, on_connection);
  if (rc != 0) return ch_fail(err, "--metrics-address %s:%d: %s", host, port, uv_strerror(rc));
  return 0;
}

int ch_admin_listen_tcp(ch_admin *a, const char *host, int port, ch_error *err) {
  admin_listener *l = calloc(1, sizeof *l);
  if (!l) return ch_fail(err, "out of memory");
  l->admin = a;
  uv_tcp_init(a->unix_listener.h.pipe.loop, &l->h.tcp);
  l->h.tcp.data = l;
  a->refs++;
  if (bind_tcp(&l->h.tcp, host, port, err) != 0) {
    uv_close((uv_handle_t *)&l->h.tcp, on_listener_closed);
    return -1;
  }
  a->tcp_listener = l;
  return 0;
}

void ch_admin_stop(ch_admin *a) {
  unlink(a->endpoint.path);
  a->proxy = NULL; /* freed soon; answers still pending report no calls */
  for (admin_conn *c = a->open; c; c = c->next) conn_close(c);
  if (a->tcp_listener) uv_close((uv_handle_t *)&a->tcp_listener->h.tcp, on_listener_closed);
  uv_close((uv_handle_t *)&a->unix_listener.h.pipe, on_listener_closed);
}
