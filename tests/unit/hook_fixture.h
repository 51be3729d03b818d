/* SPDX-License-Identifier: Apache-2.0 */
/* hook_fixture.h: hook servers and a registry for the dispatcher's unit
 * tests (test_dispatch.c, test_intercept.c).
 *
 * Each hook server is a scriptable fake grpc server (fake_grpc_server.c) on
 * its own socket in a scratch directory; the test says, per server, how it
 * answers (a message, an error status, or no answer at all) and reads back
 * the hook requests it received. Plugins are registered the way crihookd
 * registers them: JSON files in a directory, read by ch_registry_load.
 * The servers are grpc core's (plugins in the field are gRPC servers of
 * every make); the dispatcher's side runs as in crihookd, on a libuv loop
 * with that loop's connections (rpc_pool.h), on the main thread:
 * hook_fx_pump turns the loop until what the test waits for has happened.
 * The caller owns grpc_init() (for the fake servers). */
#pragma once

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "fake_grpc_server.h"
#include "registry.h"
#include "rpc_pool.h"

#define HOOK_FX_SERVERS 3
#define HOOK_FX_CALLS 8

typedef enum { HOOK_FX_ANSWER, HOOK_FX_ERROR, HOOK_FX_HANG } hook_fx_mode;

typedef struct hook_fx_server {
  fake_grpc_server *fake;
  char path[160];
  pthread_mutex_t lock; /* the handler runs on the fake's thread */
  hook_fx_mode mode;
  uint8_t *answer; /* packed answer for HOOK_FX_ANSWER (NULL: an empty message) */
  size_t answer_len;
  grpc_status_code status; /* for HOOK_FX_ERROR */
  char details[96];
  int calls;
  char methods[HOOK_FX_CALLS][96];  /* the methods called, in order */
  uint8_t *requests[HOOK_FX_CALLS]; /* their request bytes (owned) */
  size_t request_lens[HOOK_FX_CALLS];
} hook_fx_server;

typedef struct hook_fx {
  char dir[64]; /* scratch: sockets, and hookserver.d in dir/hooks */
  char hooks_dir[80];
  hook_fx_server servers[HOOK_FX_SERVERS];
  uv_loop_t loop;        /* the dispatcher's */
  ch_rpc_pool *conns;    /* the loop's connections to the hook servers */
  uv_timer_t tick;       /* wakes the loop while hook_fx_pump waits */
  ch_registry *registry; /* after hook_fx_load */
} hook_fx;

hook_fx *hook_fx_new(void);
void hook_fx_free(hook_fx *fx);

/* Server i answers `msg` (NULL: an empty answer). */
void hook_fx_answer(hook_fx *fx, int i, const ProtobufCMessage *msg);
/* Server i answers an error status. */
void hook_fx_error(hook_fx *fx, int i, grpc_status_code status, const char *details);
/* Server i never answers (the caller's deadline ends the call). */
void hook_fx_hang(hook_fx *fx, int i);
/* Server i answers `len` bytes as they are (garbage, or a huge message). */
void hook_fx_answer_bytes(hook_fx *fx, int i, const uint8_t *bytes, size_t len);
/* Stops server i (its socket is gone: calls to it fail at once), or starts
 * it again on the same socket (its script and calls are kept). */
void hook_fx_stop(hook_fx *fx, int i);
void hook_fx_start(hook_fx *fx, int i);

/* Registers plugin `name` (file name without .json) on server i. */
void hook_fx_plugin(hook_fx *fx, const char *name, int server, const char *policy,
                    const char *hooks_json, int timeout_ms);
/* Reads the registrations into fx->registry (replacing an earlier one). */
void hook_fx_load(hook_fx *fx);

/* Calls server i received so far, and the request of call n unpacked as `desc`
 * (the caller frees it). */
int hook_fx_calls(hook_fx *fx, int i);
ProtobufCMessage *hook_fx_request(hook_fx *fx, int i, int n,
                                  const ProtobufCMessageDescriptor *desc);
const char *hook_fx_method(hook_fx *fx, int i, int n);

/* Runs fx->loop until *done is true (fails the test after 20 s). */
void hook_fx_pump(hook_fx *fx, const bool *done);
