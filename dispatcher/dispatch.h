/* SPDX-License-Identifier: Apache-2.0 */
/* dispatch.h: calling the plugins registered for one hook point, in
 * registry order, on the calling loop (libuv), with crihook's own gRPC
 * client (rpc/rpc.h) on the loop's connections (rpc_pool.h).
 *
 * One ch_dispatch runs one chain: for each plugin it packs the hook request
 * as it stands (ops->build, so every plugin sees the changes of those before
 * it), calls the plugin with a deadline of its timeout-ms but never past the
 * CRI call's own deadline, decodes the answer and hands it to ops->apply
 * (Pre hooks only; Post hooks are notifications). When the chain has ended,
 * ops->done is called once.
 *
 * Failure policy: a Pre hook call that fails (plugin absent or refusing,
 * timeout, error status, undecodable answer, an answer that cannot be
 * applied) rejects the CRI call if the plugin's policy is Fail: the chain
 * stops and `rejected` carries a status and a message naming the plugin,
 * the hook and the cause. With Ignore, or on a Post hook, the failure is
 * logged and counted and the chain goes on. A call the plugin cannot have
 * processed (never sent, or its stream refused: a hook server going away
 * gracefully sends GOAWAY) is first sent once more on a new connection, as
 * grpc core's transparent retry did, so a plugin's restart fails no call.
 *
 * Recording: every plugin the chain tries, whether its call went out or
 * failed before it started, becomes one ch_hook_outcome (observe/
 * outcome.h) recorded once in the metrics and the stats; while someone
 * watches, the same value is reported to ops->traced (if set): plugin,
 * hook, result, latency, and what its answer changed (the merge's change
 * list). Nobody watching costs one atomic load per hook call. A call
 * cancelled by the shutdown is not the plugin's failure and is not
 * recorded.
 *
 * Shutdown: ch_dispatch_cancel_all() cancels the calling loop thread's hook
 * calls; each chain it reaches stops with `rejected` set (UNAVAILABLE,
 * "crihookd is shutting down"), whatever the plugins' policies, so no CRI
 * call goes past a plugin that did not answer.
 *
 * The struct lives inside its owner's per-call state; the registry passed in
 * must stay referenced by the owner until done() has been called. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "hooks.h"
#include "merge.h"
#include "registry.h"
#include "rpc.h"
#include "rpc_pool.h"
#include "trace.h"

typedef struct ch_dispatch ch_dispatch;

typedef struct ch_dispatch_ops {
  uint8_t *(*build)(void *ctx, size_t *len); /* malloc'd packed request, NULL = error */
  int (*apply)(void *ctx, const ProtobufCMessage *answer, const ch_plugin *plugin,
               ch_merge_trace *trace); /* 0, or -1 if the answer cannot be applied */
  void (*done)(void *ctx);
  void (*traced)(void *ctx, const ch_trace_hook *call); /* optional; see above */
} ch_dispatch_ops;

/* Where a chain runs: the loop and its connections (not owned). */
typedef struct ch_dispatch_env {
  uv_loop_t *loop;
  ch_rpc_pool *conns;
} ch_dispatch_env;

struct ch_dispatch {
  const ch_dispatch_ops *ops;
  void *ctx;
  ch_dispatch_env env;
  const ch_registry *registry;
  ch_hook_point hook;
  uint64_t deadline_ns; /* the CRI call's (uv_hrtime clock); 0: none */
  const char *subject;  /* "pod=ns/name [container=...]" for logs; not owned */
  size_t next;
  const ch_plugin *plugin; /* the one being called */
  ch_rpc_call *call;       /* in flight, or NULL */
  uint8_t *answer;         /* the plugin's answer message (malloc'd), or NULL */
  size_t answer_len;
  uint64_t started_ns;
  ch_merge_trace trace;
  unsigned called;
  bool retried; /* this plugin's call was sent again once (dispatch.c) */
  ch_dispatch *next_in_flight, *prev_in_flight; /* this thread's list (dispatch.c) */
  bool aborted;                                 /* cancelled by the shutdown */
  bool rejected;
  grpc_status_code reject_code;
  char reject_message[768];
};

/* Returns true if at least one plugin of `registry` is registered for `hook`. */
bool ch_dispatch_wanted(const ch_registry *registry, ch_hook_point hook);

/* Starts the chain; ops->done may be called before this returns (no plugin,
 * or every plugin failing at once). deadline_ns: the CRI call's deadline
 * on uv_hrtime's clock, 0 for none (each plugin call is bounded by its
 * timeout-ms anyway). */
void ch_dispatch_start(ch_dispatch *d, const ch_dispatch_env *env, const ch_registry *registry,
                       ch_hook_point hook, uint64_t deadline_ns, const char *subject,
                       const ch_dispatch_ops *ops, void *ctx);

/* On a loop thread: cancels every hook call that thread has in flight and
 * stops that thread from starting new ones (for the forced end of a drain).
 * Returns how many calls it cancelled. */
int ch_dispatch_cancel_all(void);
