/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_stream.c: the relay's streams: the nghttp2 callbacks of both
 * sessions (server session facing the client, client session facing the
 * backend), header copies, the two DATA queues and the flow-control rule of
 * h2relay.h (consume at the source only when the sink's session took the
 * bytes). Everything runs on the relay's loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "h2relay_int.h"

static const h2r_call_ops stream_call_ops;
static int stream_call_forward(h2r_call *call, const uint8_t *body, size_t len);

/* ---- header lists ---- */

static bool hdr_is_connection_specific(const uint8_t *name, size_t len) {
  static const char *const drop[] = {"connection", "keep-alive", "proxy-connection",
                                     "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
    if (strlen(drop[i]) == len && memcmp(drop[i], name, len) == 0) return true;
  return false;
}

static int hdrs_reserve(h2r_pool *p, h2r_hdrs *h, size_t bytes) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    nghttp2_nv *nv = h2r_pool_realloc(p, h->nv, cap * sizeof *nv);
    if (nv) h->nv = nv;
    size_t *off = nv ? h2r_pool_realloc(p, h->off, cap * sizeof *off) : NULL;
    if (!off) return -1;
    h->off = off;
    h->cap = cap;
  }
  if (h->blen + bytes > h->bcap) {
    size_t cap = h->bcap ? h->bcap * 2 : 1024;
    while (cap < h->blen + bytes) cap *= 2;
    uint8_t *buf = h2r_pool_realloc(p, h->buf, cap);
    if (!buf) return -1;
    h->buf = buf;
    h->bcap = cap;
  }
  return 0;
}

static int hdrs_add(h2r_pool *p, h2r_hdrs *h, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen, uint8_t flags) {
  if (hdrs_reserve(p, h, nlen + vlen + 2) != 0) return -1;
  uint8_t *at = h->buf + h->blen;
  memcpy(at, name, nlen);
  at[nlen] = 0;
  memcpy(at + nlen + 1, value, vlen);
  at[nlen + 1 + vlen] = 0;
  h->off[h->n] = h->blen;
  h->nv[h->n++] = (nghttp2_nv){NULL, NULL, nlen, vlen, flags & NGHTTP2_NV_FLAG_NO_INDEX};
  h->blen += nlen + vlen + 2;
  return 0;
}

/* The list as nghttp2 takes it (valid until the next hdrs_add). */
static nghttp2_nv *hdrs_nv(h2r_hdrs *h) {
  for (size_t i = 0; i < h->n; i++) {
    h->nv[i].name = h->buf + h->off[i];
    h->nv[i].value = h->nv[i].name + h->nv[i].namelen + 1;
  }
  return h->nv;
}

static int hdrs_add_str(h2r_pool *p, h2r_hdrs *h, const char *name, const char *value) {
  return hdrs_add(p, h, (const uint8_t *)name, strlen(name), (const uint8_t *)value, strlen(value),
                  NGHTTP2_NV_FLAG_NONE);
}

static void hdrs_clear(h2r_pool *p, h2r_hdrs *h) {
  h2r_pool_free(p, h->nv);
  h2r_pool_free(p, h->off);
  h2r_pool_free(p, h->buf);
  *h = (h2r_hdrs){0};
}

/* ---- gRPC framing ---- */

/* Reads n bytes of a direction's DATA into its framing state. Returns -1 if
 * a message announces more than max bytes (max 0: no bound), with *at set
 * to where that message's prefix began, relative to d (negative: it began
 * in earlier DATA) and *announced to its length. */
int h2r_frames_scan(h2r_frames *f, const uint8_t *d, size_t n, size_t max, long *at,
                    uint32_t *announced) {
  size_t i = 0;
  while (i < n) {
    if (f->left) {
      size_t m = n - i < f->left ? n - i : f->left;
      f->left -= (uint32_t)m;
      i += m;
      continue;
    }
    f->hdr[f->have++] = d[i++];
    if (f->have < 5) continue;
    f->have = 0;
    f->count++;
    uint32_t len = ch_grpc_frame_len(f->hdr);
    if (max && len > max) {
      *at = (long)i - 5;
      *announced = len;
      return -1;
    }
    f->left = len;
  }
  return 0;
}

/* ---- deadlines ---- */

/* grpc-timeout: up to 8 digits and a unit (gRPC over HTTP/2); 0 if bad. */
int h2r_grpc_status_value(const uint8_t *v, size_t len) {
  int code = 0;
  for (size_t i = 0; i < len && i < 4 && v[i] >= '0' && v[i] <= '9'; i++)
    code = code * 10 + (v[i] - '0');
  return code;
}

uint64_t h2r_grpc_timeout_ns(const uint8_t *v, size_t len) {
  if (len < 2 || len > 9) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (v[i] < '0' || v[i] > '9') return 0;
    n = n * 10 + (uint64_t)(v[i] - '0');
  }
  switch (v[len - 1]) {
    case 'H':
      return n * 3600 * 1000000000ull;
    case 'M':
      return n * 60 * 1000000000ull;
    case 'S':
      return n * 1000000000ull;
    case 'm':
      return n * 1000000ull;
    case 'u':
      return n * 1000ull;
    case 'n':
      return n ? n : 1;
    default:
      return 0;
  }
}

/* ---- DATA queues ---- */

/* Queues received DATA: borrowed from the read slab (the bytes stay where
 * the read put them; h2r_chunks_keep copies them if they outlive the read),
 * or copied at once (borrow false: the caller frees its buffer). */
static int half_push(h2r_conn *c, h2r_half *h, const uint8_t *data, size_t len, bool borrow) {
  h2r_chunk *k = h2r_pool_malloc(c->r->pool, sizeof *k + (borrow ? 0 : len));
  if (!k) return -1;
  *k = (h2r_chunk){.len = len, .p = borrow ? data : k->data, .borrowed = borrow};
  if (!borrow) memcpy(k->data, data, len);
  c->borrowed += borrow;
  if (h->tail)
    h->tail->next = k;
  else
    h->head = k;
  h->tail = k;
  h->queued += len;
  return 0;
}

/* A chunk the batch being written refers to is freed once the batch is
 * written (h2relay.c batch_done). */
static void chunk_free(h2r_conn *c, h2r_chunk *k) {
  h2r *r = c->r;
  c->borrowed -= k->borrowed;
  if (r->in_batch && k->batch == r->batch) {
    k->next = r->spent;
    r->spent = k;
    return;
  }
  h2r_pool_free(r->pool, k);
}

/* Frees the queue; returns how many bytes it held that the source still
 * has to consume. */
static size_t half_clear(h2r_conn *c, h2r_half *h) {
  size_t owed = h->credited ? 0 : h->queued;
  for (h2r_chunk *k = h->head, *n; k; k = n) {
    n = k->next;
    chunk_free(c, k);
  }
  h->head = h->tail = NULL;
  h->queued = 0;
  hdrs_clear(c->r->pool, &h->trailers);
  return owed;
}

/* Takes back the last n queued bytes if they are all still in the tail
 * chunk (the start of a message that will not be relayed); returns how
 * many it took. */
static size_t half_trim_tail(h2r_half *h, size_t n) {
  h2r_chunk *k = h->tail;
  if (!k || k->len - k->off < n) return 0;
  k->len -= n;
  h->queued -= n;
  return n;
}

/* Adds `length` queued bytes to the batch being gathered: pieces of at
 * least H2R_REF_MIN are written from their chunk, shorter ones copied. */
static ssize_t half_send(h2r_conn *c, h2r_half *h, size_t length) {
  h2r *r = c->r;
  size_t n = 0;
  while (h->head && n < length) {
    h2r_chunk *k = h->head;
    size_t m = k->len - k->off;
    if (m > length - n) m = length - n;
    bool ref = m >= H2R_REF_MIN;
    if ((ref ? h2r_batch_ref(r, k->p + k->off, m) : h2r_batch_copy(r, k->p + k->off, m)) != 0)
      return -1;
    if (ref) k->batch = r->batch;
    k->off += m;
    n += m;
    if (k->off == k->len) {
      h->head = k->next;
      if (!h->head) h->tail = NULL;
      chunk_free(c, k);
    }
  }
  h->queued -= n;
  return (ssize_t)n;
}

/* Replaces the half's borrowed chunks by owned copies of what is left. */
static int half_keep(h2r_conn *c, h2r_half *h) {
  h2r_chunk *prev = NULL;
  for (h2r_chunk *k = h->head; k; prev = k, k = k->next) {
    if (!k->borrowed) continue;
    size_t len = k->len - k->off;
    h2r_chunk *o = h2r_pool_malloc(c->r->pool, sizeof *o + len);
    if (!o) return -1;
    *o = (h2r_chunk){.next = k->next, .len = len, .p = o->data};
    memcpy(o->data, k->p + k->off, len);
    if (prev)
      prev->next = o;
    else
      h->head = o;
    if (h->tail == k) h->tail = o;
    chunk_free(c, k);
    k = o;
  }
  return 0;
}

/* The data provider body for either direction: tells nghttp2 how many
 * queued bytes the next DATA frame carries (NO_COPY: send_data below adds
 * them to the outgoing batch straight from the queue) and ends with the
 * trailers (if any). */
static ssize_t half_read(h2r_half *h, nghttp2_session *sink, int32_t sink_sid, size_t length,
                         uint32_t *flags) {
  size_t n = h->queued < length ? h->queued : length;
  if (n) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == h->queued && h->end) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (h->trailers.n) {
      if (nghttp2_submit_trailer(sink, sink_sid, hdrs_nv(&h->trailers), h->trailers.n) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
  }
  if (n == 0) {
    h->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static void half_kick(h2r_half *h, nghttp2_session *sink, int32_t sink_sid) {
  if (!h->deferred || !sink || !sink_sid) return;
  h->deferred = false;
  nghttp2_session_resume_data(sink, sink_sid);
}

static nghttp2_session *backend_session(h2r_stream *s) { return s->b && s->b->c ? s->b->s : NULL; }

static ssize_t up_read(nghttp2_session *session, int32_t sid, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *source, void *ud) {
  (void)buf;
  (void)ud;
  h2r_stream *s = source->ptr;
  return half_read(&s->up, session, sid, length, flags);
}

static ssize_t down_read(nghttp2_session *session, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *ud) {
  (void)buf;
  (void)ud;
  h2r_stream *s = source->ptr;
  return half_read(&s->down, session, sid, length, flags);
}

/* Writes one DATA frame that half_read announced: its 9-byte header, then
 * `length` queued bytes, into the batch being gathered (h2relay.c gather);
 * the source gets the credit for them back. The relay never pads (no
 * padding callback), so padlen is 0. */
static int send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *source, void *ud) {
  (void)frame;
  (void)ud;
  h2r_stream *s = source->ptr;
  bool to_client = session == s->c->s;
  h2r_half *h = to_client ? &s->down : &s->up;
  if (h2r_batch_copy(s->c->r, framehd, 9) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  ssize_t n = half_send(s->c, h, length);
  if (n < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  nghttp2_session *src = to_client ? backend_session(s) : s->client_closed ? NULL : s->c->s;
  int32_t src_sid = to_client ? s->bsid : s->csid;
  if (n && src && !h->credited) nghttp2_session_consume(src, src_sid, (size_t)n);
  return (size_t)n == length ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- stream life ---- */

static h2r_stream *stream_new(h2r_conn *c, int32_t csid) {
  h2r_stream *s = h2r_pool_calloc(c->r->pool, 1, sizeof *s);
  if (!s) return NULL;
  s->call.ops = &stream_call_ops;
  s->c = c;
  s->csid = csid;
  h2r_record_start(&s->rec);
  atomic_fetch_add(c->r->live_streams, 1);
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  return s;
}

void h2r_stream_free(h2r_stream *s) {
  h2r_conn *c = s->c;
  if (s->ready) h2r_record_report(&c->r->cfg, &s->rec, s->call.data); /* else never routed */
  atomic_fetch_sub(c->r->live_streams, 1);
  h2r_pool *p = c->r->pool;
  if (s->prev)
    s->prev->next = s->next;
  else
    c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  hdrs_clear(p, &s->req);
  hdrs_clear(p, &s->resp);
  half_clear(c, &s->up);
  half_clear(c, &s->down);
  free(s->hbuf);
  free(s->abuf);
  h2r_record_free(p, &s->rec);
  h2r_pool_free(p, s);
}

/* Drops both DATA queues; the credit still owed for bytes that were never
 * forwarded goes back to each source (connection-level credit too, for a
 * stream its session has closed already). */
static void stream_drop_queues(h2r_stream *s) {
  size_t up = half_clear(s->c, &s->up);
  if (up && !s->c->closing) nghttp2_session_consume(s->c->s, s->csid, up);
  size_t down = half_clear(s->c, &s->down);
  if (down && backend_session(s)) nghttp2_session_consume(s->b->s, s->bsid, down);
}

/* Frees the stream once neither session refers to it; the credit still
 * owed for bytes that were never forwarded goes back to each source. */
void h2r_stream_maybe_free(h2r_stream *s) {
  if (!s->client_closed || s->bopen) return;
  stream_drop_queues(s);
  h2r_stream_free(s);
}

/* Ends the client's stream with a gRPC status of our own: trailers-only if
 * no response headers went out yet, else as trailers after queued DATA. */
void h2r_stream_answer(h2r_stream *s, int grpc_code, const char *msg) {
  if (s->client_closed || s->answered) return;
  s->answered = true;
  s->rec.grpc_status = grpc_code;
  h2r_record_message(s->c->r->pool, &s->rec, (const uint8_t *)msg, strlen(msg));
  char code[16];
  snprintf(code, sizeof code, "%d", grpc_code);
  h2r_hdrs *h = s->resp_sent ? &s->down.trailers : &s->resp;
  h2r_pool *p = s->c->r->pool;
  hdrs_clear(p, h);
  if (!s->resp_sent) {
    hdrs_add_str(p, h, ":status", "200");
    hdrs_add_str(p, h, "content-type", "application/grpc");
  }
  hdrs_add_str(p, h, "grpc-status", code);
  hdrs_add_str(p, h, "grpc-message", msg);
  if (!s->resp_sent) {
    s->resp_sent = true;
    nghttp2_submit_response(s->c->s, s->csid, hdrs_nv(h), h->n, NULL);
    return;
  }
  s->down.end = true;
  half_kick(&s->down, s->c->s, s->csid);
}

/* Resets the backend's half of the stream (CANCEL), if it is open. */
static void stream_cancel_backend(h2r_stream *s) {
  if (s->bopen && backend_session(s))
    nghttp2_submit_rst_stream(s->b->s, NGHTTP2_FLAG_NONE, s->bsid, NGHTTP2_CANCEL);
}

/* The relay ends the call itself: the client gets `msg`, the backend a
 * reset. */
static void stream_fail(h2r_stream *s, int grpc_code, const char *msg) {
  h2r_stream_answer(s, grpc_code, msg);
  stream_cancel_backend(s);
}

/* Called once a read's flush is over: DATA still queued in the read slab
 * is copied out of it. A stream whose copy fails is ended (the client gets
 * RESOURCE_EXHAUSTED, the backend a reset) with its queues dropped. */
void h2r_chunks_keep(h2r_conn *c) {
  for (h2r_stream *s = c->streams, *n; s && c->borrowed; s = n) {
    n = s->next;
    if (half_keep(c, &s->up) == 0 && half_keep(c, &s->down) == 0) continue;
    stream_drop_queues(s);
    stream_fail(s, 8, "crihookd: out of memory queueing DATA");
  }
}

/* Submits the request on the backend once its headers are complete (and,
 * for a held body, once the body is whole). */
void h2r_stream_open_backend(h2r_stream *s) {
  if (!s->ready || s->bsid || s->answered || s->client_closed) return;
  if (s->held && (!s->up.end || s->waiting || s->hbuf)) return; /* the owner decides first */
  h2r_backend *b = h2r_backend_get(s->c, s->rec.route);
  if (!b) {
    h2r_stream_answer(s, 14, "backend unavailable");
    return;
  }
  if (!b->up) return; /* opened when the connection is up */
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = up_read};
  bool bodyless = s->up.end && !s->up.queued && !s->up.trailers.n;
  int32_t id =
      nghttp2_submit_request(b->s, NULL, hdrs_nv(&s->req), s->req.n, bodyless ? NULL : &prd, s);
  if (id < 0) {
    h2r_stream_answer(s, 14, "backend refused the stream");
    return;
  }
  s->b = b;
  s->bsid = id;
  s->bopen = true;
}

/* Appends to a held buffer (request or answer) within max_held_bytes;
 * -1 if it does not fit or memory runs out. */
static int hold_append(const h2r *r, uint8_t **buf, size_t *len, size_t *cap, const uint8_t *data,
                       size_t n) {
  if (*len + n > r->cfg.max_held_bytes) return -1;
  if (*len + n > *cap) {
    size_t grown = *cap ? *cap : 4096;
    while (grown < *len + n) grown *= 2;
    uint8_t *p = realloc(*buf, grown);
    if (!p) return -1;
    *buf = p;
    *cap = grown;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  return 0;
}

static void held_append(h2r_stream *s, const uint8_t *data, size_t len) {
  nghttp2_session_consume(s->c->s, s->csid, len);
  if (s->held_failed) return;
  if (hold_append(s->c->r, &s->hbuf, &s->hlen, &s->hcap, data, len) != 0) {
    s->held_failed = true;
    h2r_stream_answer(s, 8, "request larger than the relay holds");
  }
}

/* The held request is whole: the owner decides (h2r_call_forward or
 * h2r_call_refuse); without an on_request it goes as it is. */
static void held_complete(h2r_stream *s) {
  h2r_config *cfg = &s->c->r->cfg;
  if (s->held_failed) return;
  s->waiting = true;
  if (cfg->on_request)
    cfg->on_request(cfg->ud, &s->call, s->hbuf, s->hlen);
  else
    stream_call_forward(&s->call, NULL, 0);
}

/* Flushes after an owner's decision made outside a read's callbacks. */
static void call_flush(h2r_stream *s) {
  h2r_conn *c = s->c;
  if (c->r->in_recv) return;
  h2r_flush(c);
  if (!c->closing) h2r_chunks_keep(c);
}

static int stream_call_forward(h2r_call *call, const uint8_t *body, size_t len) {
  h2r_stream *s = (h2r_stream *)call;
  if (!s->waiting || s->answered || s->client_closed) return -1;
  s->waiting = false;
  if (!body) {
    body = s->hbuf;
    len = s->hlen;
  }
  s->up.credited = true;
  int rc = len ? half_push(s->c, &s->up, body, len, false) : 0;
  free(s->hbuf);
  s->hbuf = NULL;
  s->hlen = s->hcap = 0;
  if (rc != 0)
    h2r_stream_answer(s, 8, "out of memory holding the request");
  else
    h2r_stream_open_backend(s);
  call_flush(s);
  return rc;
}

static void stream_call_refuse(h2r_call *call, int grpc_status, const char *message) {
  h2r_stream *s = (h2r_stream *)call;
  if (!s->waiting) return;
  s->waiting = false;
  h2r_stream_answer(s, grpc_status, message ? message : "");
  call_flush(s);
}

static const h2r_call_ops stream_call_ops = {.forward = stream_call_forward,
                                             .refuse = stream_call_refuse};

/* ---- server session (client side) callbacks ---- */

static int c_begin_headers(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2r_stream *s = stream_new(ud, f->hd.stream_id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(session, f->hd.stream_id, s);
  return 0;
}

static int c_header(nghttp2_session *session, const nghttp2_frame *f, const uint8_t *name,
                    size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
  if (!s || f->hd.type != NGHTTP2_HEADERS || hdr_is_connection_specific(name, nlen)) return 0;
  bool request = f->headers.cat == NGHTTP2_HCAT_REQUEST;
  h2r_hdrs *h = request ? &s->req : &s->up.trailers;
  /* not from trailers: the stream is routed and reported by the request's
   * own block (:path, grpc-timeout, the self-probe mark) */
  if (request) h2r_record_request_field(s->c->r, &s->rec, &s->call, name, nlen, value, vlen);
  if (hdrs_add(s->c->r->pool, h, name, nlen, value, vlen, flags) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

/* With max_msg_size set the relay reads the gRPC framing: a request that
 * ends inside a message is answered INTERNAL and never completed at the
 * backend (its stream there is reset, so no handler runs on half a
 * message). */
static bool c_request_truncated(h2r_stream *s) {
  const h2r_frames *f = &s->up.frames;
  if (!s->c->r->cfg.max_msg_size || (!f->left && !f->have) || s->answered) return false;
  stream_fail(s, 13, "crihookd: the request ended inside a message (truncated)");
  return true;
}

static void c_request_end(h2r_stream *s) {
  if (c_request_truncated(s)) return;
  s->up.end = true;
  if (s->held) {
    held_complete(s);
    return;
  }
  half_kick(&s->up, backend_session(s), s->bsid);
  h2r_stream_open_backend(s);
}

static int c_frame_recv(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
  if (!s) return 0;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    h2r_route_out out = h2r_record_route(&s->c->r->cfg, &s->rec);
    s->streaming = out.streaming;
    s->held = s->intercept = out.intercept;
    s->ready = true;
    if (!end) h2r_stream_open_backend(s);
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end) c_request_end(s);
  return 0;
}

static int c_data(nghttp2_session *session, uint8_t flags, int32_t sid, const uint8_t *data,
                  size_t len, void *ud) {
  (void)flags;
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, sid);
  if (s && s->held) {
    held_append(s, data, len);
    return 0;
  }
  if (!s || s->answered) { /* nowhere to go: drop, give the credit back */
    nghttp2_session_consume(session, sid, len);
    return 0;
  }
  size_t max = s->c->r->cfg.max_msg_size;
  long at;
  uint32_t announced;
  if (h2r_frames_scan(&s->up.frames, data, len, max, &at, &announced) != 0) {
    nghttp2_session_consume(session, sid, len);
    char msg[128];
    snprintf(msg, sizeof msg, "crihookd: request message larger than max (%u vs. %zu bytes)",
             announced, max);
    stream_fail(s, 8, msg);
    return 0;
  }
  if (half_push(s->c, &s->up, data, len, true) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  half_kick(&s->up, backend_session(s), s->bsid);
  return 0;
}

static int c_stream_close(nghttp2_session *session, int32_t sid, uint32_t code, void *ud) {
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, sid);
  if (!s) return 0;
  s->client_closed = true;
  if (code != NGHTTP2_NO_ERROR && !s->answered) s->rec.client_reset = true;
  if (s->bopen && backend_session(s))
    nghttp2_submit_rst_stream(s->b->s, NGHTTP2_FLAG_NONE, s->bsid, code);
  h2r_stream_maybe_free(s);
  return 0;
}

/* ---- client session (backend side) callbacks ---- */

static int b_header(nghttp2_session *session, const nghttp2_frame *f, const uint8_t *name,
                    size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
  if (!s || f->hd.type != NGHTTP2_HEADERS || s->answered || hdr_is_connection_specific(name, nlen))
    return 0;
  h2r_hdrs *h = f->headers.cat == NGHTTP2_HCAT_RESPONSE ? &s->resp : &s->down.trailers;
  if (hdrs_add(s->c->r->pool, h, name, nlen, value, vlen, flags) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  h2r_record_answer_field(s->c->r->pool, &s->rec, name, nlen, value, vlen);
  return 0;
}

/* An intercepted call's answer is whole: the owner sees it, then it goes
 * to the client as the backend sent it (headers, DATA, trailers). */
static void answer_release(h2r_stream *s) {
  h2r_config *cfg = &s->c->r->cfg;
  s->answer_held = false;
  if (s->client_closed || s->answered) return; /* ended meanwhile: not an answer */
  h2r_answer a = h2r_record_answer(&s->rec, s->abuf, s->alen);
  if (cfg->on_answer) cfg->on_answer(cfg->ud, &s->call, &a);
  if (s->client_closed || s->answered) return;
  s->down.credited = true; /* consumed as it arrived */
  if (s->alen && half_push(s->c, &s->down, s->abuf, s->alen, false) != 0) {
    stream_fail(s, 8, "crihookd: out of memory relaying the answer");
    return;
  }
  free(s->abuf);
  s->abuf = NULL;
  s->alen = s->acap = 0;
  s->resp_sent = true;
  s->answered = true;
  s->down.end = true;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = down_read};
  bool bodyless = s->answer_ended && !s->down.queued && !s->down.trailers.n;
  nghttp2_submit_response(s->c->s, s->csid, hdrs_nv(&s->resp), s->resp.n, bodyless ? NULL : &prd);
}

/* Relays the backend's response HEADERS: with END_STREAM they stay a
 * trailers-only answer, else the DATA provider follows. An intercepted
 * call's are held with its answer (answer_release). */
static void b_response(h2r_stream *s, bool end) {
  if (s->client_closed || s->answered || s->resp_sent || s->answer_held) return;
  /* An answer that comes after the call's deadline is not relayed as if
   * it were in time (as a gRPC server's deadline would not let it). */
  if (s->call.deadline_ns && uv_hrtime() > s->call.deadline_ns) {
    h2r_stream_answer(s, 4, "Deadline Exceeded");
    if (!end) stream_cancel_backend(s);
    return;
  }
  if (s->intercept) {
    s->answer_held = true;
    s->answer_ended = end;
    if (end) answer_release(s);
    return;
  }
  s->resp_sent = true;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = down_read};
  if (end) s->answered = true;
  nghttp2_submit_response(s->c->s, s->csid, hdrs_nv(&s->resp), s->resp.n, end ? NULL : &prd);
}

static int b_frame_recv(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
  h2r_backend *b = ud;
  if (!b->greeted && f->hd.type == NGHTTP2_SETTINGS) h2r_backend_greeted(b);
  if (f->hd.type == NGHTTP2_GOAWAY) h2r_backend_retire(b);
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, f->hd.stream_id);
  if (!s) return 0;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    b_response(s, end);
    return 0;
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end && s->answer_held) {
    answer_release(s);
    return 0;
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end && !s->answered) {
    s->down.end = true;
    s->answered = true;
    half_kick(&s->down, s->c->s, s->csid);
  }
  return 0;
}

/* An answer message over max_msg_size: the complete messages before it
 * still go to the client (the part of its prefix still queued is taken
 * back), then RESOURCE_EXHAUSTED; the backend's stream is reset. */
static void b_answer_too_big(h2r_stream *s, nghttp2_session *session, const uint8_t *data,
                             size_t len, long at, uint32_t announced) {
  size_t keep = at > 0 ? (size_t)at : 0;
  if (keep && half_push(s->c, &s->down, data, keep, true) != 0) keep = 0;
  size_t back = at < 0 ? half_trim_tail(&s->down, (size_t)-at) : 0;
  nghttp2_session_consume(session, s->bsid, len - keep + back);
  char msg[128];
  snprintf(msg, sizeof msg, "crihookd: answer message larger than max (%u vs. %zu bytes)",
           announced, s->c->r->cfg.max_msg_size);
  stream_fail(s, 8, msg);
}

static int b_data(nghttp2_session *session, uint8_t flags, int32_t sid, const uint8_t *data,
                  size_t len, void *ud) {
  (void)flags;
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, sid);
  if (!s || s->client_closed || s->answered) {
    nghttp2_session_consume(session, sid, len);
    return 0;
  }
  size_t max = s->c->r->cfg.max_msg_size;
  long at;
  uint32_t announced;
  if (h2r_frames_scan(&s->down.frames, data, len, max, &at, &announced) != 0) {
    b_answer_too_big(s, session, data, len, at, announced);
    return 0;
  }
  if (s->answer_held) { /* an intercepted call's: whole before the client sees it */
    nghttp2_session_consume(session, sid, len);
    if (hold_append(s->c->r, &s->abuf, &s->alen, &s->acap, data, len) != 0)
      stream_fail(s, 8, "crihookd: answer larger than the relay holds");
    return 0;
  }
  if (half_push(s->c, &s->down, data, len, true) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  half_kick(&s->down, s->c->s, s->csid);
  return 0;
}

static int b_stream_close(nghttp2_session *session, int32_t sid, uint32_t code, void *ud) {
  (void)ud;
  h2r_stream *s = nghttp2_session_get_stream_user_data(session, sid);
  if (!s) return 0;
  s->bopen = false;
  if (code != NGHTTP2_NO_ERROR && !s->client_closed && !s->answered)
    nghttp2_submit_rst_stream(s->c->s, NGHTTP2_FLAG_NONE, s->csid, code);
  else if (!s->client_closed && !s->answered) /* closed without an answer */
    h2r_stream_answer(s, 14, "backend closed the stream");
  h2r_stream_maybe_free(s);
  return 0;
}

/* A stream is ended by the drain if it is known to stream, or has relayed
 * two answer messages without ending (one proves nothing: a unary answer
 * is one message right before the status). */
void h2r_stream_end_for_drain(h2r_stream *s, const char *msg) {
  if (s->answered || s->client_closed || s->ended_by_drain) return;
  if (!s->streaming && s->down.frames.count < 2) return;
  s->ended_by_drain = true;
  stream_fail(s, 14, msg);
}

int h2r_callbacks_new(h2r *r) {
  nghttp2_session_callbacks *cs, *bs;
  if (nghttp2_session_callbacks_new(&cs) != 0) return -1;
  if (nghttp2_session_callbacks_new(&bs) != 0) {
    nghttp2_session_callbacks_del(cs);
    return -1;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cs, c_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cs, c_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cs, c_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cs, c_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cs, c_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(cs, send_data);
  nghttp2_session_callbacks_set_send_data_callback(bs, send_data);
  nghttp2_session_callbacks_set_on_header_callback(bs, b_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(bs, b_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(bs, b_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(bs, b_stream_close);
  r->server_cbs = cs;
  r->client_cbs = bs;
  return 0;
}
