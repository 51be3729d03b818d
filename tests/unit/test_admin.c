/* SPDX-License-Identifier: Apache-2.0 */
/* test_admin.c: the admin server of admin/admin.h served in-process on a
 * real unix socket by a libuv loop on this thread, with clients on another
 * thread: /metrics (the gauges gathered by admin.c from a real registry and
 * store), /plugins, /healthz (503: no backend listens), an unknown path
 * (404), a method other than GET (400), a request line over the bound
 * (400), and the connection cap (the 65th connection is closed at once,
 * and the server serves again once the others are gone). */
#include <grpc/grpc.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "admin.h"
#include "health.h"
#include "metrics.h"
#include "registry.h"
#include "store.h"

#define CAP 64 /* admin.c's MAX_CONNS */

typedef struct fixture {
  uv_loop_t loop;
  uv_async_t wake;
  char dir[64], sock[128];
  ch_registry_slot registry;
  ch_store *store;
  ch_health *health;
  ch_admin *admin;
} fixture;

/* One client job on its own thread; the loop runs until it is done. */
typedef struct job {
  fixture *f;
  void (*run)(struct job *);
  const char *request;
  size_t request_len;
  char answer[1 << 16];
  size_t got;
  int status;
  bool closed_without_answer; /* the cap test: refused connection */
  atomic_bool done;
} job;

static int connect_admin(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  return fd;
}

static void read_all(int fd, job *j) {
  ssize_t n;
  while ((n = read(fd, j->answer + j->got, sizeof j->answer - 1 - j->got)) > 0) j->got += (size_t)n;
  j->answer[j->got] = '\0';
  if (sscanf(j->answer, "HTTP/1.%*d %d", &j->status) != 1) j->status = 0;
}

static void ask(job *j) {
  int fd = connect_admin(j->f->sock);
  (void)!send(fd, j->request, j->request_len, MSG_NOSIGNAL);
  read_all(fd, j);
  close(fd);
}

static void *client_thread(void *arg) {
  job *j = arg;
  j->run(j);
  atomic_store(&j->done, true);
  uv_async_send(&j->f->wake);
  return NULL;
}

static void on_wake(uv_async_t *a) { (void)a; }

/* Runs the loop on this thread until the job, on another, is done. */
static void run_job(fixture *f, job *j) {
  j->f = f;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, client_thread, j), 0);
  while (!atomic_load(&j->done)) uv_run(&f->loop, UV_RUN_ONCE);
  pthread_join(t, NULL);
}

static job *get(fixture *f, const char *request) {
  job *j = calloc(1, sizeof *j);
  assert_non_null(j);
  j->run = ask;
  j->request = request;
  j->request_len = strlen(request);
  run_job(f, j);
  return j;
}

static const char *body(const job *j) {
  const char *b = strstr(j->answer, "\r\n\r\n");
  assert_non_null(b);
  return b + 4;
}

/* The answer's body as JSON (the caller frees it). */
static json_t *json_body(const job *j) {
  json_error_t jerr;
  json_t *doc = json_loads(body(j), 0, &jerr);
  if (!doc) fail_msg("not JSON (%s): %s", jerr.text, j->answer);
  return doc;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/crihook-admin-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->sock, sizeof f->sock, "%s/admin.sock", f->dir);
  write_file(f->dir, "10-env.json",
             "{\"remote-endpoint\":\"unix:///nonexistent/env.sock\",\"failure-policy\":"
             "\"Ignore\",\"runtime-hooks\":[\"PreCreateContainer\"]}");
  write_file(f->dir, "bad.json", "{");
  assert_int_equal(uv_loop_init(&f->loop), 0);
  uv_async_init(&f->loop, &f->wake, on_wake);
  ch_registry_slot_init(&f->registry);
  ch_registry *r;
  ch_error err;
  assert_int_equal(ch_registry_load(f->dir, NULL, &r, &err), 0);
  ch_registry_slot_publish(&f->registry, r);
  f->store = ch_store_new();
  assert_non_null(f->store);
  ch_backend_info info = {.chosen_by = "flag"};
  snprintf(info.path, sizeof info.path, "%s/no-backend.sock", f->dir);
  f->health = ch_health_new(&f->loop, &info, f->store);
  assert_non_null(f->health);
  ch_endpoint ep;
  char uri[160];
  snprintf(uri, sizeof uri, "unix://%s", f->sock);
  assert_int_equal(ch_endpoint_parse(uri, &ep, &err), 0);
  ch_admin_config cfg = {.registry = &f->registry, .store = f->store, .health = f->health};
  if (ch_admin_start(&f->loop, &ep, &cfg, &f->admin, &err) != 0) fail_msg("%s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  ch_admin_stop(f->admin);
  ch_health_stop(f->health);
  uv_close((uv_handle_t *)&f->wake, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  ch_health_free(f->health);
  ch_store_free(f->store);
  ch_registry_slot_destroy(&f->registry);
  ch_metrics_reset();
  char path[256];
  static const char *const files[] = {"10-env.json", "bad.json"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
    unlink(path);
  }
  unlink(f->sock);
  rmdir(f->dir);
  free(f);
  return 0;
}

static void metrics_gauges_gathered(void **state) {
  job *j = get(*state, "GET /metrics HTTP/1.0\r\n\r\n");
  assert_int_equal(j->status, 200);
  assert_non_null(strstr(j->answer, "Content-Type: text/plain; version=0.0.4"));
  const char *b = body(j);
  assert_non_null(strstr(b, "\ncrihook_plugins 1\n"));
  assert_non_null(strstr(b, "\ncrihook_plugin_files_rejected 1\n"));
  assert_non_null(strstr(b, "\ncrihook_store_pods 0\n"));
  assert_non_null(strstr(b, "\ncrihook_calls_in_flight 0\n"));
  assert_non_null(strstr(b, "\ncrihook_backend_connected 0\n"));
  free(j);
}

static void plugins_listed(void **state) {
  job *j = get(*state, "GET /plugins HTTP/1.0\r\n\r\n");
  assert_int_equal(j->status, 200);
  json_t *doc = json_body(j);
  json_t *p = json_array_get(json_object_get(doc, "plugins"), 0);
  assert_string_equal(json_string_value(json_object_get(p, "name")), "10-env");
  assert_int_equal(json_integer_value(json_object_get(p, "calls")), 0);
  assert_int_equal(json_array_size(json_object_get(doc, "rejected")), 1);
  json_decref(doc);
  free(j);
}

static void healthz_not_ready_without_backend(void **state) {
  job *j = get(*state, "GET /healthz HTTP/1.0\r\n\r\n");
  assert_int_equal(j->status, 503);
  json_t *doc = json_body(j);
  assert_false(json_is_true(json_object_get(doc, "ready")));
  assert_non_null(json_string_value(json_object_get(doc, "reason")));
  json_decref(doc);
  free(j);
}

static void unknown_path_404(void **state) {
  job *j = get(*state, "GET /nope HTTP/1.0\r\n\r\n");
  assert_int_equal(j->status, 404);
  assert_non_null(strstr(body(j), "no such path"));
  free(j);
}

static void not_get_400(void **state) {
  job *j = get(*state, "POST /metrics HTTP/1.0\r\n\r\n");
  assert_int_equal(j->status, 400);
  assert_non_null(strstr(body(j), "only GET is served"));
  free(j);
}

static void oversized_request_line_400(void **state) {
  size_t n = 6000;
  char *req = malloc(n + 1);
  assert_non_null(req);
  memcpy(req, "GET /", 5);
  memset(req + 5, 'a', n - 5);
  req[n] = '\0';
  job *j = get(*state, req);
  assert_int_equal(j->status, 400);
  assert_non_null(strstr(body(j), "request line too long"));
  free(j);
  free(req);
}

/* CAP idle connections, then one more asking for /metrics: closed at once
 * without an answer (past the cap it would get its 200). */
static void fill_the_cap(job *j) {
  static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
  int fds[CAP];
  for (int i = 0; i < CAP; i++) fds[i] = connect_admin(j->f->sock);
  int extra = connect_admin(j->f->sock);
  (void)!send(extra, req, sizeof req - 1, MSG_NOSIGNAL);
  read_all(extra, j);
  j->closed_without_answer = j->got == 0;
  close(extra);
  for (int i = 0; i < CAP; i++) close(fds[i]);
}

static void connection_cap(void **state) {
  fixture *f = *state;
  job *j = calloc(1, sizeof *j);
  assert_non_null(j);
  j->run = fill_the_cap;
  run_job(f, j);
  assert_true(j->closed_without_answer);
  free(j);
  /* once the idle ones are closed (the server sees it as it runs), a
   * request is served again */
  for (int attempt = 0;; attempt++) {
    job *again = get(f, "GET /metrics HTTP/1.0\r\n\r\n");
    int status = again->status;
    free(again);
    if (status == 200) break;
    if (attempt == 100) fail_msg("the server does not serve again after the cap");
    uv_run(&f->loop, UV_RUN_NOWAIT);
  }
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(metrics_gauges_gathered, setup, teardown),
      cmocka_unit_test_setup_teardown(plugins_listed, setup, teardown),
      cmocka_unit_test_setup_teardown(healthz_not_ready_without_backend, setup, teardown),
      cmocka_unit_test_setup_teardown(unknown_path_404, setup, teardown),
      cmocka_unit_test_setup_teardown(not_get_400, setup, teardown),
      cmocka_unit_test_setup_teardown(oversized_request_line_400, setup, teardown),
      cmocka_unit_test_setup_teardown(connection_cap, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown();
  return failed;
}
