/* SPDX-License-Identifier: Apache-2.0 */
/* hooked.h: crihookd's hooked calls, handled where every other call is: in
 * the HTTP/2 relay's loop (relay/h2relay.h Interception), by the intercept
 * flow of dispatcher/intercept.h.
 *
 * The relay holds a hooked call's request whole and hands it here; the Pre
 * hooks run (hook calls on this loop's connections, rpc_pool.h); the
 * request goes to the runtime with kubelet's own headers (user-agent,
 * grpc-timeout, metadata), its message re-encoded only if a hook changed
 * it, or the call is refused with the status a Fail-policy plugin caused.
 * The runtime's answer is recorded in the store before the call ends for
 * kubelet (the relay holds its trailers, or with --relay terminate the
 * whole answer, until ch_hooked_answer has run), and relayed as the runtime
 * sent it (a trailers-only error stays trailers-only). When the stream has ended the
 * Post hooks run; after them the call is counted in the metrics and, while
 * someone watches, published in the live trace with its pod, container and
 * every hook call of both chains.
 *
 * Why here and no longer in a grpc core server behind a socketpair (the
 * "interception stage" before): that stage decoded and re-sent every hooked
 * call through grpc core's call layer, so the runtime saw grpc core's
 * user-agent and a decompressed request, and crihookd carried grpc core
 * (about 9 MiB of resident libraries) for those rare calls alone.
 *
 * A request that is not exactly one message (none, two, truncated) is
 * refused INTERNAL, as a gRPC server would; a compressed one cannot be
 * decoded here and takes the intercept's undecodable path (forwarded
 * untouched unless a Fail-policy plugin wants to see it).
 *
 * Life: a hooked_call lives from on_request until its Post hooks are done
 * or, if the client left while the Pre hooks ran, until they are done; the
 * relay's stream may end before either. Everything on the loop's thread. */
#pragma once

#include "h2relay.h"
#include "intercept.h"
#include "rpc_pool.h"

typedef struct ch_hooked_env {
  ch_registry_slot *registry;
  ch_store *store;
  const char *backend_path; /* for the intercept's status lookups */
  ch_rpc_pool *conns;       /* the loop's */
  uv_loop_t *loop;
  int live; /* hooked calls not freed yet (the loop's close waits for 0) */
} ch_hooked_env;

static inline int ch_hooked_live(const ch_hooked_env *env) { return env->live; }

/* The relay's on_request for an intercepted stream. */
void ch_hooked_request(ch_hooked_env *env, h2r_call *call, const uint8_t *body, size_t len);

/* The relay's on_answer for an intercepted stream. */
void ch_hooked_answer(h2r_call *call, const h2r_answer *answer);

/* The relay's on_stream_end for a stream with call data: runs the Post
 * hooks, then record(end, data) counts and traces the call. `end` is copied
 * (its path too). */
typedef void (*ch_hooked_record_fn)(const h2r_stream_end *end, ch_intercept *ic);
void ch_hooked_end(const h2r_stream_end *end, ch_hooked_record_fn record);
