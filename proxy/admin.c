/* admin.c: the admin socket of admin.h: accept, read one request line,
 * answer with a JSON document built from the registry or the store. */
#include "admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"

#define MAX_REQUEST 4096

struct ch_admin {
  uv_pipe_t server;
  ch_endpoint endpoint;
  ch_registry_slot *registry;
  ch_store *store;
  ch_proxy *proxy; /* NULL until attached */
};

typedef struct admin_conn {
  uv_pipe_t pipe;
  ch_admin *admin;
  char request[MAX_REQUEST];
  size_t used;
  uv_write_t write;
  char *response; /* owned until the write completes */
} admin_conn;

/* ---- documents ---- */

static json_t *hooks_json(unsigned hooks) {
  json_t *list = json_array();
  for (int h = 0; h < CH_HOOK_COUNT; h++)
    if (hooks & (1u << h)) json_array_append_new(list, json_string(ch_hook_name(h)));
  return list;
}

static json_t *plugin_json(const ch_plugin *p) {
  ch_plugin_stats stats;
  ch_plugin_stats_get(p->name, &stats);
  return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:I, s:I, s:s}", "name", p->name, "file",
                   p->file, "endpoint", p->endpoint.path, "failure_policy",
                   p->fail_closed ? "Fail" : "Ignore", "hooks", hooks_json(p->hooks), "order",
                   p->order, "timeout_ms", p->timeout_ms, "calls", (json_int_t)stats.calls,
                   "failures", (json_int_t)stats.failures, "last_error", stats.last_error);
}

static json_t *plugins_json(ch_registry_slot *slot) {
  ch_registry *r = ch_registry_slot_acquire(slot);
  json_t *plugins = json_array(), *rejected = json_array();
  for (size_t i = 0; i < r->count; i++) json_array_append_new(plugins, plugin_json(&r->plugins[i]));
  for (size_t i = 0; i < r->error_count; i++)
    json_array_append_new(rejected, json_pack("{s:s, s:s}", "file", r->errors[i].file, "reason",
                                              r->errors[i].reason));
  json_t *doc = json_pack("{s:I, s:o, s:o}", "generation", (json_int_t)r->generation, "plugins",
                          plugins, "rejected", rejected);
  ch_registry_unref(r);
  return doc;
}

static json_t *route(ch_admin *a, const char *path, int *code) {
  *code = 200;
  if (strcmp(path, "/plugins") == 0) return plugins_json(a->registry);
  if (strcmp(path, "/store/pods") == 0) return ch_store_pods_json(a->store);
  if (strcmp(path, "/store/containers") == 0) return ch_store_containers_json(a->store);
  *code = 404;
  return json_pack("{s:s}", "error", "no such path; try /plugins, /store/pods, /store/containers");
}

/* ---- connections ---- */

static void on_closed(uv_handle_t *h) {
  admin_conn *c = h->data;
  free(c->response);
  free(c);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  admin_conn *c = w->data;
  uv_close((uv_handle_t *)&c->pipe, on_closed);
}

static void respond_text(admin_conn *c, int code, char *body, const char *type);

static void respond(admin_conn *c, int code, json_t *doc) {
  char *body = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  respond_text(c, code, body, "application/json");
}

/* Sends `body` (taken; may be NULL) with a newline after it. */
static void respond_text(admin_conn *c, int code, char *body, const char *type) {
  const char *reason = code == 200 ? "OK" : code == 404 ? "Not Found" : "Bad Request";
  size_t len = body ? strlen(body) : 0;
  size_t size = len + 256;
  c->response = malloc(size);
  if (!c->response) {
    free(body);
    uv_close((uv_handle_t *)&c->pipe, on_closed);
    return;
  }
  int n = snprintf(c->response, size,
                   "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s\n",
                   code, reason, type, len + 1, body ? body : "");
  free(body);
  uv_buf_t buf = uv_buf_init(c->response, (unsigned)n);
  c->write.data = c;
  if (uv_write(&c->write, (uv_stream_t *)&c->pipe, &buf, 1, on_written) != 0)
    uv_close((uv_handle_t *)&c->pipe, on_closed);
}

/* Answers once the request line is complete ("GET /path HTTP/1.x"). */
static void maybe_answer(admin_conn *c) {
  char *eol = memchr(c->request, '\n', c->used);
  if (!eol) return;
  *eol = '\0';
  char method[8], path[256];
  int code = 400;
  json_t *doc;
  bool get = sscanf(c->request, "%7s %255s", method, path) == 2 && strcmp(method, "GET") == 0;
  if (get && strcmp(path, "/metrics") == 0) {
    uv_read_stop((uv_stream_t *)&c->pipe);
    ch_admin *a = c->admin;
    respond_text(
        c, 200,
        ch_metrics_render(a->registry, a->store, a->proxy ? ch_proxy_in_flight(a->proxy) : 0),
        "text/plain; version=0.0.4");
    return;
  }
  if (get)
    doc = route(c->admin, path, &code);
  else
    doc = json_pack("{s:s}", "error", "only GET is served");
  uv_read_stop((uv_stream_t *)&c->pipe);
  respond(c, code, doc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  admin_conn *c = h->data;
  *buf = uv_buf_init(c->request + c->used, (unsigned)(sizeof c->request - 1 - c->used));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  admin_conn *c = s->data;
  if (n < 0 || (n == 0 && c->used == sizeof c->request - 1)) {
    uv_close((uv_handle_t *)&c->pipe, on_closed);
    return;
  }
  c->used += (size_t)n;
  c->request[c->used] = '\0';
  maybe_answer(c);
}

static void on_connection(uv_stream_t *server, int status) {
  ch_admin *a = server->data;
  if (status != 0) return;
  admin_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->admin = a;
  uv_pipe_init(server->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)&c->pipe, on_closed);
}

static void on_server_closed(uv_handle_t *h) { free(h->data); }

void ch_admin_attach_proxy(ch_admin *a, ch_proxy *proxy) { a->proxy = proxy; }

int ch_admin_start(uv_loop_t *loop, const ch_endpoint *endpoint, ch_registry_slot *registry,
                   ch_store *store, ch_admin **out, ch_error *err) {
  if (ch_listen_prepare(endpoint->path, err) != 0) return ch_wrap(err, "admin socket");
  ch_admin *a = calloc(1, sizeof *a);
  if (!a) return ch_fail(err, "out of memory");
  a->endpoint = *endpoint;
  a->registry = registry;
  a->store = store;
  uv_pipe_init(loop, &a->server, 0);
  a->server.data = a;
  int rc = uv_pipe_bind(&a->server, endpoint->path);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&a->server, 16, on_connection);
  if (rc != 0) {
    uv_close((uv_handle_t *)&a->server, on_server_closed);
    return ch_fail(err, "admin socket %s: %s", endpoint->path, uv_strerror(rc));
  }
  chmod(endpoint->path, 0600);
  *out = a;
  return 0;
}

void ch_admin_stop(ch_admin *a) {
  unlink(a->endpoint.path);
  uv_close((uv_handle_t *)&a->server, on_server_closed);
}
