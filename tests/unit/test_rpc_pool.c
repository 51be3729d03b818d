/* SPDX-License-Identifier: Apache-2.0 */
/* test_rpc_pool.c: a loop's rpc connections by socket path (rpc/rpc_pool.h)
 * against real servers:
 *  - fake_h2_server.c (raw nghttp2, its own thread): get hands out the same
 *    connection while it is usable, and a new one after the server closed
 *    it or said GOAWAY; the sweep closes only connections with no call open
 *    and not used for idle_ms; the pool's free ends open calls CANCELLED;
 *  - a server driven by the test itself on the same thread (nghttp2's
 *    server session over one accepted socket), to say GOAWAY while a call
 *    it promised to finish is open: the pool hands out a new connection at
 *    once but keeps the old one until that call has ended normally, and
 *    only then does the sweep close it.
 * Every call started must end exactly once. */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "fake_h2_server.h"
#include "rpc_pool.h"
#include "test_clock.h"

#define PATH "/runtime.v1.RuntimeService/Version"

static char tmpdir[64];

typedef struct fixture {
  uv_loop_t loop;
  uv_timer_t tick; /* keeps UV_RUN_ONCE from sleeping for long */
  ch_rpc_pool *pool;
  fake_h2 *servers[3];
  char socks[3][128];
} fixture;

/* ---- one call and its end ------------------------------------------------- */

typedef struct ended {
  int count;
  ch_rpc_result res;
  size_t answer_len;
} ended;

static int on_message(void *ud, const uint8_t *msg, size_t len) {
  (void)msg;
  ((ended *)ud)->answer_len = len;
  return 0;
}

static void on_end(void *ud, const ch_rpc_result *res) {
  ended *e = ud;
  e->count++;
  e->res = *res;
}

static const ch_rpc_call_ops ops = {on_message, on_end};

static ch_rpc_call *start(ch_rpc_conn *c, ended *e) {
  ch_rpc_request req = {.path = PATH,
                        .message = (const uint8_t *)"ping",
                        .len = 4,
                        .timeout_ms = 10000,
                        .unary = true};
  ch_error err;
  *e = (ended){0};
  ch_rpc_call *call = ch_rpc_call_start(c, &req, &ops, e, &err);
  if (!call) fail_msg("call: %s", err.msg);
  return call;
}

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until *flag is non-zero (fails after 10 s). */
static void run_until(fixture *f, const int *flag) {
  int64_t give_up = now_ms() + 10000;
  while (!*flag) {
    if (now_ms() > give_up) fail_msg("not done in 10 s");
    uv_run(&f->loop, UV_RUN_ONCE);
  }
}

/* One call on `c`, run to its end. */
static ch_rpc_result call(fixture *f, ch_rpc_conn *c) {
  ended e;
  start(c, &e);
  run_until(f, &e.count);
  assert_int_equal(e.count, 1);
  return e.res;
}

/* Runs the loop for about `ms` (the loop's clock moves on). */
static void run_for(fixture *f, int ms) {
  int64_t until = now_ms() + ms;
  while (now_ms() < until) uv_run(&f->loop, UV_RUN_ONCE);
}

static ch_rpc_conn *get(fixture *f, int server) {
  ch_error err;
  ch_rpc_conn *c = ch_rpc_pool_get(f->pool, f->socks[server], NULL, &err);
  if (!c) fail_msg("get: %s", err.msg);
  return c;
}

/* ---- fixture ---------------------------------------------------------------- */

static int fixture_up(void **state) {
  static int n;
  fixture *f = calloc(1, sizeof *f);
  if (!f || uv_loop_init(&f->loop) != 0) return -1;
  uv_timer_init(&f->loop, &f->tick);
  uv_timer_start(&f->tick, tick, 50, 50);
  f->pool = ch_rpc_pool_new(&f->loop);
  for (int i = 0; i < 3; i++) {
    snprintf(f->socks[i], sizeof f->socks[i], "%s/pool-%d-%d.sock", tmpdir, n, i);
    if (!(f->servers[i] = fh2_start(f->socks[i], FH2_OK))) return -1;
  }
  n++;
  *state = f;
  return f->pool ? 0 : -1;
}

static int fixture_down(void **state) {
  fixture *f = *state;
  ch_rpc_pool_free(f->pool);
  uv_close((uv_handle_t *)&f->tick, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&f->loop);
  for (int i = 0; i < 3; i++) fh2_stop(f->servers[i]);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ---- get ------------------------------------------------------------------------ */

static void test_get_returns_the_same_conn(void **state) {
  fixture *f = *state;
  ch_rpc_conn *a = get(f, 0);
  assert_ptr_equal(get(f, 0), a);
  assert_int_equal(call(f, a).status, GRPC_STATUS_OK);
  assert_ptr_equal(get(f, 0), a);
  assert_int_equal(call(f, a).status, GRPC_STATUS_OK);
  assert_ptr_not_equal(get(f, 1), a); /* another path, another conn */
  assert_int_equal(fh2_connections(f->servers[0]), 1);
}

static void test_new_conn_after_the_server_closed_it(void **state) {
  fixture *f = *state;
  ch_rpc_conn *a = get(f, 0);
  fh2_set_mode(f->servers[0], FH2_CLOSE);
  ch_rpc_result res = call(f, a);
  assert_int_equal(res.status, GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(res.message, "connection closed by the server"));
  assert_false(ch_rpc_conn_usable(a));
  fh2_set_mode(f->servers[0], FH2_OK);
  ch_rpc_conn *b = get(f, 0);
  assert_ptr_not_equal(b, a);
  assert_true(ch_rpc_conn_usable(b));
  assert_int_equal(call(f, b).status, GRPC_STATUS_OK);
  assert_ptr_equal(get(f, 0), b);
  assert_int_equal(fh2_connections(f->servers[0]), 2);
}

static void test_new_conn_after_goaway(void **state) {
  fixture *f = *state;
  ch_rpc_conn *a = get(f, 0);
  assert_int_equal(call(f, a).status, GRPC_STATUS_OK);
  fh2_set_mode(f->servers[0], FH2_GOAWAY);
  assert_int_equal(call(f, a).status, GRPC_STATUS_UNAVAILABLE); /* refused past the GOAWAY */
  assert_false(ch_rpc_conn_usable(a));
  fh2_set_mode(f->servers[0], FH2_OK);
  ch_rpc_conn *b = get(f, 0);
  assert_ptr_not_equal(b, a);
  assert_int_equal(call(f, b).status, GRPC_STATUS_OK);
  assert_int_equal(fh2_connections(f->servers[0]), 2);
}

/* A connection that cannot even connect is handed out (its calls end
 * UNAVAILABLE), and replaced at the next get. */
static void test_nothing_listening(void **state) {
  fixture *f = *state;
  char gone[160];
  snprintf(gone, sizeof gone, "%s/nobody.sock", tmpdir);
  ch_error err;
  ch_rpc_conn *a = ch_rpc_pool_get(f->pool, gone, NULL, &err);
  assert_non_null(a);
  ch_rpc_result res = call(f, a);
  assert_int_equal(res.status, GRPC_STATUS_UNAVAILABLE);
  assert_non_null(strstr(res.message, "connect to"));
  ch_rpc_conn *b = ch_rpc_pool_get(f->pool, gone, NULL, &err);
  assert_ptr_not_equal(b, a);
}

/* ---- sweep ---------------------------------------------------------------------- */

/* Server 0's conn has a call open, server 1's is idle and old, server 2's
 * idle but just used: the sweep closes server 1's only. */
static void test_sweep_closes_only_idle_unused(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->servers[0], FH2_HANG);
  ch_rpc_conn *busy = get(f, 0), *old = get(f, 1);
  ended hanging;
  start(busy, &hanging);
  assert_int_equal(call(f, old).status, GRPC_STATUS_OK);
  run_for(f, 120);
  ch_rpc_conn *fresh = get(f, 2);
  assert_int_equal(ch_rpc_pool_sweep(f->pool, 100), 1);
  assert_int_equal(hanging.count, 0); /* the busy one was left alone */
  assert_ptr_equal(get(f, 0), busy);
  assert_ptr_equal(get(f, 2), fresh);
  ch_rpc_conn *again = get(f, 1); /* reopened on use */
  assert_int_equal(call(f, again).status, GRPC_STATUS_OK);
  assert_int_equal(fh2_connections(f->servers[1]), 2);
  assert_int_equal(ch_rpc_pool_sweep(f->pool, 60000), 0); /* all recent */
}

/* ---- free --------------------------------------------------------------------------- */

static void test_free_ends_open_calls_cancelled(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->servers[0], FH2_HANG);
  ended e[2];
  start(get(f, 0), &e[0]);
  start(get(f, 0), &e[1]);
  run_for(f, 50);
  ch_rpc_pool_free(f->pool);
  f->pool = NULL;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(e[i].count, 1); /* ended before free returned */
    assert_int_equal(e[i].res.status, GRPC_STATUS_CANCELLED);
    assert_true(e[i].res.local);
  }
}

/* ---- GOAWAY with a call still open: a server on the test's thread ------------------ */

typedef struct inline_server {
  int listen_fd, fd;
  nghttp2_session *session;
  int32_t request_ended; /* the last stream whose request ended */
  bool sent_response;
} inline_server;

static int srv_frame(nghttp2_session *s, const nghttp2_frame *fr, void *ud) {
  (void)s;
  inline_server *sv = ud;
  if ((fr->hd.type == NGHTTP2_HEADERS || fr->hd.type == NGHTTP2_DATA) &&
      (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
    sv->request_ended = fr->hd.stream_id;
  return 0;
}

static nghttp2_nv nv(const char *name, const char *value) {
  return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                      NGHTTP2_NV_FLAG_NONE};
}

/* The answer: one message "pong", then trailers grpc-status 0. */
static ssize_t srv_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud) {
  (void)src, (void)ud, (void)len;
  memcpy(buf, "\0\0\0\0\x04pong", 9);
  *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  nghttp2_nv trailers[] = {nv("grpc-status", "0")};
  nghttp2_submit_trailer(s, id, trailers, 1);
  return 9;
}

static void srv_listen(inline_server *sv, const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  unlink(path);
  sv->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(sv->listen_fd >= 0);
  assert_int_equal(bind(sv->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(sv->listen_fd, 4), 0);
  nghttp2_session_callbacks *cb;
  assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_frame);
  assert_int_equal(nghttp2_session_server_new(&sv->session, cb, sv), 0);
  nghttp2_session_callbacks_del(cb);
  assert_int_equal(nghttp2_submit_settings(sv->session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
  sv->fd = -1;
}

/* Takes the first connection (the client's connect is under way). */
static void srv_accept(inline_server *sv) {
  sv->fd = accept(sv->listen_fd, NULL, NULL);
  assert_true(sv->fd >= 0);
}

/* Reads what the client sent and writes what the session has to send;
 * never blocks. */
static void srv_step(inline_server *sv) {
  uint8_t buf[16384];
  ssize_t n;
  while ((n = recv(sv->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
    assert_int_equal(nghttp2_session_mem_recv(sv->session, buf, (size_t)n), n);
  const uint8_t *out;
  while ((n = nghttp2_session_mem_send(sv->session, &out)) > 0)
    assert_int_equal(send(sv->fd, out, (size_t)n, MSG_NOSIGNAL), n);
}

/* Turns the client's loop and the server until `done` says so. */
static void both_until(fixture *f, inline_server *sv, bool (*done)(void *), void *arg) {
  int64_t give_up = now_ms() + 10000;
  while (!done(arg)) {
    if (now_ms() > give_up) fail_msg("not done in 10 s");
    uv_run(&f->loop, UV_RUN_NOWAIT);
    srv_step(sv);
    usleep(1000);
  }
}

static bool request_ended(void *arg) { return ((inline_server *)arg)->request_ended > 0; }
static bool conn_unusable(void *arg) { return !ch_rpc_conn_usable(arg); }
static bool call_ended(void *arg) { return ((ended *)arg)->count > 0; }

static void test_goaway_keeps_a_conn_until_its_calls_end(void **state) {
  fixture *f = *state;
  char path[160];
  snprintf(path, sizeof path, "%s/inline.sock", tmpdir);
  inline_server sv = {0};
  srv_listen(&sv, path);
  ch_error err;
  ch_rpc_conn *a = ch_rpc_pool_get(f->pool, path, NULL, &err);
  assert_non_null(a);
  ended e;
  start(a, &e);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  srv_accept(&sv);
  both_until(f, &sv, request_ended, &sv);

  /* GOAWAY naming the open stream as the last: it will be finished */
  assert_int_equal(nghttp2_submit_goaway(sv.session, NGHTTP2_FLAG_NONE, sv.request_ended,
                                         NGHTTP2_NO_ERROR, NULL, 0),
                   0);
  both_until(f, &sv, conn_unusable, a);
  ch_rpc_conn *b = ch_rpc_pool_get(f->pool, path, NULL, &err);
  assert_non_null(b);
  assert_ptr_not_equal(b, a);
  assert_int_equal(ch_rpc_pool_sweep(f->pool, 60000), 0); /* a's call is open: kept */
  assert_int_equal(e.count, 0);

  nghttp2_nv headers[] = {nv(":status", "200"), nv("content-type", "application/grpc")};
  nghttp2_data_provider body = {.read_callback = srv_body};
  assert_int_equal(nghttp2_submit_response(sv.session, sv.request_ended, headers, 2, &body), 0);
  both_until(f, &sv, call_ended, &e);
  assert_int_equal(e.res.status, GRPC_STATUS_OK); /* finished, not cancelled */
  assert_int_equal(e.answer_len, 4);
  assert_int_equal(ch_rpc_pool_sweep(f->pool, 60000), 1); /* now a goes; b is recent */
  assert_ptr_equal(ch_rpc_pool_get(f->pool, path, NULL, &err), b);

  nghttp2_session_del(sv.session);
  close(sv.fd);
  close(sv.listen_fd);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-rpcpool-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_up, fixture_down)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_get_returns_the_same_conn),
      T(test_new_conn_after_the_server_closed_it),
      T(test_new_conn_after_goaway),
      T(test_nothing_listening),
      T(test_sweep_closes_only_idle_unused),
      T(test_free_ends_open_calls_cancelled),
      T(test_goaway_keeps_a_conn_until_its_calls_end),
  };
  return cmocka_run_group_tests_name("rpc_pool (a loop's rpc connections)", tests, setup, teardown);
}
