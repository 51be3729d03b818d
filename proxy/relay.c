/* SPDX-License-Identifier: Apache-2.0 */
/* relay.c: one hooked call in the interception stage, from accept to
 * teardown.
 *
 * The HTTP/2 relay in front (relay/h2relay.h, proxy/dataplane.c) routes only
 * the hooked unary RuntimeService methods here (intercept.h); everything
 * else, streaming and image calls and the self-probe included, it relays
 * itself. So the stage has one shape, and refuses any other call as a
 * routing bug rather than carrying a second, unreachable state machine.
 *
 * A relay pairs the call kubelet made to us (`down`) with a call of the same
 * method, metadata and deadline to the backend (`up`). The backend call is
 * created with the incoming call as its parent (GRPC_PROPAGATE_DEFAULTS), so
 * the deadline and a client's cancel reach the backend without help. A call
 * takes four completion events: accept, request received (then the Pre
 * hooks), one backend batch that sends everything and receives everything,
 * one reply batch with headers, message and status (then the store and the
 * Post hooks). The reply always carries initial metadata before its status,
 * so a backend's trailers-only error reaches the client at once.
 *
 * Lifetime: `pending` counts batches started and not completed. Each handler
 * may start new batches and then drops its own count; the relay is freed when
 * the count reaches zero, at which point nothing can refer to it.
 *
 * Memory: an answer bigger than 64 KiB is counted in the answer budget
 * (answer_budget.h) from the moment it is sent to the client until it is
 * written or the call ends; one that does not fit fails with
 * RESOURCE_EXHAUSTED, and the worker cuts calls whose answer the client
 * leaves unread too long while the budget is tight.
 *
 * At teardown every counted call is recorded in the metrics and, only if
 * someone watches the live trace (one atomic load otherwise), published as a
 * trace event with the intercept's pod, container and hook calls
 * (observe/trace.h). */
#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_budget.h"
#include "grpc_util.h"
#include "intercept.h"
#include "log.h"
#include "methods.h"
#include "metrics.h"
#include "trace.h"
#include "worker.h"

struct ch_relay {
  ch_worker *w;
  ch_tag accepted;
  ch_tag unary_request, unary_response, unary_done;
  grpc_call *down;
  grpc_call *up;
  grpc_call_details details;
  grpc_metadata_array down_md;
  grpc_metadata_array up_md;
  grpc_metadata_array up_trailers;
  grpc_byte_buffer *c2b;
  grpc_byte_buffer *b2c;
  grpc_status_code status;
  grpc_slice status_details;
  ch_intercept_kind kind; /* a hooked CRI method, or NONE */
  gpr_timespec accepted_at;
  grpc_status_code sent_code; /* what the client was told (metrics) */
  ch_intercept *ic;
  int cancelled;
  int pending;
  bool counted;
  bool headers_sent;
  bool status_sent;
  size_t held;                     /* answer bytes taken from the budget */
  gpr_timespec held_since;         /* when they were taken */
  bool cut;                        /* cancelled for not reading its answer */
  ch_relay *hold_next, *hold_prev; /* the worker's holders */
  ch_relay *next, *prev;           /* the worker's relays */
};

static void on_accepted(ch_tag *t, bool ok);
static void on_unary_request(ch_tag *t, bool ok);
static void on_unary_response(ch_tag *t, bool ok);
static void on_unary_done(ch_tag *t, bool ok);

/* ---- allocation and teardown ---- */

static ch_relay *relay_new(ch_worker *w) {
  ch_relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->w = w;
  r->next = w->relays; /* on w's thread, or before it started */
  if (r->next) r->next->prev = r;
  w->relays = r;
  r->accepted.fn = on_accepted;
  r->unary_request.fn = on_unary_request;
  r->unary_response.fn = on_unary_response;
  r->unary_done.fn = on_unary_done;
  grpc_call_details_init(&r->details);
  grpc_metadata_array_init(&r->down_md);
  grpc_metadata_array_init(&r->up_md);
  grpc_metadata_array_init(&r->up_trailers);
  r->status_details = grpc_empty_slice();
  atomic_fetch_add(&w->proxy->live_relays, 1);
  return r;
}

static void trace_call(const ch_relay *r, grpc_status_code code, double seconds) {
  ch_trace_event *ev =
      ch_trace_event_new((const char *)GRPC_SLICE_START_PTR(r->details.method),
                         GRPC_SLICE_LENGTH(r->details.method), code, seconds * 1e3);
  if (!ev) return;
  if (code != GRPC_STATUS_OK && r->status_sent)
    snprintf(ev->message, sizeof ev->message, "%.*s", (int)GRPC_SLICE_LENGTH(r->status_details),
             (const char *)GRPC_SLICE_START_PTR(r->status_details));
  if (r->ic) ch_intercept_trace(r->ic, ev);
  ch_trace_publish(ev);
}

static void record_call(const ch_relay *r) {
  gpr_timespec took = gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), r->accepted_at);
  double seconds = (double)gpr_timespec_to_micros(took) / 1e6;
  grpc_status_code code = r->status_sent ? r->sent_code : GRPC_STATUS_CANCELLED;
  const char *method = (const char *)GRPC_SLICE_START_PTR(r->details.method);
  size_t len = GRPC_SLICE_LENGTH(r->details.method);
  ch_method_info info = ch_method_classify(method, len);
  ch_metrics_cri_call(method, len, info.known_unary || info.known_streaming, code, seconds);
  if (ch_trace_active()) trace_call(r, code, seconds);
}

/* ---- the answer budget ---- */

static const char budget_refusal[] =
    "crihookd holds too many answers that clients have not read yet; try again later";

/* Takes the answer's size from the budget; false if it does not fit. */
static bool hold_answer(ch_relay *r, grpc_byte_buffer *answer) {
  size_t bytes = grpc_byte_buffer_length(answer);
  if (bytes < CH_ANSWER_SMALL_BYTES) return true;
  if (!ch_answer_budget_take(bytes)) {
    ch_warn("relay", "answer refused: budget for unread answers is full method=%.*s bytes=%zu",
            (int)GRPC_SLICE_LENGTH(r->details.method),
            (const char *)GRPC_SLICE_START_PTR(r->details.method), bytes);
    return false;
  }
  r->held = bytes;
  r->held_since = gpr_now(GPR_CLOCK_MONOTONIC);
  r->hold_prev = NULL;
  r->hold_next = r->w->holders;
  if (r->hold_next) r->hold_next->hold_prev = r;
  r->w->holders = r;
  return true;
}

static void release_answer(ch_relay *r) {
  if (!r->held) return;
  ch_answer_budget_give(r->held);
  r->held = 0;
  if (r->hold_prev)
    r->hold_prev->hold_next = r->hold_next;
  else
    r->w->holders = r->hold_next;
  if (r->hold_next) r->hold_next->hold_prev = r->hold_prev;
  r->hold_next = r->hold_prev = NULL;
}

void ch_worker_cut_stalled(ch_worker *w) {
  if (!w->holders) return; /* the common case: no clock read */
  gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  if (gpr_time_to_millis(gpr_time_sub(now, w->swept_at)) < 100) return;
  w->swept_at = now;
  if (!ch_answer_budget_tight()) return;
  for (ch_relay *r = w->holders; r; r = r->hold_next) {
    if (r->cut || gpr_time_to_millis(gpr_time_sub(now, r->held_since)) < CH_ANSWER_STALL_MS)
      continue;
    r->cut = true;
    r->sent_code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    ch_warn("relay", "call cut: the client left its answer unread for %d ms method=%.*s bytes=%zu",
            CH_ANSWER_STALL_MS, (int)GRPC_SLICE_LENGTH(r->details.method),
            (const char *)GRPC_SLICE_START_PTR(r->details.method), r->held);
    grpc_call_cancel_with_status(r->down, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "the client did not read its answer", NULL);
    if (r->up) grpc_call_cancel(r->up, NULL);
  }
}

static void relay_free(ch_relay *r) {
  release_answer(r);
  if (r->prev)
    r->prev->next = r->next;
  else
    r->w->relays = r->next;
  if (r->next) r->next->prev = r->prev;
  if (r->counted) record_call(r); /* first: the trace reads the intercept and the status */
  if (r->up) grpc_call_unref(r->up);
  if (r->down) grpc_call_unref(r->down);
  if (r->c2b) grpc_byte_buffer_destroy(r->c2b);
  if (r->b2c) grpc_byte_buffer_destroy(r->b2c);
  grpc_slice_unref(r->status_details);
  grpc_metadata_array_destroy(&r->down_md);
  grpc_metadata_array_destroy(&r->up_md);
  grpc_metadata_array_destroy(&r->up_trailers);
  grpc_call_details_destroy(&r->details);
  ch_intercept_free(r->ic);
  atomic_fetch_sub(&r->w->proxy->live_relays, 1);
  free(r);
}

/* Drops the count of the batch whose handler is running; frees at zero. */
static void relay_unpend(ch_relay *r) {
  if (--r->pending == 0) relay_free(r);
}

static bool relay_start(ch_relay *r, grpc_call *call, const grpc_op *ops, size_t n, ch_tag *tag) {
  grpc_call_error rc = grpc_call_start_batch(call, ops, n, tag, NULL);
  if (rc != GRPC_CALL_OK) {
    ch_error_log("relay", "grpc refused a batch method=%.*s code=%d",
                 (int)GRPC_SLICE_LENGTH(r->details.method),
                 (const char *)GRPC_SLICE_START_PTR(r->details.method), (int)rc);
    return false;
  }
  r->pending++;
  return true;
}

static void log_call_end(ch_relay *r, const char *what) {
  ch_info("relay", "%s method=%.*s", what, (int)GRPC_SLICE_LENGTH(r->details.method),
          (const char *)GRPC_SLICE_START_PTR(r->details.method));
}

/* ---- accepting ---- */

void ch_relay_accept_next(ch_worker *w) {
  ch_relay *r = relay_new(w);
  if (!r) {
    ch_error_log("relay", "out of memory: cannot accept another call");
    return;
  }
  grpc_call_error rc = grpc_server_request_call(w->proxy->server, &r->down, &r->details,
                                                &r->down_md, w->cq, w->cq, &r->accepted);
  if (rc != GRPC_CALL_OK) {
    ch_error_log("relay", "grpc_server_request_call failed code=%d", (int)rc);
    relay_free(r);
    return;
  }
  r->pending = 1;
}

static grpc_call *create_backend_call(ch_relay *r) {
  const grpc_slice *host = GRPC_SLICE_LENGTH(r->details.host) ? &r->details.host : NULL;
  return grpc_channel_create_call(r->w->proxy->backend, r->down, GRPC_PROPAGATE_DEFAULTS, r->w->cq,
                                  r->details.method, host, r->details.deadline, NULL);
}

static void start_unary(ch_relay *r);
static void reject(ch_relay *r, grpc_status_code code, const char *message);

#define NOT_ROUTED_HERE "crihookd: the interception stage takes only hooked unary CRI calls"

static void on_accepted(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, accepted);
  if (!ok) { /* the server is shutting down: do not accept again */
    relay_unpend(r);
    return;
  }
  ch_proxy_accept_again(r->w);
  bool draining = atomic_load(&r->w->proxy->shut);
  r->counted = true;
  r->accepted_at = gpr_now(GPR_CLOCK_MONOTONIC);
  ch_method_info info = ch_method_classify((const char *)GRPC_SLICE_START_PTR(r->details.method),
                                           GRPC_SLICE_LENGTH(r->details.method));
  if (draining) {
    ch_debug("relay", "call refused: draining method=%.*s",
             (int)GRPC_SLICE_LENGTH(r->details.method),
             (const char *)GRPC_SLICE_START_PTR(r->details.method));
    reject(r, GRPC_STATUS_UNAVAILABLE, "crihookd is shutting down");
  } else if (!info.known_unary || ch_intercept_kind_of(info.cri_name, info.cri_name_len) ==
                                      CH_INTERCEPT_NONE) { /* dataplane.c route_of does not */
    ch_error_log("relay", "call not meant for the interception stage method=%.*s",
                 (int)GRPC_SLICE_LENGTH(r->details.method),
                 (const char *)GRPC_SLICE_START_PTR(r->details.method));
    reject(r, GRPC_STATUS_INTERNAL, NOT_ROUTED_HERE);
  } else if (!(r->up = create_backend_call(r))) {
    grpc_call_cancel_with_status(r->down, GRPC_STATUS_INTERNAL,
                                 "crihookd: cannot create the backend call", NULL);
  } else {
    if (r->w->proxy->store) r->kind = ch_intercept_kind_of(info.cri_name, info.cri_name_len);
    start_unary(r);
  }
  relay_unpend(r);
}

/* ---- the unary path ---- */

static void start_unary(ch_relay *r) {
  grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
  op.data.recv_message.recv_message = &r->c2b;
  relay_start(r, r->down, &op, 1, &r->unary_request);
}

static void forward_unary(ch_relay *r);
static void begin_intercept(ch_relay *r);

static void on_unary_request(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, unary_request);
  if (!ok) {
    log_call_end(r, "client went away before its request arrived");
    grpc_call_cancel(r->down, NULL);
  } else if (!r->c2b) { /* a unary call carries exactly one message */
    log_call_end(r, "request message missing or truncated");
    grpc_call_cancel_with_status(r->down, GRPC_STATUS_INTERNAL,
                                 "crihookd: request message missing or truncated", NULL);
  } else if (r->kind != CH_INTERCEPT_NONE) {
    begin_intercept(r);
  } else {
    forward_unary(r);
  }
  relay_unpend(r);
}

/* Sends the request to the backend and asks for everything back, in one
 * batch. */
static void forward_unary(ch_relay *r) {
  grpc_op ops[6];
  size_t n = ch_unary_client_ops(ops, r->down_md.metadata, r->down_md.count, r->c2b, &r->up_md,
                                 &r->b2c, &r->status, &r->status_details, &r->up_trailers);
  if (!relay_start(r, r->up, ops, n, &r->unary_response))
    grpc_call_cancel_with_status(r->down, GRPC_STATUS_INTERNAL,
                                 "crihookd: cannot start the backend call", NULL);
}

/* ---- hooked methods: Pre hooks before forwarding, store and Post hooks
 * after (dispatcher/intercept.h) ---- */

static void on_pre_hooks_done(void *owner) {
  ch_relay *r = owner;
  grpc_status_code code;
  const char *message;
  if (ch_intercept_rejected(r->ic, &code, &message)) {
    reject(r, code, message);
  } else {
    grpc_byte_buffer *changed = ch_intercept_request(r->ic);
    if (changed) {
      grpc_byte_buffer_destroy(r->c2b);
      r->c2b = changed;
    }
    forward_unary(r);
  }
  relay_unpend(r);
}

static void begin_intercept(ch_relay *r) {
  ch_proxy *p = r->w->proxy;
  ch_intercept_env env = {.cq = r->w->cq,
                          .registry = p->registry,
                          .store = p->store,
                          .backend = p->backend,
                          .method = (const char *)GRPC_SLICE_START_PTR(r->details.method),
                          .method_len = GRPC_SLICE_LENGTH(r->details.method)};
  r->pending++; /* held until on_pre_hooks_done */
  if (ch_intercept_begin(r->kind, &env, r->c2b, r->details.deadline, on_pre_hooks_done, r,
                         &r->ic) != 0) { /* out of memory: forward untouched */
    r->kind = CH_INTERCEPT_NONE;
    forward_unary(r);
    r->pending--;
  }
}

static void on_post_hooks_done(void *owner) { relay_unpend(owner); }

/* Fills ops for the final answer to the client: initial metadata if not
 * sent yet, the backend's message if any, and its status and trailers. */
static size_t fill_reply(ch_relay *r, grpc_op *ops, grpc_byte_buffer *message) {
  size_t n = 0;
  if (!r->headers_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = r->up_md.count;
    ops[n++].data.send_initial_metadata.metadata = r->up_md.metadata;
    r->headers_sent = true;
  }
  if (message) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = message;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = r->status;
  ops[n].data.send_status_from_server.status_details = &r->status_details;
  ops[n].data.send_status_from_server.trailing_metadata_count = r->up_trailers.count;
  ops[n++].data.send_status_from_server.trailing_metadata = r->up_trailers.metadata;
  r->status_sent = true;
  r->sent_code = r->status;
  return n;
}

static void reply_unary(ch_relay *r) {
  if (r->b2c && !hold_answer(r, r->b2c)) {
    grpc_byte_buffer_destroy(r->b2c);
    r->b2c = NULL;
    r->status = GRPC_STATUS_RESOURCE_EXHAUSTED;
    grpc_slice_unref(r->status_details);
    r->status_details = grpc_slice_from_static_string(budget_refusal);
    grpc_metadata_array_destroy(&r->up_trailers);
    grpc_metadata_array_init(&r->up_trailers);
  }
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = fill_reply(r, ops, r->b2c);
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &r->cancelled;
  relay_start(r, r->down, ops, n, &r->unary_done);
}

/* Answers the client with crihook's own error (a Fail-policy rejection, the
 * drain, a routing bug); the backend call is never started. */
static void reject(ch_relay *r, grpc_status_code code, const char *message) {
  r->status = code;
  grpc_slice_unref(r->status_details);
  r->status_details = grpc_slice_from_copied_string(message);
  reply_unary(r);
}

static void on_unary_response(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, unary_response);
  (void)ok; /* a client batch with RECV_STATUS always reports a status */
  if (r->ic) ch_intercept_record(r->ic, r->status, r->b2c); /* before the client hears */
  reply_unary(r);
  if (r->ic) {
    r->pending++; /* held until on_post_hooks_done */
    ch_intercept_post(r->ic, on_post_hooks_done);
  }
  relay_unpend(r);
}

/* The reply batch: its completion only ends its share of the relay's life. */
static void on_unary_done(ch_tag *t, bool ok) {
  (void)ok;
  relay_unpend(ch_container_of(t, ch_relay, unary_done));
}

void ch_worker_cancel_backend_calls(ch_worker *w) {
  for (ch_relay *r = w->relays; r; r = r->next)
    if (r->up) grpc_call_cancel(r->up, NULL);
}
