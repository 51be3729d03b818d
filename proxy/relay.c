/* SPDX-License-Identifier: Apache-2.0 */
/* relay.c: one proxied call, from accept to teardown.
 *
 * A relay pairs the call kubelet made to us (`down`) with a call of the same
 * method, metadata and deadline to the backend (`up`), and moves opaque
 * byte buffers between them. The backend call is created with the incoming
 * call as its parent (GRPC_PROPAGATE_DEFAULTS), so the deadline and a
 * client's cancel reach the backend without help.
 *
 * Two shapes:
 * - Known unary CRI methods take four completion events: accept, request
 *   received, one backend batch that sends everything and receives
 *   everything, one reply batch with headers, message and status.
 * - Every other method (streaming, unknown, future) takes the generic path:
 *   both directions are pumped one message at a time (one receive and one
 *   send outstanding per direction gives backpressure), and the status is
 *   sent only once the backend's status has arrived and its messages are
 *   drained.
 * In both, the reply to the client always carries initial metadata before
 * its status, so a backend's trailers-only error reaches the client at once.
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
#include "self_probe.h"
#include "trace.h"
#include "worker.h"

struct ch_relay {
  ch_worker *w;
  ch_tag accepted;
  ch_tag unary_request, unary_response, unary_done;
  ch_tag down_closed, up_headers, down_headers, c2b_received, c2b_sent, b2c_received, b2c_sent,
      up_status, status_done;
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
  bool streaming;
  bool known_streaming;
  unsigned b2c_count; /* messages relayed to the client */
  bool counted;
  bool c2b_closed;
  bool headers_sent;
  bool up_status_received;
  bool b2c_drained;
  bool status_sent;
  bool ended_by_drain;
  ch_relay *next, *prev;
  size_t held;                     /* answer bytes taken from the budget */
  gpr_timespec held_since;         /* when they were taken */
  bool self_probe;                 /* crihookd's own health probe: not in metrics or trace */
  bool cut;                        /* cancelled for not reading its answer */
  ch_relay *hold_next, *hold_prev; /* the worker's holders */
};

static void on_accepted(ch_tag *t, bool ok);
static void on_unary_request(ch_tag *t, bool ok);
static void on_unary_response(ch_tag *t, bool ok);
static void on_unary_done(ch_tag *t, bool ok);
static void on_down_headers(ch_tag *t, bool ok);
static void on_status_done(ch_tag *t, bool ok);
static void on_down_closed(ch_tag *t, bool ok);
static void on_up_headers(ch_tag *t, bool ok);
static void on_c2b_received(ch_tag *t, bool ok);
static void on_c2b_sent(ch_tag *t, bool ok);
static void on_b2c_received(ch_tag *t, bool ok);
static void on_b2c_sent(ch_tag *t, bool ok);
static void on_up_status(ch_tag *t, bool ok);

/* ---- allocation and teardown ---- */

static ch_relay *relay_new(ch_worker *w) {
  ch_relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->w = w;
  r->accepted.fn = on_accepted;
  r->unary_request.fn = on_unary_request;
  r->unary_response.fn = on_unary_response;
  r->unary_done.fn = on_unary_done;
  r->down_headers.fn = on_down_headers;
  r->status_done.fn = on_status_done;
  r->down_closed.fn = on_down_closed;
  r->up_headers.fn = on_up_headers;
  r->c2b_received.fn = on_c2b_received;
  r->c2b_sent.fn = on_c2b_sent;
  r->b2c_received.fn = on_b2c_received;
  r->b2c_sent.fn = on_b2c_sent;
  r->up_status.fn = on_up_status;
  grpc_call_details_init(&r->details);
  grpc_metadata_array_init(&r->down_md);
  grpc_metadata_array_init(&r->up_md);
  grpc_metadata_array_init(&r->up_trailers);
  r->status_details = grpc_empty_slice();
  atomic_fetch_add(&w->proxy->live_relays, 1);
  return r;
}

static void stream_list_remove(ch_relay *r) {
  atomic_fetch_sub(&r->w->proxy->live_streams, 1);
  if (r->prev)
    r->prev->next = r->next;
  else if (r->w->streams == r)
    r->w->streams = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next = r->prev = NULL;
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
  if (r->counted) { /* first: the trace reads the intercept and the status */
    if (!r->self_probe) record_call(r);
    atomic_fetch_sub(&r->w->proxy->in_flight, 1);
  }
  if (r->streaming) stream_list_remove(r);
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

static grpc_call *create_backend_call(ch_relay *r, const ch_method_info *info) {
  ch_proxy *p = r->w->proxy;
  grpc_channel *channel = info->image_service ? p->image_backend : p->backend;
  const grpc_slice *host = GRPC_SLICE_LENGTH(r->details.host) ? &r->details.host : NULL;
  return grpc_channel_create_call(channel, r->down, GRPC_PROPAGATE_DEFAULTS, r->w->cq,
                                  r->details.method, host, r->details.deadline, NULL);
}

static void start_unary(ch_relay *r);
static void start_streaming(ch_relay *r);
static void refuse_draining(ch_relay *r);

static void on_accepted(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, accepted);
  if (!ok) { /* the server is shutting down: do not accept again */
    relay_unpend(r);
    return;
  }
  bool draining = atomic_load(&r->w->proxy->draining);
  if (draining)
    ch_proxy_accept_while_draining(r->w);
  else
    ch_relay_accept_next(r->w);
  atomic_fetch_add(&r->w->proxy->in_flight, 1);
  r->counted = true;
  r->accepted_at = gpr_now(GPR_CLOCK_MONOTONIC);
  if (draining) {
    refuse_draining(r);
    relay_unpend(r);
    return;
  }
  ch_method_info info = ch_method_classify((const char *)GRPC_SLICE_START_PTR(r->details.method),
                                           GRPC_SLICE_LENGTH(r->details.method));
  r->up = create_backend_call(r, &info);
  if (!r->up) {
    grpc_call_cancel_with_status(r->down, GRPC_STATUS_INTERNAL,
                                 "crihookd: cannot create the backend call", NULL);
  } else if (info.known_unary) {
    r->self_probe = info.cri_name_len == 7 && memcmp(info.cri_name, "Version", 7) == 0 &&
                    ch_is_self_probe(&r->down_md);
    if (r->w->proxy->store) r->kind = ch_intercept_kind_of(info.cri_name, info.cri_name_len);
    start_unary(r);
  } else {
    r->known_streaming = info.known_streaming;
    start_streaming(r);
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

static void reject(ch_relay *r, grpc_status_code code, const char *message);

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

/* Answers the client with crihook's own error (a Fail-policy rejection);
 * the backend call is never started. */
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

/* Batches whose completion only ends their share of the relay's life. */
#define ONLY_UNPEND(handler, member)                    \
  static void handler(ch_tag *t, bool ok) {             \
    (void)ok;                                           \
    relay_unpend(ch_container_of(t, ch_relay, member)); \
  }
ONLY_UNPEND(on_unary_done, unary_done)
ONLY_UNPEND(on_down_headers, down_headers)
ONLY_UNPEND(on_status_done, status_done)

/* ---- the generic (streaming) path ---- */

static void stream_list_add(ch_relay *r) {
  atomic_fetch_add(&r->w->proxy->live_streams, 1);
  r->streaming = true;
  r->next = r->w->streams;
  if (r->next) r->next->prev = r;
  r->w->streams = r;
}

static void recv_from_client(ch_relay *r) {
  grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
  op.data.recv_message.recv_message = &r->c2b;
  relay_start(r, r->down, &op, 1, &r->c2b_received);
}

static void recv_from_backend(ch_relay *r) {
  grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
  op.data.recv_message.recv_message = &r->b2c;
  if (!relay_start(r, r->up, &op, 1, &r->b2c_received)) r->b2c_drained = true;
}

static void start_streaming(ch_relay *r) {
  stream_list_add(r);
  grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
  close_op.data.recv_close_on_server.cancelled = &r->cancelled;
  relay_start(r, r->down, &close_op, 1, &r->down_closed);

  grpc_op head[2];
  memset(head, 0, sizeof head);
  head[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  head[0].data.send_initial_metadata.count = r->down_md.count;
  head[0].data.send_initial_metadata.metadata = r->down_md.metadata;
  head[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  head[1].data.recv_initial_metadata.recv_initial_metadata = &r->up_md;
  relay_start(r, r->up, head, 2, &r->up_headers);

  grpc_op status_op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
  status_op.data.recv_status_on_client.status = &r->status;
  status_op.data.recv_status_on_client.status_details = &r->status_details;
  status_op.data.recv_status_on_client.trailing_metadata = &r->up_trailers;
  relay_start(r, r->up, &status_op, 1, &r->up_status);

  recv_from_client(r);
}

/* Sends the status once the backend's has arrived and its messages are
 * drained; completion order on the queue is not guaranteed, so both
 * handlers call this. */
static void maybe_finish(ch_relay *r) {
  if (!r->up_status_received || !r->b2c_drained || r->status_sent) return;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = fill_reply(r, ops, NULL);
  relay_start(r, r->down, ops, n, &r->status_done);
}

static void on_up_headers(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, up_headers);
  (void)ok;
  if (!r->headers_sent && !r->status_sent) {
    grpc_op op = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    op.data.send_initial_metadata.count = r->up_md.count;
    op.data.send_initial_metadata.metadata = r->up_md.metadata;
    if (relay_start(r, r->down, &op, 1, &r->down_headers)) r->headers_sent = true;
  }
  recv_from_backend(r);
  maybe_finish(r);
  relay_unpend(r);
}

static void on_c2b_received(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, c2b_received);
  if (ok) {
    grpc_op op = {.op = r->c2b ? GRPC_OP_SEND_MESSAGE : GRPC_OP_SEND_CLOSE_FROM_CLIENT};
    if (r->c2b)
      op.data.send_message.send_message = r->c2b;
    else
      r->c2b_closed = true;
    relay_start(r, r->up, &op, 1, &r->c2b_sent);
  }
  relay_unpend(r);
}

static void on_c2b_sent(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, c2b_sent);
  if (r->c2b) {
    grpc_byte_buffer_destroy(r->c2b);
    r->c2b = NULL;
  }
  if (ok && !r->c2b_closed) recv_from_client(r);
  relay_unpend(r);
}

/* Ends the client's call with crihookd's own status (`reason` is static),
 * sending empty headers first if none went yet (a trailers-only answer). */
static void send_own_status(ch_relay *r, grpc_status_code code, const char *reason) {
  grpc_slice details = grpc_slice_from_static_string(reason);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!r->headers_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    r->headers_sent = true;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n++].data.send_status_from_server.status_details = &details;
  r->status_sent = true;
  r->sent_code = code;
  relay_start(r, r->down, ops, n, &r->status_done);
}

/* The answer does not fit the budget: the client hears RESOURCE_EXHAUSTED
 * and the backend call is cancelled. */
static void refuse_stream_answer(ch_relay *r) {
  grpc_byte_buffer_destroy(r->b2c);
  r->b2c = NULL;
  r->b2c_drained = true;
  send_own_status(r, GRPC_STATUS_RESOURCE_EXHAUSTED, budget_refusal);
  grpc_call_cancel(r->up, NULL);
}

static void on_b2c_received(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, b2c_received);
  if (ok && r->b2c && !r->status_sent && !hold_answer(r, r->b2c)) {
    refuse_stream_answer(r);
  } else if (ok && r->b2c && !r->status_sent) {
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = r->b2c;
    if (relay_start(r, r->down, &op, 1, &r->b2c_sent))
      r->b2c_count++;
    else
      r->b2c_drained = true;
  } else {
    r->b2c_drained = true;
  }
  maybe_finish(r);
  relay_unpend(r);
}

static void on_b2c_sent(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, b2c_sent);
  grpc_byte_buffer_destroy(r->b2c);
  r->b2c = NULL;
  release_answer(r);
  if (ok) {
    recv_from_backend(r);
  } else { /* the client is gone: stop the backend side too */
    grpc_call_cancel(r->up, NULL);
    r->b2c_drained = true;
  }
  maybe_finish(r);
  relay_unpend(r);
}

static void on_up_status(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, up_status);
  (void)ok;
  r->up_status_received = true;
  maybe_finish(r);
  relay_unpend(r);
}

static void on_down_closed(ch_tag *t, bool ok) {
  ch_relay *r = ch_container_of(t, ch_relay, down_closed);
  (void)ok;
  if (r->cancelled && !r->status_sent) {
    log_call_end(r, "client cancelled a stream");
    grpc_call_cancel(r->up, NULL);
  }
  relay_unpend(r);
}

/* ---- draining ---- */

/* A stream is a call that is known to stream, or that has relayed two
 * messages without its status (a unary answer is one message right before
 * its status, so one message proves nothing). Everything else, unary calls
 * to unknown methods included, may finish within the grace period. */
static bool is_open_stream(const ch_relay *r) {
  return !r->status_sent && !r->ended_by_drain && (r->known_streaming || r->b2c_count >= 2);
}

/* A real status batch rather than a cancel: a cancel's status can be lost
 * when the server closes the connection right after. */
static void send_drain_status(ch_relay *r) {
  send_own_status(r, GRPC_STATUS_UNAVAILABLE, "crihookd is shutting down");
}

/* A call that arrives during the drain (on a connection opened before it)
 * is answered UNAVAILABLE at once, never forwarded. */
static void refuse_draining(ch_relay *r) {
  ch_debug("relay", "call refused: draining method=%.*s", (int)GRPC_SLICE_LENGTH(r->details.method),
           (const char *)GRPC_SLICE_START_PTR(r->details.method));
  r->status = GRPC_STATUS_UNAVAILABLE;
  grpc_slice_unref(r->status_details);
  r->status_details = grpc_slice_from_static_string("crihookd is shutting down");
  reply_unary(r);
}

void ch_worker_end_streams(ch_worker *w) {
  for (ch_relay *r = w->streams; r; r = r->next) {
    if (!is_open_stream(r)) continue;
    r->ended_by_drain = true;
    send_drain_status(r);
    grpc_call_cancel(r->up, NULL);
  }
}
