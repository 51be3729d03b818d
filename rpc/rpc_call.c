/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_call.c: one call of crihook's gRPC client (rpc.h): its request
 * headers and body, the answer's headers, gRPC framing and trailers, and
 * the one status it ends with.
 *
 * Framing is read as DATA arrives: the 5-byte prefix of each message
 * decides at once whether the message may be taken (not compressed, not
 * over max_recv, not a second answer to a unary call); only then is its
 * body gathered, into one block of the announced length. A call that
 * breaks a rule ends at that point and its stream is reset, so a server
 * that answers a gigabyte costs one frame.
 *
 * A call started on a conn that cannot take it (lost, GOAWAY) must still
 * end from the loop, never inside ch_rpc_call_start (rpc.h): it is marked
 * doomed and ended by the conn's `later` timer, armed for the next loop
 * turn. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "percent.h"
#include "rpc_int.h"

/* ---- ending ------------------------------------------------------------------ */

static void call_freed(uv_handle_t *h) {
  ch_rpc_call *call = h->data;
  free(call->body);
  free(call->msg);
  free(call);
}

static void unlink_call(ch_rpc_call *call) {
  ch_rpc_conn *c = call->conn;
  if (call->prev)
    call->prev->next = call->next;
  else
    c->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  call->next = call->prev = NULL;
}

/* Detaches the call from its stream; resets the stream if still open. */
static void release_stream(ch_rpc_call *call) {
  nghttp2_session *s = call->conn->session;
  if (call->stream_id <= 0 || !nghttp2_session_get_stream_user_data(s, call->stream_id)) return;
  nghttp2_session_set_stream_user_data(s, call->stream_id, NULL);
  if (nghttp2_session_find_stream(s, call->stream_id))
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
}

void rpc_call_end(ch_rpc_call *call, grpc_status_code status, bool local, const char *fmt, ...) {
  if (call->ended) return;
  call->ended = true;
  ch_rpc_result res = {.status = status, .local = local};
  res.unprocessed = status == GRPC_STATUS_UNAVAILABLE && local && (call->refused || !call->sent);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res.message, sizeof res.message, fmt, ap);
  va_end(ap);
  unlink_call(call);
  release_stream(call);
  uv_timer_stop(&call->deadline);
  call->ops.on_end(call->ud, &res);
  uv_close((uv_handle_t *)&call->deadline, call_freed);
  rpc_conn_flush(call->conn);
}

void rpc_conn_end_doomed(ch_rpc_conn *c) {
  ch_rpc_call *call = c->calls;
  while (call) {
    ch_rpc_call *next = call->next;
    if (call->doomed) rpc_call_end(call, call->doom.status, true, "%s", call->doom.message);
    call = next;
  }
}

void ch_rpc_call_cancel(ch_rpc_call *call, const char *why) {
  rpc_call_end(call, GRPC_STATUS_CANCELLED, true, "%s", why ? why : "cancelled");
}

static void deadline_cb(uv_timer_t *t) {
  ch_rpc_call *call = t->data;
  rpc_call_end(call, GRPC_STATUS_DEADLINE_EXCEEDED, true, "deadline of %lld ms exceeded",
               (long long)call->timeout_ms);
}

/* ---- the answer: headers and trailers --------------------------------------- */

static ch_rpc_call *call_of(nghttp2_session *s, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(s, stream_id);
}

static bool named(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  (void)flags;
  (void)ud;
  ch_rpc_call *call = f->hd.type == NGHTTP2_HEADERS ? call_of(s, f->hd.stream_id) : NULL;
  if (!call) return 0;
  char v[16];
  if (named(name, namelen, ":status") || named(name, namelen, "grpc-status")) {
    size_t n = valuelen < sizeof v - 1 ? valuelen : sizeof v - 1;
    memcpy(v, value, n);
    v[n] = '\0';
  }
  if (named(name, namelen, ":status")) {
    call->http_status = atoi(v);
  } else if (named(name, namelen, "grpc-status")) {
    call->have_grpc_status = true;
    call->grpc_status = atoi(v);
  } else if (named(name, namelen, "grpc-message")) {
    ch_percent_decode((const char *)value, valuelen, call->grpc_message, sizeof call->grpc_message,
                      CH_PCT_GRPC_MESSAGE);
  }
  return 0;
}

/* ---- the answer: messages ---------------------------------------------------- */

/* Delivers the message just completed; false if the call ended. */
static bool deliver(ch_rpc_call *call) {
  call->in_msg = false;
  call->messages++;
  int stop = call->ops.on_message ? call->ops.on_message(call->ud, call->msg, call->msg_len) : 0;
  free(call->msg);
  call->msg = NULL;
  if (stop && !call->ended)
    rpc_call_end(call, GRPC_STATUS_CANCELLED, true, "stopped by the caller");
  return !call->ended;
}

/* The prefix is complete: checks it and makes room for the message. */
static bool open_message(ch_rpc_call *call) {
  uint8_t flags = call->prefix[0];
  size_t len = ch_grpc_frame_len(call->prefix);
  call->prefix_got = 0;
  if (flags & 1) {
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true,
                 "the server sent a compressed message (no compression was negotiated)");
    return false;
  }
  if (len > call->conn->max_recv) {
    rpc_call_end(call, GRPC_STATUS_RESOURCE_EXHAUSTED, true,
                 "answer message of %zu bytes is over the limit of %zu", len, call->conn->max_recv);
    return false;
  }
  if (call->unary && call->messages > 0) {
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true, "more than one answer message to a unary call");
    return false;
  }
  if (!(call->msg = malloc(len ? len : 1))) {
    rpc_call_end(call, GRPC_STATUS_RESOURCE_EXHAUSTED, true, "out of memory for the answer");
    return false;
  }
  call->msg_len = len;
  call->msg_got = 0;
  call->in_msg = true;
  return len > 0 || deliver(call);
}

/* Takes up to len bytes of the answer; returns how many, or 0 if the call
 * ended on them. */
static size_t take(ch_rpc_call *call, const uint8_t *p, size_t len) {
  if (!call->in_msg) {
    size_t n = CH_GRPC_PREFIX - call->prefix_got;
    if (n > len) n = len;
    memcpy(call->prefix + call->prefix_got, p, n);
    call->prefix_got += n;
    if (call->prefix_got == CH_GRPC_PREFIX && !open_message(call)) return 0;
    return n;
  }
  size_t n = call->msg_len - call->msg_got;
  if (n > len) n = len;
  memcpy(call->msg + call->msg_got, p, n);
  call->msg_got += n;
  if (call->msg_got == call->msg_len && !deliver(call)) return 0;
  return n;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *ud) {
  (void)flags;
  (void)ud;
  ch_rpc_call *call = call_of(s, stream_id);
  while (call && len > 0) {
    size_t n = take(call, data, len);
    if (n == 0) break;
    data += n;
    len -= n;
  }
  return 0;
}

/* ---- the end of the stream ---------------------------------------------------- */

/* gRPC's mapping of an HTTP status that came without grpc-status. */
static grpc_status_code from_http(int http) {
  switch (http) {
    case 400:
      return GRPC_STATUS_INTERNAL;
    case 401:
      return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS_UNAVAILABLE;
    default:
      return GRPC_STATUS_UNKNOWN;
  }
}

/* The server ended the stream cleanly: what did it say? */
static void end_answered(ch_rpc_call *call) {
  if (call->in_msg || call->prefix_got > 0)
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true, "the answer ended inside a message");
  else if (call->have_grpc_status && call->grpc_status == 0 && call->unary && !call->messages)
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true, "the server answered OK without a message");
  else if (call->have_grpc_status)
    rpc_call_end(call, (grpc_status_code)call->grpc_status, false, "%s", call->grpc_message);
  else if (call->http_status != 200)
    rpc_call_end(call, from_http(call->http_status), true, "HTTP status %d", call->http_status);
  else
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true, "the answer ended without a grpc-status");
}

/* REFUSED_STREAM (also nghttp2's for the streams past a GOAWAY's last
 * one): the server did not process it (RFC 9113 8.7). */
static void refused(ch_rpc_call *call) {
  call->refused = true;
  rpc_call_end(call, GRPC_STATUS_UNAVAILABLE, true, "the server refused the stream");
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud) {
  (void)ud;
  ch_rpc_call *call = call_of(s, stream_id);
  if (!call) return 0;
  nghttp2_session_set_stream_user_data(s, stream_id, NULL); /* closed: nothing to reset */
  if (code == NGHTTP2_NO_ERROR)
    end_answered(call);
  else if (code == NGHTTP2_REFUSED_STREAM)
    refused(call);
  else if (code == NGHTTP2_CANCEL)
    rpc_call_end(call, GRPC_STATUS_CANCELLED, true, "the server cancelled the stream");
  else
    rpc_call_end(call, GRPC_STATUS_INTERNAL, true, "the stream was reset (%s)",
                 nghttp2_http2_strerror(code));
  return 0;
}

/* A call's HEADERS went out: from here on the server may have processed
 * it, unless it refuses the stream. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)ud;
  ch_rpc_call *call = f->hd.type == NGHTTP2_HEADERS ? call_of(s, f->hd.stream_id) : NULL;
  if (call) call->sent = true;
  return 0;
}

void rpc_call_callbacks(nghttp2_session_callbacks *cb) {
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
}

/* ---- the request --------------------------------------------------------------- */

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)src;
  (void)ud;
  ch_rpc_call *call = call_of(s, stream_id);
  if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = call->body_len - call->body_sent;
  if (n > len) n = len;
  memcpy(buf, call->body + call->body_sent, n);
  call->body_sent += n;
  if (call->body_sent == call->body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, const char *value) {
  return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                      NGHTTP2_NV_FLAG_NONE};
}

/* grpc-timeout: at most 8 digits, in the coarsest unit that keeps them. */
static void timeout_text(int64_t ms, char *out, size_t len) {
  if (ms < 100000000)
    snprintf(out, len, "%lldm", (long long)ms);
  else
    snprintf(out, len, "%lldS", (long long)(ms / 1000 < 99999999 ? ms / 1000 : 99999999));
}

/* Copies the request's prefix and message into the call. */
static int set_body(ch_rpc_call *call, const ch_rpc_request *req) {
  call->body_len = CH_GRPC_PREFIX + req->len;
  if (!(call->body = malloc(call->body_len))) return -1;
  ch_grpc_frame_put(call->body, (uint32_t)req->len);
  if (req->len) memcpy(call->body + CH_GRPC_PREFIX, req->message, req->len);
  return 0;
}

static int submit(ch_rpc_call *call, const ch_rpc_request *req) {
  ch_rpc_conn *c = call->conn;
  size_t n = 0, cap = 8 + req->n_md;
  nghttp2_nv *h = calloc(cap, sizeof *h);
  if (!h) return -1;
  char timeout[24];
  h[n++] = nv(":method", "POST");
  h[n++] = nv(":scheme", "http");
  h[n++] = nv(":path", req->path);
  h[n++] = nv(":authority", c->authority);
  h[n++] = nv("te", "trailers");
  h[n++] = nv("content-type", "application/grpc");
  h[n++] = nv("user-agent", c->user_agent);
  if (req->timeout_ms > 0) {
    timeout_text(req->timeout_ms, timeout, sizeof timeout);
    h[n++] = nv("grpc-timeout", timeout);
  }
  for (size_t i = 0; i < req->n_md; i++) h[n++] = nv(req->md[i].name, req->md[i].value);
  nghttp2_data_provider body = {.read_callback = read_body};
  int32_t id = nghttp2_submit_request(c->session, NULL, h, n, &body, call);
  free(h);
  if (id < 0) return -1;
  call->stream_id = id;
  return 0;
}

static void doom(ch_rpc_call *call, grpc_status_code status, const char *why) {
  call->doomed = true;
  call->doom.status = status;
  snprintf(call->doom.message, sizeof call->doom.message, "%s", why);
  rpc_conn_later(call->conn);
}

ch_rpc_call *ch_rpc_call_start(ch_rpc_conn *c, const ch_rpc_request *req,
                               const ch_rpc_call_ops *ops, void *ud, ch_error *err) {
  if (c->closing) {
    ch_fail(err, "%s: the connection is closing", req->path);
    return NULL;
  }
  ch_rpc_call *call = calloc(1, sizeof *call);
  if (!call || set_body(call, req) < 0) {
    if (call) free(call);
    ch_fail(err, "%s: out of memory", req->path);
    return NULL;
  }
  call->conn = c;
  call->ops = *ops;
  call->ud = ud;
  call->unary = req->unary;
  call->timeout_ms = req->timeout_ms;
  uv_timer_init(c->loop, &call->deadline);
  call->deadline.data = call;
  call->next = c->calls;
  if (call->next) call->next->prev = call;
  c->calls = call;
  if (c->lost)
    doom(call, GRPC_STATUS_UNAVAILABLE, c->lost_reason);
  else if (submit(call, req) < 0)
    doom(call, GRPC_STATUS_INTERNAL, "HTTP/2 refused the request");
  else if (req->timeout_ms > 0)
    uv_timer_start(&call->deadline, deadline_cb, (uint64_t)req->timeout_ms, 0);
  rpc_conn_flush(c);
  return call;
}
