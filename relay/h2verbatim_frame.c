/* SPDX-License-Identifier: Apache-2.0 */
/* h2verbatim_frame.c: the verbatim engine's frames and streams: each
 * direction read frame by frame, each frame's fate decided from its header
 * (h2verbatim.c's top comment says how), the header blocks decoded, the
 * streams kept and reported, and the hooked calls held for their owner
 * (h2verbatim_int.h). */
#include <stdio.h>

#include "h2verbatim_int.h"
#include "percent.h"

/* ---- streams ---- */

static const h2r_call_ops vcall_ops;
static void down_end(h2v_stream *s);

/* The last stream found or made is looked at first: a call's frames come
 * one stream at a time more often than not (the hash costs ~70
 * instructions, five times a call). */
static h2v_stream *stream_find(h2v_conn *v, int32_t sid) {
  if (v->hot && v->hot->sid == sid) return v->hot;
  h2v_stream *s = NULL;
  HASH_FIND(hh, v->streams, &sid, sizeof sid, s);
  if (s) v->hot = s;
  return s;
}

static h2v_stream *stream_new(h2v_conn *v, int32_t sid) {
  h2v_stream *s = h2r_pool_calloc(v->r->pool, 1, sizeof *s);
  if (!s) return NULL;
  s->call.ops = &vcall_ops;
  s->v = v;
  s->sid = sid;
  h2r_record_start(&s->rec);
  HASH_ADD(hh, v->streams, sid, sizeof s->sid, s);
  v->hot = s;
  v->nstreams++;
  atomic_fetch_add(v->r->live_streams, 1);
  return s;
}

/* Reports the stream and forgets it; a body it will never send stops
 * being reserved. */
void h2v_stream_free(h2v_stream *s) {
  h2v_conn *v = s->v;
  if (s->routed) h2r_record_report(&v->r->cfg, &s->rec, s->call.data); /* else never routed */
  for (int d = 0; d < 2; d++) {
    if (v->dir[d].s == s) v->dir[d].s = NULL;
    if (v->dir[d].block_s == s) v->dir[d].block_s = NULL;
  }
  if (s->pend.len > s->pend_off) v->reserve -= (int64_t)(s->pend.len - s->pend_off);
  HASH_DEL(v->streams, s);
  if (v->hot == s) v->hot = NULL;
  v->nstreams--;
  atomic_fetch_sub(v->r->live_streams, 1);
  vbuf_free(&s->body);
  vbuf_free(&s->held);
  vbuf_free(&s->adata);
  vbuf_free(&s->pend);
  h2r_record_free(v->r->pool, &s->rec);
  h2r_pool_free(v->r->pool, s);
}

static void stream_maybe_free(h2v_stream *s) {
  if (s->up_end && s->down_end) h2v_stream_free(s);
}

/* ---- the relay's own header blocks: literals without indexing ---- */

static void hpack_int(vbuf *b, uint8_t first, int prefix_bits, size_t n) {
  size_t max = ((size_t)1 << prefix_bits) - 1;
  uint8_t c;
  if (n < max) {
    c = (uint8_t)(first | n);
    vbuf_add(b, &c, 1);
    return;
  }
  c = (uint8_t)(first | max);
  vbuf_add(b, &c, 1);
  for (n -= max; n >= 128; n >>= 7) {
    c = (uint8_t)(0x80 | (n & 0x7f));
    vbuf_add(b, &c, 1);
  }
  c = (uint8_t)n;
  vbuf_add(b, &c, 1);
}

static void hpack_literal(vbuf *b, const char *name, const char *value, size_t vlen) {
  hpack_int(b, 0x00, 4, 0); /* literal without indexing, new name */
  hpack_int(b, 0x00, 7, strlen(name));
  vbuf_add(b, name, strlen(name));
  hpack_int(b, 0x00, 7, vlen);
  vbuf_add(b, value, vlen);
}

/* Ends the client's stream with a status of the relay's own (trailers-only
 * if no response headers went out), resets the backend's, and forgets the
 * stream. */
void h2v_self_answer(h2v_stream *s, int code, const char *msg) {
  h2v_conn *v = s->v;
  if (s->down_end) return;
  s->rec.grpc_status = code;
  char text[MAX_MESSAGE_TEXT], num[16];
  size_t tlen = ch_percent_encode(msg ? msg : "", text, sizeof text, CH_PCT_GRPC_MESSAGE);
  h2r_record_message(v->r->pool, &s->rec, (const uint8_t *)text, tlen);
  snprintf(num, sizeof num, "%d", code);
  vbuf b = {0};
  if (!s->resp_started) {
    uint8_t status200 = 0x88; /* :status 200, static table */
    vbuf_add(&b, &status200, 1);
    hpack_literal(&b, "content-type", "application/grpc", 16);
  }
  hpack_literal(&b, "grpc-status", num, strlen(num));
  hpack_literal(&b, "grpc-message", text, tlen);
  if (b.p)
    h2v_emit_frame(&v->out[DOWN], T_HEADERS, F_END_STREAM | F_END_HEADERS, s->sid, b.p, b.len);
  vbuf_free(&b);
  if (!s->up_end) h2v_emit_u32(&v->out[DOWN], T_RST, s->sid, NGHTTP2_NO_ERROR);
  if (!v->lost) h2v_emit_u32(&v->out[UP], T_RST, s->sid, NGHTTP2_CANCEL);
  s->up_end = s->down_end = true;
  h2v_stream_free(s);
}

/* ---- an intercepted stream ---- */

/* Sends a forwarded body as far as the backend's windows allow. */
static void send_pending(h2v_stream *s) {
  h2v_conn *v = s->v;
  while (!s->sent_end) {
    size_t left = s->pend.len - s->pend_off;
    int64_t n = (int64_t)(left < OWN_FRAME ? left : OWN_FRAME);
    if (n > v->ab) n = v->ab;
    if (n > s->bwin) n = s->bwin;
    if (left && n <= 0) return; /* the backend's credit comes back (backend_window) */
    if (!left) n = 0;           /* an empty END_STREAM frame needs no credit */
    bool last = (size_t)n == left;
    h2v_emit_frame(&v->out[UP], T_DATA, last ? F_END_STREAM : 0, s->sid, s->pend.p + s->pend_off,
                   (size_t)n);
    s->pend_off += (size_t)n;
    v->ab -= n;
    s->bwin -= n;
    v->reserve -= n;
    s->sent_end = last;
  }
  vbuf_free(&s->pend);
  s->pend_off = 0;
}

static int vcall_forward(h2r_call *call, const uint8_t *body, size_t len) {
  h2v_stream *s = (h2v_stream *)call;
  if (!s->waiting) return -1;
  s->waiting = false;
  s->forwarded = true;
  h2v_conn *v = s->v;
  if (s->early) { /* answered already: the body has nowhere to go */
    vbuf_free(&s->body);
    down_end(s);
    if (!v->in_read) h2v_finish(v);
    return 0;
  }
  if (!body) {
    s->pend = s->body;
    s->body = (vbuf){0};
  } else if (vbuf_add(&s->pend, body, len) != 0) {
    h2v_self_answer(s, 8, "crihookd: out of memory holding the request");
    if (!v->in_read) h2v_finish(v);
    return -1;
  }
  vbuf_free(&s->body);
  s->v->reserve += (int64_t)s->pend.len;
  send_pending(s);
  if (!v->in_read) h2v_finish(v); /* from the owner's own callback: write now */
  return 0;
}

static void vcall_refuse(h2r_call *call, int grpc_status, const char *message) {
  h2v_stream *s = (h2v_stream *)call;
  if (!s->waiting) return;
  s->waiting = false;
  h2v_conn *v = s->v;
  h2v_self_answer(s, grpc_status, message ? message : "");
  if (!v->in_read) h2v_finish(v);
}

static const h2r_call_ops vcall_ops = {.forward = vcall_forward, .refuse = vcall_refuse};

/* The request is whole: the owner decides. */
static void request_whole(h2v_stream *s) {
  const h2r_config *cfg = &s->v->r->cfg;
  if (s->held_failed) return;
  s->waiting = true;
  if (cfg->on_request)
    cfg->on_request(cfg->ud, &s->call, s->body.p ? s->body.p : (const uint8_t *)"", s->body.len);
  else
    vcall_forward(&s->call, NULL, 0);
}

/* The intercepted answer is whole: the owner sees it (if it forwarded the
 * call: an answer that came first is not an answer to it), then the client
 * gets its last header block, so the call ends for the client only once
 * the owner has recorded it. */
static void answer_release(h2v_stream *s) {
  const h2r_config *cfg = &s->v->r->cfg;
  if (s->forwarded && cfg->on_answer) {
    h2r_answer a = h2r_record_answer(&s->rec, s->adata.p, s->adata.len);
    cfg->on_answer(cfg->ud, &s->call, &a);
  }
  h2v_out_emit(&s->v->out[DOWN], s->held.p, s->held.len);
  vbuf_free(&s->held);
  vbuf_free(&s->adata);
}

/* ---- request and answer headers ---- */

static void request_header(void *ud, const hpack_field *nv) {
  h2v_stream *s = ud;
  h2r_record_request_field(s->v->r, &s->rec, &s->call, nv->name, nv->namelen, nv->value,
                           nv->valuelen);
}

static void answer_header(void *ud, const hpack_field *nv) {
  h2v_stream *s = ud;
  h2r_record_answer_field(s->v->r->pool, &s->rec, nv->name, nv->namelen, nv->value, nv->valuelen);
}

/* Decodes the header block read (every block is, to keep the table in
 * step); s, if not NULL, sees each field. */
static int inflate_block(vdir *x, h2v_stream *s, hpack_field_cb seen) {
  int rc = hpack_decode_block(&x->hpack, x->block.p ? x->block.p : (const uint8_t *)"",
                              x->block.len, s ? seen : NULL, s);
  x->block.len = 0;
  return rc;
}

static void route(h2v_stream *s) {
  const h2r_config *cfg = &s->v->r->cfg;
  h2r_route_out out = h2r_record_route(cfg, &s->rec);
  s->streaming = out.streaming;
  s->intercept = out.intercept;
  s->bwin = s->v->binit;
  s->routed = true;
}

/* The client's half of s ended (END_STREAM). */
static void up_end(h2v_stream *s) {
  s->up_end = true;
  if (s->down_end) { /* answered before the request ended */
    h2v_stream_free(s);
    return;
  }
  if (s->intercept && !s->forwarded && !s->waiting) request_whole(s);
  /* the owner may have refused and freed it: only the caller's pointer is stale */
}

/* The backend ended its answer. An intercepted call's waits for the owner
 * if it came first (a backend that answers a call it does not know at its
 * headers): a refusal replaces it, a forward releases it. */
static void down_end(h2v_stream *s) {
  if (s->intercept && !s->forwarded) {
    s->early = true;
    return;
  }
  s->down_end = true;
  if (s->intercept) answer_release(s);
  stream_maybe_free(s);
}

/* ---- one direction's frames ---- */

/* The request's last DATA frame, whole in the read (`p`): does the request
 * end inside a message? Then it is not passed: a gRPC server would answer
 * it INTERNAL, and the relay does so itself, as its terminating engine
 * does, so no backend ever sees half a message end a call. (A last frame
 * split over two reads is passed: the backend judges it.) */
static bool ends_truncated(const vdir *x, const h2v_stream *s, const uint8_t *p) {
  uint32_t front = 0, pad = 0;
  if (x->flags & F_PADDED) {
    front = 1;
    pad = x->len ? p[0] : 0;
    if (front + pad > x->len) return false; /* malformed: the backend objects */
  }
  h2r_frames f = s->fup;
  long at;
  uint32_t announced;
  h2r_frames_scan(&f, p + front, x->len - front - pad, 0, &at, &announced);
  return f.left || f.have;
}

static int decide_up(h2v_conn *v, vdir *x, const uint8_t *p, size_t n) {
  h2v_stream *s;
  switch (x->type) {
    case T_DATA:
      if ((int64_t)x->len > v->cv) { /* past the credit it was given */
        x->err = NGHTTP2_FLOW_CONTROL_ERROR;
        return A_ERROR;
      }
      s = x->s = stream_find(v, x->sid);
      if (s && s->intercept && !s->forwarded && !s->waiting) {
        v->cv -= x->len;
        return A_EAT;
      }
      if (!s || s->intercept) { /* nowhere to go: its credit comes back */
        v->cv -= x->len;
        return A_DROP;
      }
      if ((int64_t)x->len > v->ab) return A_STALL;
      if ((x->flags & F_END_STREAM) && v->r->cfg.max_msg_size && n >= x->len &&
          ends_truncated(x, s, p)) {
        v->cv -= x->len;
        s->doom_code = 13;
        snprintf(s->doom_msg, sizeof s->doom_msg,
                 "crihookd: the request ended inside a message (truncated)");
        return A_DROP;
      }
      v->cv -= x->len;
      v->ab -= x->len;
      return A_PASS;
    case T_HEADERS:
      x->block_sid = x->sid;
      x->block_new = x->sid > v->last_sid && (x->sid & 1);
      x->block_refuse = false;
      x->block_end_stream = x->flags & F_END_STREAM;
      x->block_act = A_PASS; /* the client's blocks share its table: always in order */
      if (x->block_new) {
        v->last_sid = x->sid;
        s = v->draining || v->nstreams >= H2R_MAX_STREAMS ? NULL : stream_new(v, x->sid);
        x->block_refuse = !s;
      } else {
        s = stream_find(v, x->sid);
      }
      x->block_s = x->s = s;
      return A_PASS;
    case T_CONT:
      x->s = x->block_s;
      return x->block_act;
    case T_SETTINGS:
      return x->flags & F_ACK ? A_PASS : A_CTL;
    default: /* WINDOW_UPDATE, RST_STREAM, PING, PRIORITY, GOAWAY, others */
      x->s = x->type == T_RST ? stream_find(v, x->sid) : NULL;
      return A_PASS;
  }
}

static int decide_down(h2v_conn *v, vdir *x) {
  h2v_stream *s;
  switch (x->type) {
    case T_DATA:
      s = x->s = stream_find(v, x->sid);
      if (!s) {
        v->owe_backend += x->len;
        return A_DROP;
      }
      return A_PASS; /* an intercepted answer's too: data_bytes keeps a copy */
    case T_HEADERS:
      s = x->s = x->block_s = stream_find(v, x->sid);
      x->block_sid = x->sid;
      x->block_end_stream = x->flags & F_END_STREAM;
      /* an intercepted answer's ending block waits for the owner (answer_release) */
      x->block_act = !s ? A_DROP : s->intercept && x->block_end_stream ? A_HOLD : A_PASS;
      if (s && !s->intercept && !s->resp_started && s->call.deadline_ns &&
          uv_hrtime() > s->call.deadline_ns) {
        /* an answer after the deadline is not relayed as if in time */
        s->doom_code = 4;
        snprintf(s->doom_msg, sizeof s->doom_msg, "Deadline Exceeded");
        x->block_act = A_DROP;
      }
      if (s && x->block_act == A_PASS) s->resp_started = true;
      return x->block_act;
    case T_CONT:
      x->s = x->block_s;
      return x->block_s || x->block_act == A_PASS ? x->block_act : A_DROP;
    case T_SETTINGS:
      return x->flags & F_ACK ? A_PASS : A_CTL;
    case T_WU:
    case T_GOAWAY:
      return A_CTL;
    case T_RST:
      s = x->s = stream_find(v, x->sid);
      if (s && s->early) { /* its answer is whole with the relay: only cleanup */
        x->s = NULL;
        return A_DROP;
      }
      return s ? A_PASS : A_DROP;
    default: /* PING, PRIORITY, others */
      return A_PASS;
  }
}

static void frame_begin(h2v_conn *v, int d) {
  vdir *x = &v->dir[d];
  x->len = (uint32_t)x->hd[0] << 16 | (uint32_t)x->hd[1] << 8 | x->hd[2];
  x->type = x->hd[3];
  x->flags = x->hd[4];
  x->sid = (int32_t)(get32(x->hd + 5) & 0x7fffffffu);
  x->pos = 0;
  x->front = 0;
  x->pad = 0;
  x->pad_known = true;
  x->s = NULL;
  if ((x->type == T_DATA || x->type == T_HEADERS) && (x->flags & F_PADDED)) {
    x->front = 1;
    x->pad_known = false;
  }
  if (x->type == T_HEADERS && (x->flags & F_PRIORITY)) x->front += 5;
}

/* The bytes of [pos, pos + n) that are the frame's data or fragment. */
static void frame_region(const vdir *x, const uint8_t *p, size_t n, const uint8_t **out,
                         size_t *outn) {
  size_t lo = x->pos, hi = x->pos + n, end = x->len - x->pad;
  if (lo < x->front) lo = x->front;
  if (hi > end) hi = end;
  *out = p + (lo - x->pos);
  *outn = hi > lo ? hi - lo : 0;
}

static void message_too_big(h2v_stream *s, int d, uint32_t announced) {
  s->doom_code = 8;
  snprintf(s->doom_msg, sizeof s->doom_msg,
           "crihookd: %s message larger than max (%u vs. %zu bytes)",
           d == UP ? "request" : "answer", announced, s->v->r->cfg.max_msg_size);
}

static void data_bytes(h2v_conn *v, int d, h2v_stream *s, const uint8_t *p, size_t n) {
  vdir *x = &v->dir[d];
  size_t max = v->r->cfg.max_msg_size;
  long at;
  uint32_t announced;
  if (x->act == A_EAT) {
    if (s->held_failed) return;
    if (s->body.len + n > v->r->cfg.max_held_bytes || vbuf_add(&s->body, p, n) != 0) {
      s->held_failed = true;
      s->doom_code = 8;
      snprintf(s->doom_msg, sizeof s->doom_msg, "request larger than the relay holds");
    }
    return;
  }
  if (d == DOWN && s->intercept && !s->doom_code &&
      (s->adata.len + n > v->r->cfg.max_held_bytes || vbuf_add(&s->adata, p, n) != 0)) {
    s->doom_code = 8;
    snprintf(s->doom_msg, sizeof s->doom_msg, "crihookd: answer larger than the relay holds");
    return;
  }
  h2r_frames *f = d == UP ? &s->fup : &s->fdown;
  if (!s->doom_code && h2r_frames_scan(f, p, n, max, &at, &announced) != 0)
    message_too_big(s, d, announced);
}

static void frame_payload(h2v_conn *v, int d, const uint8_t *p, size_t n) {
  vdir *x = &v->dir[d];
  if (!x->pad_known && n) {
    x->pad = p[0];
    x->pad_known = true;
    if (x->pad + x->front > x->len) x->pad = x->len - x->front; /* the peer will object */
  }
  switch (x->act) {
    case A_PASS:
      h2v_out_ref(&v->out[d], p, n);
      break;
    case A_HOLD:
      if (x->s && !x->s->doom_code) vbuf_add(&x->s->held, p, n);
      break;
    case A_CTL:
      if (x->ctl.len + n > CTL_MAX || vbuf_add(&x->ctl, p, n) != 0)
        h2v_protocol_error(v, d, NGHTTP2_FRAME_SIZE_ERROR);
      break;
    default:
      break;
  }
  const uint8_t *q;
  size_t m;
  frame_region(x, p, n, &q, &m);
  if (m && x->type == T_DATA && x->s) data_bytes(v, d, x->s, q, m);
  if (m && (x->type == T_HEADERS || x->type == T_CONT)) {
    if (x->block.len + m > H2R_MAX_HEADER_BLOCK || vbuf_add(&x->block, q, m) != 0)
      h2v_protocol_error(v, d, NGHTTP2_COMPRESSION_ERROR); /* a block not decoded */
  }
  x->pos += (uint32_t)n;
}

/* ---- control frames ---- */

/* The client's SETTINGS, for the backend: HEADER_TABLE_SIZE 0 (top of the
 * file). The backend's, for the client: at most H2R_MAX_STREAMS streams. */
static void settings_pass(h2v_conn *v, int d) {
  vdir *x = &v->dir[d];
  vbuf out = {0};
  bool has_streams = false;
  for (size_t i = 0; i + 6 <= x->ctl.len; i += 6) {
    uint8_t e[6];
    memcpy(e, x->ctl.p + i, 6);
    uint16_t id = (uint16_t)(e[0] << 8 | e[1]);
    uint32_t val = get32(e + 2);
    if (d == UP && id == S_HEADER_TABLE_SIZE) continue;
    if (d == DOWN && id == S_MAX_CONCURRENT_STREAMS) {
      has_streams = true;
      if (val > H2R_MAX_STREAMS) put32(e + 2, H2R_MAX_STREAMS);
    }
    if (d == DOWN && id == S_INITIAL_WINDOW_SIZE && val <= 0x7fffffffu) {
      int64_t delta = (int64_t)val - v->binit;
      v->binit = val;
      for (h2v_stream *s = v->streams; s; s = s->hh.next) s->bwin += delta;
    }
    if (d == DOWN && id == S_HEADER_TABLE_SIZE) {
      v->table_pending = val;
      v->has_table_pending = true;
    }
    vbuf_add(&out, e, 6);
  }
  uint8_t e[6] = {0};
  if (d == UP) {
    e[1] = S_HEADER_TABLE_SIZE;
    vbuf_add(&out, e, 6);
  } else if (!has_streams && !v->settings_seen) {
    e[1] = S_MAX_CONCURRENT_STREAMS;
    put32(e + 2, H2R_MAX_STREAMS);
    vbuf_add(&out, e, 6);
  }
  if (d == DOWN) v->settings_seen = true;
  h2v_emit_frame(&v->out[d], T_SETTINGS, 0, 0, out.p, out.len);
  vbuf_free(&out);
}

static void backend_goaway(h2v_conn *v, vdir *x) {
  int32_t last = x->ctl.len >= 4 ? (int32_t)(get32(x->ctl.p) & 0x7fffffffu) : 0;
  h2v_emit_frame(&v->out[DOWN], T_GOAWAY, 0, 0, x->ctl.p, x->ctl.len);
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) {
    if (s->sid > last) h2v_stream_free(s); /* never processed: the client retries it */
  }
}

static void backend_window(h2v_conn *v, vdir *x) {
  if (x->ctl.len != 4) return;
  uint32_t inc = get32(x->ctl.p) & 0x7fffffffu;
  if (x->sid == 0) {
    v->ab += inc;
    if (v->ab > 0x7fffffff) v->ab = 0x7fffffff; /* the client would object: it is the backend's */
    for (h2v_stream *s = v->streams; s; s = s->hh.next)
      if (s->forwarded && !s->sent_end) send_pending(s);
    return;
  }
  h2v_stream *s = stream_find(v, x->sid);
  if (!s) return;
  h2v_emit_u32(&v->out[DOWN], T_WU, x->sid, inc);
  s->bwin += inc;
  if (s->forwarded && !s->sent_end) send_pending(s);
}

static void frame_ctl(h2v_conn *v, int d) {
  vdir *x = &v->dir[d];
  if (x->type == T_SETTINGS && d == DOWN && !v->greeted) {
    /* the server's preface: before it, the client may get nothing */
    v->greeted = true;
    uv_timer_stop(&v->hello);
    v->out[DOWN].mid = false;
    settings_pass(v, d);
    h2v_out_boundary(&v->out[DOWN]);
  } else if (x->type == T_SETTINGS) {
    settings_pass(v, d);
  } else if (x->type == T_WU) {
    backend_window(v, x);
  } else if (x->type == T_GOAWAY) {
    backend_goaway(v, x);
  }
  x->ctl.len = 0;
}

/* ---- a frame's end ---- */

static void block_end_up(h2v_conn *v, vdir *x) {
  h2v_stream *s = x->block_s;
  bool fresh = x->block_new && s;
  if (inflate_block(x, fresh ? s : NULL, request_header) != 0) {
    h2v_protocol_error(v, UP, NGHTTP2_COMPRESSION_ERROR);
    return;
  }
  if (x->block_refuse) { /* drained or too many: the client tries again */
    h2v_emit_u32(&v->out[UP], T_RST, x->block_sid, NGHTTP2_CANCEL);
    h2v_emit_u32(&v->out[DOWN], T_RST, x->block_sid, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (fresh) route(s);
  if (s && x->block_end_stream) up_end(s);
}

static void block_end_down(h2v_conn *v, vdir *x) {
  h2v_stream *s = x->block_s;
  bool ours = s && !s->doom_code;
  if (inflate_block(x, ours ? s : NULL, answer_header) != 0 ||
      hpack_decoder_table_size(&x->hpack) != 0) {
    h2v_protocol_error(v, DOWN, NGHTTP2_COMPRESSION_ERROR); /* or uses the table */
    return;
  }
  if (x->block_act == A_PASS) h2v_out_boundary(&v->out[DOWN]);
  if (ours && x->block_end_stream) down_end(s);
}

static void doom_now(h2v_stream *s) {
  int code = s->doom_code;
  s->doom_code = 0;
  s->held_failed = true;
  h2v_self_answer(s, code, s->doom_msg);
}

static void frame_end(h2v_conn *v, int d) {
  vdir *x = &v->dir[d];
  x->decided = false;
  x->have = 0;
  if (x->act == A_CTL) frame_ctl(v, d);
  if (d == UP && x->type == T_SETTINGS && (x->flags & F_ACK) && v->has_table_pending) {
    hpack_decoder_set_limit(&x->hpack, v->table_pending);
    v->has_table_pending = false;
  }
  bool block = x->type == T_HEADERS || x->type == T_CONT;
  x->in_block = block && !(x->flags & F_END_HEADERS);
  if (x->act == A_PASS && !x->in_block) h2v_out_boundary(&v->out[d]);
  h2v_stream *s = x->s;
  if (block && !x->in_block) {
    if (d == UP)
      block_end_up(v, x);
    else
      block_end_down(v, x);
    s = x->block_s;
  } else if (x->type == T_DATA && s && (x->flags & F_END_STREAM)) {
    if (d == UP) {
      up_end(s);
      s = stream_find(v, x->sid);                   /* the owner may have ended it */
    } else if (x->act == A_PASS || !s->doom_code) { /* what passed ended it */
      s->doom_code = 0;
      down_end(s);
      s = stream_find(v, x->sid);
    }
  } else if (x->type == T_RST && s) {
    if (d == UP) s->rec.client_reset = !s->down_end;
    s->up_end = s->down_end = true;
    h2v_stream_free(s);
    s = NULL;
  }
  if (s && s->doom_code && !x->in_block) doom_now(s);
}

/* ---- feeding ---- */

static bool preface_ok(vdir *x, const uint8_t **p, size_t *n, vout *o) {
  static const char magic[] = PREFACE;
  size_t at = 24 - x->magic, m = *n < x->magic ? *n : x->magic;
  if (memcmp(*p, magic + at, m) != 0) return false;
  h2v_out_copy(o, *p, m);
  x->magic -= m, *p += m, *n -= m;
  return true;
}

/* Reads n bytes of direction d; returns how many it took (fewer: the
 * client is stalled on the backend's window), -1 on a protocol error. */
ssize_t h2v_feed(h2v_conn *v, int d, const uint8_t *p, size_t n) {
  vdir *x = &v->dir[d];
  size_t total = n;
  if (x->magic && !preface_ok(x, &p, &n, &v->out[d])) return -1;
  while (n || (x->have == 9 && !x->decided)) {
    if (v->closing || v->lost) return -1;
    const uint8_t *slab_hd = NULL; /* the frame header, if whole in p's buffer */
    if (x->have == 0 && n >= 9) {
      memcpy(x->hd, p, 9);
      slab_hd = p;
      x->have = 9, p += 9, n -= 9;
      frame_begin(v, d);
    } else if (x->have < 9) {
      x->hd[x->have++] = *p++, n--;
      if (x->have < 9) continue;
      frame_begin(v, d);
    }
    if (!x->decided) {
      if (x->in_block != (x->type == T_CONT) || (x->in_block && x->sid != x->block_sid))
        return -1; /* a header block interrupted, or a CONTINUATION of none */
      int act = d == UP ? decide_up(v, x, p, n) : decide_down(v, x);
      if (act == A_STALL) return (ssize_t)(total - n);
      if (act == A_ERROR) return -1;
      x->act = (uint8_t)act;
      x->decided = true;
      if (act == A_PASS) {
        if (slab_hd)
          h2v_out_slab(&v->out[d], slab_hd, 9);
        else
          h2v_out_copy(&v->out[d], x->hd, 9);
        v->out[d].mid = true;
      } else if (act == A_HOLD && x->s) {
        vbuf_add(&x->s->held, x->hd, 9);
      }
      if (x->len == 0) {
        frame_end(v, d);
        continue;
      }
    }
    size_t m = n < x->len - x->pos ? n : x->len - x->pos;
    frame_payload(v, d, p, m);
    if (v->closing) return -1;
    p += m, n -= m;
    if (x->pos == x->len) frame_end(v, d);
  }
  return (ssize_t)total;
}
