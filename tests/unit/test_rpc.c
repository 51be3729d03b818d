/* SPDX-License-Identifier: Apache-2.0 */
/* test_rpc.c: crihook's own gRPC client (rpc/rpc.h) against real servers:
 *  - fake_h2_server.c, raw nghttp2, for everything a server can do wrong:
 *    hang, close mid-call, answer garbage, a message over the limit, two
 *    messages to a unary call, no grpc-status, an HTTP error, a reset, a
 *    GOAWAY, broken framing, a compressed message; and what the client
 *    sends (headers, gRPC framing), deadlines reaching the server as a
 *    reset, streaming stopped either way, reconnecting after a loss;
 *  - grpc core's server (fake_grpc_server.c) for interoperability: an
 *    answer, and an error whose message grpc core percent-encodes;
 *  - the asynchronous API: 200 calls at once on one connection.
 * Every call must end, with the status the header (rpc.h) promises. */
#include <grpc/grpc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "fake_grpc_server.h"
#include "fake_h2_server.h"
#include "rpc.h"
#include "test_clock.h"

#define PATH "/runtime.v1.RuntimeService/Version"

static char tmpdir[64];
static char sock[128];

typedef struct fixture {
  fake_h2 *server;
  ch_rpc_client *client;
} fixture;

static int fixture_up(void **state) {
  fixture *f = calloc(1, sizeof *f);
  static int n;
  snprintf(sock, sizeof sock, "%s/h2-%d.sock", tmpdir, n++);
  f->server = fh2_start(sock, FH2_OK);
  ch_error err;
  f->client = ch_rpc_client_new(sock, &(ch_rpc_opts){.max_recv = 1 << 20}, &err);
  if (!f->server || !f->client) return -1;
  *state = f;
  return 0;
}

static int fixture_down(void **state) {
  fixture *f = *state;
  ch_rpc_client_free(f->client);
  fh2_stop(f->server);
  free(f);
  return 0;
}

/* One unary call of `msg` with a 5 s deadline; the answer is freed. */
static ch_rpc_result unary(fixture *f, const char *msg, size_t *answer_len) {
  ch_rpc_request req = {
      .path = PATH, .message = (const uint8_t *)msg, .len = strlen(msg), .timeout_ms = 5000};
  ch_rpc_result res;
  uint8_t *answer = NULL;
  size_t len = 0;
  ch_error err;
  assert_int_equal(ch_rpc_unary(f->client, &req, &answer, &len, &res, &err), 0);
  if (answer_len) *answer_len = len;
  if (res.status == GRPC_STATUS_OK) {
    assert_non_null(answer);
    assert_memory_equal(answer, msg, strlen(msg) < len ? strlen(msg) : len);
  } else {
    assert_null(answer);
  }
  free(answer);
  return res;
}

static void assert_result(ch_rpc_result res, grpc_status_code status, bool local,
                          const char *text) {
  if (res.status != status || res.local != local || !strstr(res.message, text))
    fail_msg("got %s (local %d) \"%s\", want %s (local %d) containing \"%s\"",
             ch_status_name(res.status), res.local, res.message, ch_status_name(status), local,
             text);
}

/* ---- what the client sends, and a good answer --------------------------- */

static void test_unary_ok_and_what_is_sent(void **state) {
  fixture *f = *state;
  static const ch_rpc_header md[] = {{"crihook-probe", "1"}, {"x-trace", "a b"}};
  ch_rpc_request req = {.path = PATH,
                        .message = (const uint8_t *)"\x0a\x03" "0.1",
                        .len = 5,
                        .md = md,
                        .n_md = 2,
                        .timeout_ms = 4000};
  ch_rpc_result res;
  uint8_t *answer;
  size_t len;
  ch_error err;
  assert_int_equal(ch_rpc_unary(f->client, &req, &answer, &len, &res, &err), 0);
  assert_result(res, GRPC_STATUS_OK, false, "");
  assert_int_equal(len, 5);
  assert_memory_equal(answer,
                      "\x0a\x03"
                      "0.1",
                      5);
  free(answer);
  char v[128];
  const char *want[][2] = {{":method", "POST"},
                           {":scheme", "http"},
                           {":path", PATH},
                           {"te", "trailers"},
                           {"content-type", "application/grpc"},
                           {"grpc-timeout", "4000m"},
                           {"crihook-probe", "1"},
                           {"x-trace", "a b"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    fh2_last_header(f->server, want[i][0], v, sizeof v);
    assert_string_equal(v, want[i][1]);
  }
  fh2_last_header(f->server, "user-agent", v, sizeof v);
  assert_non_null(strstr(v, "crihook/"));
  uint8_t body[16];
  assert_int_equal(fh2_last_body(f->server, body, sizeof body), 10);
  assert_memory_equal(body,
                      "\0\0\0\0\x05\x0a\x03"
                      "0.1",
                      10);
  assert_true(ch_rpc_client_ready(f->client));
}

static void test_empty_request_and_answer(void **state) {
  fixture *f = *state;
  size_t len = 99;
  assert_result(unary(f, "", &len), GRPC_STATUS_OK, false, "");
  assert_int_equal(len, 0);
  uint8_t body[8];
  assert_int_equal(fh2_last_body(f->server, body, sizeof body), 5);
  assert_memory_equal(body, "\0\0\0\0\0", 5);
}

static void test_many_calls_reuse_one_connection(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 50; i++) assert_result(unary(f, "ping", NULL), GRPC_STATUS_OK, false, "");
  assert_int_equal(fh2_connections(f->server), 1);
  assert_int_equal(fh2_requests(f->server), 50);
  assert_int_equal(fh2_resets(f->server), 0); /* a finished stream is not reset */
}

/* ---- statuses the server sends ---------------------------------------------- */

static void test_trailers_only_error_is_decoded(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_STATUS);
  fh2_set_status(f->server, GRPC_STATUS_NOT_FOUND, "pod%20%22a%22%20not found 100%");
  assert_result(unary(f, "x", NULL), GRPC_STATUS_NOT_FOUND, false, "pod \"a\" not found 100%");
}

static void test_http_error_is_mapped(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_HTTP_503);
  assert_result(unary(f, "x", NULL), GRPC_STATUS_UNAVAILABLE, true, "HTTP status 503");
}

/* ---- a server that misbehaves --------------------------------------------- */

static void test_hanging_server_meets_the_deadline(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_HANG);
  ch_rpc_request req = {.path = PATH, .timeout_ms = 200};
  ch_rpc_result res;
  uint8_t *answer;
  size_t len;
  ch_error err;
  int64_t start = now_ms();
  assert_int_equal(ch_rpc_unary(f->client, &req, &answer, &len, &res, &err), 0);
  int64_t took = now_ms() - start;
  assert_result(res, GRPC_STATUS_DEADLINE_EXCEEDED, true, "deadline of 200 ms");
  assert_true(took >= 190 && took < 2000);
  for (int i = 0; i < 200 && fh2_resets(f->server) == 0; i++) usleep(5000);
  assert_int_equal(fh2_resets(f->server), 1); /* the server was told */
  /* the connection stays good for the next call */
  fh2_set_mode(f->server, FH2_OK);
  assert_result(unary(f, "next", NULL), GRPC_STATUS_OK, false, "");
  assert_int_equal(fh2_connections(f->server), 1);
}

static void test_server_closing_mid_call_then_recovery(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_CLOSE);
  ch_rpc_result closed = unary(f, "x", NULL);
  assert_result(closed, GRPC_STATUS_UNAVAILABLE, true, "connection closed by the server");
  assert_false(closed.unprocessed); /* the server had the request: not sent again */
  fh2_set_mode(f->server, FH2_OK);
  assert_result(unary(f, "again", NULL), GRPC_STATUS_OK, false, ""); /* reconnected */
  assert_int_equal(fh2_connections(f->server), 2);
}

static void test_garbage_is_not_http2(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_GARBAGE);
  ch_rpc_result res = unary(f, "x", NULL);
  assert_int_equal(res.status, GRPC_STATUS_UNAVAILABLE);
  assert_true(res.local);
}

static void test_answer_over_the_limit_is_cut(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_BIG);
  fh2_set_size(f->server, 8u << 20); /* the client allows 1 MiB */
  assert_result(unary(f, "x", NULL), GRPC_STATUS_RESOURCE_EXHAUSTED, true,
                "8388608 bytes is over the limit of 1048576");
  for (int i = 0; i < 200 && fh2_resets(f->server) == 0; i++) usleep(5000);
  assert_int_equal(fh2_resets(f->server), 1);
  fh2_set_size(f->server, 1u << 20); /* exactly the limit passes */
  size_t len;
  ch_rpc_request req = {.path = PATH, .timeout_ms = 5000};
  ch_rpc_result res;
  uint8_t *answer;
  ch_error err;
  assert_int_equal(ch_rpc_unary(f->client, &req, &answer, &len, &res, &err), 0);
  assert_result(res, GRPC_STATUS_OK, false, "");
  assert_int_equal(len, 1u << 20);
  assert_int_equal(answer[len - 1], 'x');
  free(answer);
}

static void test_framing_violations(void **state) {
  fixture *f = *state;
  static const struct {
    fh2_mode mode;
    grpc_status_code status;
    const char *text;
    bool unprocessed; /* safe to send again: only a refused stream */
  } rows[] = {
      {FH2_TWO_MESSAGES, GRPC_STATUS_INTERNAL, "more than one answer message", false},
      {FH2_NO_STATUS, GRPC_STATUS_INTERNAL, "without a grpc-status", false},
      {FH2_BAD_FRAMING, GRPC_STATUS_INTERNAL, "inside a message", false},
      {FH2_COMPRESSED, GRPC_STATUS_INTERNAL, "compressed", false},
      {FH2_RST, GRPC_STATUS_INTERNAL, "stream was reset (INTERNAL_ERROR)", false},
      {FH2_GOAWAY, GRPC_STATUS_UNAVAILABLE, "refused the stream", true},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    fh2_set_mode(f->server, rows[i].mode);
    ch_rpc_result res = unary(f, "x", NULL);
    assert_result(res, rows[i].status, true, rows[i].text);
    assert_int_equal(res.unprocessed, rows[i].unprocessed);
  }
  fh2_set_mode(f->server, FH2_OK); /* after the GOAWAY: a new connection */
  assert_result(unary(f, "x", NULL), GRPC_STATUS_OK, false, "");
}

static void test_nothing_listening(void **state) {
  (void)state;
  char path[160];
  snprintf(path, sizeof path, "%s/nobody.sock", tmpdir);
  ch_error err;
  ch_rpc_client *c = ch_rpc_client_new(path, NULL, &err);
  ch_rpc_request req = {.path = PATH, .timeout_ms = 1000};
  ch_rpc_result res;
  uint8_t *answer;
  size_t len;
  assert_int_equal(ch_rpc_unary(c, &req, &answer, &len, &res, &err), 0);
  assert_result(res, GRPC_STATUS_UNAVAILABLE, true, "connect to");
  assert_true(res.unprocessed); /* never sent */
  assert_false(ch_rpc_client_ready(c));
  ch_rpc_client_free(c);
}

/* ---- server streaming --------------------------------------------------- */

typedef struct counter {
  int messages, stop_after, polls, stop_polls;
} counter;

static int count_message(void *ud, const uint8_t *msg, size_t len) {
  counter *c = ud;
  assert_int_equal(len, 6);
  assert_memory_equal(msg, "events", 6);
  return ++c->messages == c->stop_after;
}

static int count_poll(void *ud) {
  counter *c = ud;
  return c->stop_polls && ++c->polls >= c->stop_polls;
}

static ch_rpc_result stream(fixture *f, counter *c) {
  ch_rpc_request req = {.path = "/runtime.v1.RuntimeService/GetContainerEvents",
                        .message = (const uint8_t *)"events",
                        .len = 6};
  ch_rpc_stream_handler h = {.on_message = count_message, .should_stop = count_poll, .ud = c};
  ch_rpc_result res;
  ch_error err;
  assert_int_equal(ch_rpc_stream(f->client, &req, &h, &res, &err), 0);
  return res;
}

static void test_stream_each_message_then_ok(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_STREAM);
  fh2_set_stream(f->server, 3, 30);
  counter c = {0};
  assert_result(stream(f, &c), GRPC_STATUS_OK, false, "");
  assert_int_equal(c.messages, 3);
}

static void test_stream_stopped_by_a_message_or_a_poll(void **state) {
  fixture *f = *state;
  fh2_set_mode(f->server, FH2_STREAM);
  fh2_set_stream(f->server, 1000, 20);
  counter c = {.stop_after = 2};
  assert_result(stream(f, &c), GRPC_STATUS_CANCELLED, true, "stopped by the caller");
  assert_int_equal(c.messages, 2);
  counter p = {.stop_polls = 3}; /* about 300 ms */
  int64_t start = now_ms();
  assert_result(stream(f, &p), GRPC_STATUS_CANCELLED, true, "stopped by the caller");
  assert_true(now_ms() - start < 2000);
  for (int i = 0; i < 200 && fh2_resets(f->server) < 2; i++) usleep(5000);
  assert_int_equal(fh2_resets(f->server), 2);
}

/* ---- grpc core's server -------------------------------------------------- */

static void echo_or_fail(void *data, const char *method, const uint8_t *request, size_t len,
                         fake_answer *a) {
  (void)data;
  if (strcmp(method, PATH) != 0) {
    fake_answer_error(a, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
  } else if (len == 4 && memcmp(request, "fail", 4) == 0) {
    fake_answer_error(a, GRPC_STATUS_FAILED_PRECONDITION, "100% sure: \"no\"\n");
  } else {
    a->response = malloc(len ? len : 1);
    memcpy(a->response, request, len);
    a->response_len = len;
  }
}

static void test_grpc_core_server(void **state) {
  (void)state;
  char path[160];
  snprintf(path, sizeof path, "%s/grpc-core.sock", tmpdir);
  fake_grpc_server *s = fake_grpc_start(path, echo_or_fail, NULL);
  assert_non_null(s);
  ch_error err;
  fixture f = {.client = ch_rpc_client_new(path, NULL, &err)};
  assert_result(unary(&f, "hello", NULL), GRPC_STATUS_OK, false, "");
  assert_result(unary(&f, "fail", NULL), GRPC_STATUS_FAILED_PRECONDITION, false,
                "100% sure: \"no\"\n");
  ch_rpc_client_free(f.client);
  fake_grpc_stop(s);
}

/* ---- the asynchronous API ------------------------------------------------ */

typedef struct many {
  int ended, ok;
} many;

static void many_end(void *ud, const ch_rpc_result *res) {
  many *m = ud;
  m->ended++;
  m->ok += res->status == GRPC_STATUS_OK;
}

static void test_async_calls_at_once(void **state) {
  fixture *f = *state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ch_rpc_conn *c;
  ch_error err;
  assert_int_equal(ch_rpc_conn_open(&loop, sock, NULL, &c, &err), 0);
  many m = {0};
  ch_rpc_call_ops ops = {.on_end = many_end};
  ch_rpc_request req = {.path = PATH, .message = (const uint8_t *)"m", .len = 1, .unary = true};
  for (int i = 0; i < 200; i++) assert_non_null(ch_rpc_call_start(c, &req, &ops, &m, &err));
  assert_int_equal(m.ended, 0); /* never from inside call_start */
  while (m.ended < 200) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(m.ok, 200);
  /* a call left open when the conn closes ends CANCELLED */
  fh2_set_mode(f->server, FH2_HANG);
  assert_non_null(ch_rpc_call_start(c, &req, &ops, &m, &err));
  ch_rpc_conn_close(c);
  assert_int_equal(m.ended, 201);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-rpc-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  grpc_init(); /* for fake_grpc_server only */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  grpc_shutdown();
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_up, fixture_down)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_unary_ok_and_what_is_sent),
      T(test_empty_request_and_answer),
      T(test_many_calls_reuse_one_connection),
      T(test_trailers_only_error_is_decoded),
      T(test_http_error_is_mapped),
      T(test_hanging_server_meets_the_deadline),
      T(test_server_closing_mid_call_then_recovery),
      T(test_garbage_is_not_http2),
      T(test_answer_over_the_limit_is_cut),
      T(test_framing_violations),
      cmocka_unit_test(test_nothing_listening),
      T(test_stream_each_message_then_ok),
      T(test_stream_stopped_by_a_message_or_a_poll),
      cmocka_unit_test(test_grpc_core_server),
      T(test_async_calls_at_once),
  };
  return cmocka_run_group_tests_name("rpc (crihook's gRPC client on nghttp2)", tests, setup,
                                     teardown);
}
