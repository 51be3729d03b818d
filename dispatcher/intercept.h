/* SPDX-License-Identifier: Apache-2.0 */
/* intercept.h: what crihook does around the CRI calls it hooks.
 *
 * For each intercepted method the flow has fixed phases, like an nginx
 * request:
 *   1. begin   — the request has arrived: decode it, run the Pre hooks
 *                (changing the request as they answer), then resume the
 *                owner; the owner forwards ch_intercept_request() (or the
 *                original bytes when it returns NULL) or, if
 *                ch_intercept_rejected(), answers the error instead;
 *   2. record  — the backend has answered: on success, update the store
 *                (synchronously, before the client sees the answer, so the
 *                next call finds it);
 *   3. post    — after the client has its answer: run the Post hooks
 *                (notifications), then call `finished`.
 *
 * Which methods are intercepted, their hooks and what the store learns
 * from each are the rows of the intercept table (intercept_rows.h;
 * intercept_pod.c, intercept_container.c); nothing here or in intercept.c
 * names a method. README.md's hook table is the user's view of them.
 *
 * A request is only decoded when the store or a registered hook needs it,
 * and forwarded byte for byte unless a hook changed it. A pod labelled
 * runtimeproxy.koordinator.sh/skip-hookserver=true skips every hook (the
 * store is still kept). Everything runs on the calling loop's thread (libuv;
 * hook calls and the status call below go through that loop's connections,
 * rpc_pool.h); the callbacks may be called before the function that
 * triggers them returns.
 *
 * A request that does not decode here (protobuf-c is stricter than the
 * runtime's Go decoder: an unknown field encoded as a group, an over-long
 * varint key or length, a field number past 32 bits all decode there) can
 * be shown to no hook. If a plugin with failure-policy Fail is registered
 * for the method's Pre hook, begin refuses it (INVALID_ARGUMENT, saying
 * why; nothing reaches the runtime). Otherwise it is forwarded untouched,
 * logged and counted (crihook_undecodable_requests_total{method}), and when
 * the runtime created a pod or container from it, post asks the runtime for
 * its verbose status (one call, at most 2 s, on env->backend_path, after
 * the client has its answer) and records that in the store, as a rebuild
 * would; when it removed one, record drops it from the store by its ID,
 * read leniently (as the runtime's decoder reads it).
 *
 * Live trace (trace.h): while someone watches, begin also decodes requests
 * no hook or store needs (they are small: an ID) and looks the pod or
 * container up in the store, so the event can name them; the hook calls of
 * both chains are collected (and label-skipped plugins listed as skipped);
 * ch_intercept_trace() hands both to the event at the end of the call. */
#pragma once

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "registry.h"
#include "rpc_pool.h"
#include "store.h"
#include "trace.h"

/* An intercepted method: its row in the intercept table (intercept_rows.h,
 * one row per method with its hooks, how its request becomes a hook request,
 * how an answer is applied and what the store learns). */
typedef const struct ch_intercept_row *ch_intercept_kind;
#define CH_INTERCEPT_NONE ((ch_intercept_kind)0)

/* The kind for a CRI method name ("RunPodSandbox"), or NONE. */
ch_intercept_kind ch_intercept_kind_of(const char *method, size_t len);

typedef struct ch_intercept_env {
  uv_loop_t *loop;    /* the calling loop */
  ch_rpc_pool *conns; /* its connections (hook servers, the runtime) */
  ch_registry_slot *registry;
  ch_store *store;
  /* The runtime's socket, for the status of what an undecodable request
   * created (NULL: not asked); must outlive the intercept. */
  const char *backend_path;
  /* The path the call came in on ("/runtime.v1alpha2.RuntimeService/..."):
   * the status calls go to the same service, so a runtime that speaks only
   * v1alpha2 is asked in v1alpha2. Not kept past ch_intercept_begin. */
  const char *method;
  size_t method_len;
} ch_intercept_env;

typedef struct ch_intercept ch_intercept;
typedef void (*ch_intercept_cb)(void *owner);

/* Phase 1. `request` is the request message (without its gRPC prefix), not
 * taken; deadline_ns is the call's deadline on uv_hrtime's clock (0: none).
 * Stores the new state in *out before any hook runs (resume may be called
 * before this returns, and will find it there); returns -1 only if out of
 * memory, and then the owner forwards the call untouched. */
int ch_intercept_begin(ch_intercept_kind kind, const ch_intercept_env *env, const uint8_t *request,
                       size_t len, uint64_t deadline_ns, ch_intercept_cb resume, void *owner,
                       ch_intercept **out);

/* After resume: true if a Fail-policy plugin rejected the call, or the
 * request did not decode while a Fail-policy plugin wants to see it. */
bool ch_intercept_rejected(const ch_intercept *ic, grpc_status_code *code, const char **message);

/* After resume: the changed request message (malloc'd, the caller frees it;
 * *len its length), or NULL to forward the original bytes. */
uint8_t *ch_intercept_request(ch_intercept *ic, size_t *len);

/* Phase 2. `response` is the answer message (without its gRPC prefix; not
 * taken; NULL when there is none). */
void ch_intercept_record(ch_intercept *ic, grpc_status_code status, const uint8_t *response,
                         size_t len);

/* Phase 3. Calls finished(owner) once the Post hooks (if any) are done. */
void ch_intercept_post(ch_intercept *ic, ch_intercept_cb finished);

/* Fills the event's pod and container fields and gives it the hook calls
 * collected so far (they move into the event). */
void ch_intercept_trace(ch_intercept *ic, ch_trace_event *ev);

/* Frees the state (NULL: nothing). Not while a hook chain runs (between
 * begin or post and their callback); while post's status call to the
 * runtime runs it is allowed: that call is cancelled and `finished` is
 * then never called. */
void ch_intercept_free(ch_intercept *ic);
