/* SPDX-License-Identifier: Apache-2.0 */
/* hook_fixture.c: the hook servers, registrations and loop pump of
 * hook_fixture.h. */
#include "hook_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "test_clock.h"

static void handle(void *data, const char *method, const uint8_t *request, size_t len,
                   fake_answer *answer) {
  hook_fx_server *s = data;
  pthread_mutex_lock(&s->lock);
  if (s->calls < HOOK_FX_CALLS) {
    snprintf(s->methods[s->calls], sizeof s->methods[0], "%s", method);
    s->requests[s->calls] = malloc(len ? len : 1);
    memcpy(s->requests[s->calls], request, len);
    s->request_lens[s->calls] = len;
  }
  s->calls++;
  switch (s->mode) {
    case HOOK_FX_ANSWER: /* always a message, if empty: a gRPC server's unary answer */
      answer->response = malloc(s->answer_len ? s->answer_len : 1);
      if (s->answer_len) memcpy(answer->response, s->answer, s->answer_len);
      answer->response_len = s->answer_len;
      break;
    case HOOK_FX_ERROR:
      fake_answer_error(answer, s->status, s->details);
      break;
    case HOOK_FX_HANG:
      answer->hang = true;
      break;
  }
  pthread_mutex_unlock(&s->lock);
}

hook_fx *hook_fx_new(void) {
  hook_fx *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/crihook-hookfx-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->hooks_dir, sizeof fx->hooks_dir, "%s/hooks", fx->dir);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", fx->hooks_dir);
  assert_int_equal(system(cmd), 0);
  for (int i = 0; i < HOOK_FX_SERVERS; i++) {
    hook_fx_server *s = &fx->servers[i];
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->path, sizeof s->path, "%s/hook%d.sock", fx->dir, i);
    s->fake = fake_grpc_start(s->path, handle, s);
    assert_non_null(s->fake);
  }
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
  fx->conns = ch_rpc_pool_new(&fx->loop);
  assert_non_null(fx->conns);
  return fx;
}

void hook_fx_free(hook_fx *fx) {
  if (fx->registry) ch_registry_unref(fx->registry);
  ch_rpc_pool_free(fx->conns);
  uv_close((uv_handle_t *)&fx->tick, NULL);
  uv_run(&fx->loop, UV_RUN_DEFAULT); /* the connections' close callbacks */
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  for (int i = 0; i < HOOK_FX_SERVERS; i++) {
    hook_fx_server *s = &fx->servers[i];
    fake_grpc_stop(s->fake);
    for (int n = 0; n < HOOK_FX_CALLS && n < s->calls; n++) free(s->requests[n]);
    free(s->answer);
    pthread_mutex_destroy(&s->lock);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fx->dir);
  free(fx);
}

void hook_fx_answer(hook_fx *fx, int i, const ProtobufCMessage *msg) {
  hook_fx_server *s = &fx->servers[i];
  pthread_mutex_lock(&s->lock);
  free(s->answer);
  s->answer = NULL;
  s->answer_len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
  if (s->answer_len) {
    s->answer = malloc(s->answer_len);
    protobuf_c_message_pack(msg, s->answer);
  }
  s->mode = HOOK_FX_ANSWER;
  pthread_mutex_unlock(&s->lock);
}

void hook_fx_error(hook_fx *fx, int i, grpc_status_code status, const char *details) {
  hook_fx_server *s = &fx->servers[i];
  pthread_mutex_lock(&s->lock);
  s->mode = HOOK_FX_ERROR;
  s->status = status;
  snprintf(s->details, sizeof s->details, "%s", details);
  pthread_mutex_unlock(&s->lock);
}

void hook_fx_hang(hook_fx *fx, int i) {
  hook_fx_server *s = &fx->servers[i];
  pthread_mutex_lock(&s->lock);
  s->mode = HOOK_FX_HANG;
  pthread_mutex_unlock(&s->lock);
}

void hook_fx_answer_bytes(hook_fx *fx, int i, const uint8_t *bytes, size_t len) {
  hook_fx_server *s = &fx->servers[i];
  pthread_mutex_lock(&s->lock);
  free(s->answer);
  s->answer = malloc(len ? len : 1);
  assert_non_null(s->answer);
  if (len) memcpy(s->answer, bytes, len);
  s->answer_len = len;
  s->mode = HOOK_FX_ANSWER;
  pthread_mutex_unlock(&s->lock);
}

void hook_fx_stop(hook_fx *fx, int i) {
  hook_fx_server *s = &fx->servers[i];
  fake_grpc_stop(s->fake);
  s->fake = NULL;
  unlink(s->path);
}

void hook_fx_start(hook_fx *fx, int i) {
  hook_fx_server *s = &fx->servers[i];
  assert_null(s->fake);
  s->fake = fake_grpc_start(s->path, handle, s);
  assert_non_null(s->fake);
}

void hook_fx_plugin(hook_fx *fx, const char *name, int server, const char *policy,
                    const char *hooks_json, int timeout_ms) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s.json", fx->hooks_dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f,
          "{\"remote-endpoint\": \"%s\", \"failure-policy\": \"%s\", \"runtime-hooks\": %s, "
          "\"timeout-ms\": %d}\n",
          fx->servers[server].path, policy, hooks_json, timeout_ms);
  fclose(f);
}

void hook_fx_load(hook_fx *fx) {
  ch_registry *next = NULL;
  ch_error err;
  if (ch_registry_load(fx->hooks_dir, fx->registry, &next, &err) != 0) fail_msg("%s", err.msg);
  if (next->error_count) fail_msg("bad registration: %s", next->errors[0].reason);
  if (fx->registry) ch_registry_unref(fx->registry);
  fx->registry = next;
}

int hook_fx_calls(hook_fx *fx, int i) {
  hook_fx_server *s = &fx->servers[i];
  pthread_mutex_lock(&s->lock);
  int n = s->calls;
  pthread_mutex_unlock(&s->lock);
  return n;
}

ProtobufCMessage *hook_fx_request(hook_fx *fx, int i, int n,
                                  const ProtobufCMessageDescriptor *desc) {
  hook_fx_server *s = &fx->servers[i];
  assert_true(n < hook_fx_calls(fx, i) && n < HOOK_FX_CALLS);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, s->request_lens[n], s->requests[n]);
  assert_non_null(msg);
  return msg;
}

const char *hook_fx_method(hook_fx *fx, int i, int n) {
  assert_true(n < hook_fx_calls(fx, i) && n < HOOK_FX_CALLS);
  return fx->servers[i].methods[n];
}

static void tick(uv_timer_t *t) { (void)t; }

void hook_fx_pump(hook_fx *fx, const bool *done) {
  int64_t give_up = now_ms() + 20000;
  uv_timer_start(&fx->tick, tick, 100, 100); /* the loop never sleeps for long */
  while (!*done) {
    if (now_ms() > give_up) fail_msg("not done in 20 s");
    uv_run(&fx->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&fx->tick);
}
