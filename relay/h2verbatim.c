/* SPDX-License-Identifier: Apache-2.0 */
/* h2verbatim.c: the verbatim engine (h2relay.h "Verbatim"): one backend
 * connection per client connection, frames passed through as they came.
 *
 * Each direction is read frame by frame (vdir). A frame's fate is decided
 * when its 9-byte header is complete, from its type and its stream:
 *   PASS  its bytes go on as they are (the payload straight from the read
 *         slab when it is large: h2r_seg, as the terminating relay writes);
 *   DROP  nothing goes on (a stream the relay has ended; its DATA's credit
 *         is given back);
 *   HOLD  kept with the stream: an intercepted call's last header block
 *         (trailers, or a trailers-only answer), until the owner has seen
 *         the answer (its DATA went on, copied: a client grants credit only
 *         for DATA it gets, so DATA held whole could wait for ever);
 *   EAT   its DATA bytes are kept (an intercepted call's request);
 *   CTL   its payload is read first, then the relay writes what the peer
 *         should get (SETTINGS, the backend's WINDOW_UPDATE and GOAWAY).
 * Frames the relay writes itself (answers, resets, credit) go in only
 * between frames, never inside a frame or a header block (vout.later).
 *
 * Header blocks are read whole through an HPACK decoder per direction
 * that mirrors the receiver's: :path, grpc-timeout and the self-probe mark
 * of a request; grpc-status and grpc-message of an answer.
 *
 * Why the backend's header blocks can be held, dropped or answered for:
 * the client's SETTINGS reach the backend with SETTINGS_HEADER_TABLE_SIZE
 * 0, so the backend's encoder keeps no dynamic table and every block it
 * sends stands alone; the relay's own blocks use literals without
 * indexing. The client's blocks keep their table (kubelet's headers stay
 * small) and are therefore always passed, in order, never held.
 *
 * Connection-level flow control towards the backend (h2v_conn.ab, .cv):
 * the relay keeps what the backend will still take (ab) and what the
 * client was allowed to send (cv); it hands the client the backend's
 * credit itself, cv up to ab less what intercepted requests still have
 * to send, so request bytes it held, rewrote or dropped never leave the
 * two out of step. A client frame that would overrun the backend (only
 * after a hook made a request larger) waits, with the client's reading
 * stopped, until the backend gives credit. */
#include "h2verbatim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "h2relay_int.h"

enum { UP, DOWN }; /* client -> backend, backend -> client */
enum { A_PASS, A_DROP, A_HOLD, A_EAT, A_CTL, A_STALL, A_ERROR };
enum { T_DATA = 0, T_HEADERS = 1, T_RST = 3, T_SETTINGS = 4, T_GOAWAY = 7, T_WU = 8, T_CONT = 9 };
#define F_END_STREAM 0x1
#define F_ACK 0x1
#define F_END_HEADERS 0x4
#define F_PADDED 0x8
#define F_PRIORITY 0x20
#define S_HEADER_TABLE_SIZE 1
#define S_MAX_CONCURRENT_STREAMS 3
#define S_INITIAL_WINDOW_SIZE 4
#define CTL_MAX 16384         /* a control frame's payload the relay reads */
#define OWN_FRAME 16384       /* DATA frames the relay writes (the minimum max) */
#define MAX_MESSAGE_TEXT 1024 /* of a grpc-message the relay writes */
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

typedef struct vbuf {
  uint8_t *p;
  size_t len, cap;
} vbuf;

typedef struct h2v_stream {
  h2r_call call; /* first: the owner's handle */
  UT_hash_handle hh;
  h2v_conn *v;
  int32_t sid;
  char *path;
  size_t path_len;
  int route;
  unsigned tag;
  bool routed, intercept, streaming, self_probe, client_reset;
  bool up_end, down_end, resp_started;
  bool waiting, forwarded, sent_end, held_failed;
  bool early;    /* intercepted: the answer came whole before the owner decided */
  int doom_code; /* > 0: the relay ends the stream at this frame's end */
  char doom_msg[128];
  int grpc_status;
  char *grpc_message;
  size_t grpc_message_len;
  uint64_t started_ns;
  h2r_frames fup, fdown; /* gRPC framing of each direction's DATA */
  vbuf body;             /* intercepted: the request, held */
  vbuf held;             /* intercepted: the answer's ending header block */
  vbuf adata;            /* intercepted: a copy of the answer's DATA */
  vbuf pend;             /* a forwarded body still to be sent */
  size_t pend_off;
  int64_t bwin; /* intercepted: the backend's stream window for it */
} h2v_stream;

typedef struct vdir {
  uint8_t hd[9];
  uint8_t have;
  bool decided;
  uint32_t len, pos;
  uint8_t type, flags, act;
  int32_t sid;
  uint32_t front, pad; /* the data (or block fragment) is [front, len - pad) */
  bool pad_known;
  h2v_stream *s; /* the frame's stream (NULL: none, or freed meanwhile) */
  vbuf ctl;      /* a CTL frame's payload */
  vbuf block;    /* the header block being read */
  bool in_block, block_new, block_refuse, block_end_stream;
  uint8_t block_act;
  int32_t block_sid;
  h2v_stream *block_s;
  nghttp2_hd_inflater *inf;
  size_t magic; /* preface bytes still to check (client side) */
} vdir;

typedef struct vout {
  uv_stream_t *h;
  h2r_seg *segs;
  size_t nsegs, cap;
  vbuf own;   /* bytes the segments without p point into */
  vbuf later; /* the relay's frames waiting for a frame boundary */
  bool mid;   /* inside a frame or header block being passed */
} vout;

struct h2v_conn {
  h2r_conn *c; /* NULL once the client side is closed */
  h2r *r;
  int refs; /* the client pipe, the backend pipe, the hello timer */
  uv_pipe_t bpipe;
  uv_connect_t creq;
  uv_timer_t hello;
  bool bconnected, greeted, lost, closing, close_after_write;
  bool reading_client, reading_backend;
  vdir dir[2];
  vout out[2]; /* out[UP] goes to the backend, out[DOWN] to the client */
  h2v_stream *streams;
  int nstreams;
  int32_t last_sid;
  int64_t ab, cv, reserve; /* connection credit (top of the file) */
  uint64_t owe_backend;    /* credit for backend DATA the client never got */
  uint32_t binit;          /* the backend's SETTINGS_INITIAL_WINDOW_SIZE */
  uint32_t table_pending;  /* the backend's HEADER_TABLE_SIZE, applied at the client's ACK */
  bool has_table_pending, settings_seen, in_read, draining;
  vbuf stall; /* client bytes read, not yet fed (the backend's window is shut) */
  bool stalled;
};

/* ---- small buffers ---- */

static int vbuf_add(vbuf *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static void vbuf_free(vbuf *b) {
  free(b->p);
  *b = (vbuf){0};
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void frame_head(uint8_t *hd, size_t len, uint8_t type, uint8_t flags, int32_t sid) {
  hd[0] = (uint8_t)(len >> 16), hd[1] = (uint8_t)(len >> 8), hd[2] = (uint8_t)len;
  hd[3] = type, hd[4] = flags;
  put32(hd + 5, (uint32_t)sid & 0x7fffffffu);
}

/* ---- output ---- */

static int seg_push(vout *o, h2r_seg seg) {
  if (o->nsegs == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    h2r_seg *s = realloc(o->segs, cap * sizeof *s);
    if (!s) return -1;
    o->segs = s;
    o->cap = cap;
  }
  o->segs[o->nsegs++] = seg;
  return 0;
}

static int out_copy(vout *o, const uint8_t *p, size_t n) {
  size_t off = o->own.len;
  if (vbuf_add(&o->own, p, n) != 0) return -1;
  if (o->nsegs && !o->segs[o->nsegs - 1].p &&
      o->segs[o->nsegs - 1].off + o->segs[o->nsegs - 1].len == off) {
    o->segs[o->nsegs - 1].len += n;
    return 0;
  }
  return seg_push(o, (h2r_seg){.off = off, .len = n});
}

/* Bytes that stay where they are until the flush (the read slab). */
static int out_ref(vout *o, const uint8_t *p, size_t n) {
  if (n < H2R_REF_MIN) return out_copy(o, p, n);
  return seg_push(o, (h2r_seg){.p = p, .len = n});
}

/* A frame of the relay's own: now, or at the next frame boundary. */
static void out_emit(vout *o, const uint8_t *p, size_t n) {
  if (o->mid)
    vbuf_add(&o->later, p, n);
  else
    out_copy(o, p, n);
}

static void out_boundary(vout *o) {
  o->mid = false;
  if (!o->later.len) return;
  out_copy(o, o->later.p, o->later.len);
  o->later.len = 0;
}

static void emit_frame(vout *o, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *payload,
                       size_t len) {
  uint8_t hd[9];
  frame_head(hd, len, type, flags, sid);
  bool mid = o->mid;
  if (mid) {
    vbuf_add(&o->later, hd, 9);
    vbuf_add(&o->later, payload, len);
  } else {
    out_copy(o, hd, 9);
    out_copy(o, payload, len);
  }
}

static void emit_u32(vout *o, uint8_t type, int32_t sid, uint32_t value) {
  uint8_t p[4];
  put32(p, value);
  emit_frame(o, type, 0, sid, p, 4);
}

typedef struct wreq {
  uv_write_t req;
  h2v_conn *v;
  int d;
  uint8_t data[];
} wreq;

static void write_cb(uv_write_t *req, int status);
static void backend_lost(h2v_conn *v);
static void update_reading(h2v_conn *v);
static void finish(h2v_conn *v);

/* Writes what the direction gathered: at once if the socket takes it, the
 * rest copied into one write request. */
static int out_flush(h2v_conn *v, int d) {
  vout *o = &v->out[d];
  if (!o->nsegs) return 0;
  uv_buf_t stackbufs[32] = {{0}};
  uv_buf_t *bufs = o->nsegs <= 32 ? stackbufs : malloc(o->nsegs * sizeof *bufs);
  if (!bufs) return -1;
  size_t total = 0;
  for (size_t i = 0; i < o->nsegs; i++) {
    const uint8_t *p = o->segs[i].p ? o->segs[i].p : o->own.p + o->segs[i].off;
    bufs[i] = uv_buf_init((char *)p, (unsigned)o->segs[i].len);
    total += o->segs[i].len;
  }
  int rc = uv_try_write(o->h, bufs, (unsigned)o->nsegs);
  size_t done = rc > 0 ? (size_t)rc : 0;
  if (rc < 0 && rc != UV_EAGAIN) {
    if (bufs != stackbufs) free(bufs);
    o->nsegs = 0;
    o->own.len = 0;
    return -1;
  }
  int result = 0;
  if (done < total) {
    wreq *w = malloc(sizeof *w + total - done);
    if (w) {
      size_t at = 0, skip = done;
      for (size_t i = 0; i < o->nsegs; i++) {
        size_t n = bufs[i].len;
        if (skip >= n) {
          skip -= n;
          continue;
        }
        memcpy(w->data + at, bufs[i].base + skip, n - skip);
        at += n - skip;
        skip = 0;
      }
      w->v = v;
      w->d = d;
      uv_buf_t one = uv_buf_init((char *)w->data, (unsigned)at);
      if (uv_write(&w->req, o->h, &one, 1, write_cb) != 0) {
        free(w);
        result = -1;
      }
    } else {
      result = -1;
    }
  }
  if (bufs != stackbufs) free(bufs);
  o->nsegs = 0;
  o->own.len = 0;
  return result;
}

/* ---- streams ---- */

static const h2r_call_ops vcall_ops;
static void down_end(h2v_stream *s);

static h2v_stream *stream_find(h2v_conn *v, int32_t sid) {
  h2v_stream *s = NULL;
  HASH_FIND(hh, v->streams, &sid, sizeof sid, s);
  return s;
}

static h2v_stream *stream_new(h2v_conn *v, int32_t sid) {
  h2v_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->call.ops = &vcall_ops;
  s->v = v;
  s->sid = sid;
  s->grpc_status = -1;
  s->started_ns = uv_hrtime();
  HASH_ADD(hh, v->streams, sid, sizeof s->sid, s);
  v->nstreams++;
  atomic_fetch_add(v->r->live_streams, 1);
  return s;
}

static void stream_report(h2v_stream *s) {
  const h2r_config *cfg = &s->v->r->cfg;
  if (!cfg->on_stream_end || !s->routed) return; /* route() never saw it */
  h2r_stream_end e = {.path = s->path ? s->path : "",
                      .path_len = s->path_len,
                      .route = s->route,
                      .grpc_status = s->grpc_status,
                      .grpc_message = s->grpc_message,
                      .grpc_message_len = s->grpc_message_len,
                      .started_ns = s->started_ns,
                      .ended_ns = uv_hrtime(),
                      .self_probe = s->self_probe,
                      .client_reset = s->client_reset,
                      .tag = s->tag,
                      .call_data = s->call.data};
  cfg->on_stream_end(cfg->ud, &e);
}

/* Reports the stream and forgets it; a body it will never send stops
 * being reserved. */
static void stream_free(h2v_stream *s) {
  h2v_conn *v = s->v;
  stream_report(s);
  for (int d = 0; d < 2; d++) {
    if (v->dir[d].s == s) v->dir[d].s = NULL;
    if (v->dir[d].block_s == s) v->dir[d].block_s = NULL;
  }
  if (s->pend.len > s->pend_off) v->reserve -= (int64_t)(s->pend.len - s->pend_off);
  HASH_DEL(v->streams, s);
  v->nstreams--;
  atomic_fetch_sub(v->r->live_streams, 1);
  vbuf_free(&s->body);
  vbuf_free(&s->held);
  vbuf_free(&s->adata);
  vbuf_free(&s->pend);
  free(s->grpc_message);
  free(s->path);
  free(s);
}

static void stream_maybe_free(h2v_stream *s) {
  if (s->up_end && s->down_end) stream_free(s);
}

static void set_message(h2v_stream *s, const uint8_t *m, size_t n) {
  free(s->grpc_message);
  s->grpc_message = malloc(n + 1);
  s->grpc_message_len = s->grpc_message ? n : 0;
  if (!s->grpc_message) return;
  memcpy(s->grpc_message, m, n);
  s->grpc_message[n] = '\0';
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

/* grpc-message as gRPC's HTTP/2 mapping wants it: percent-encoded outside
 * printable ASCII (and '%' itself). */
static size_t percent_encode(const char *in, char *out, size_t size) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < size; p++) {
    if (*p >= 0x20 && *p < 0x7f && *p != '%') {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%', out[o++] = hex[*p >> 4], out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  return o;
}

/* Ends the client's stream with a status of the relay's own (trailers-only
 * if no response headers went out), resets the backend's, and forgets the
 * stream. */
static void self_answer(h2v_stream *s, int code, const char *msg) {
  h2v_conn *v = s->v;
  if (s->down_end) return;
  s->grpc_status = code;
  char text[MAX_MESSAGE_TEXT], num[16];
  size_t tlen = percent_encode(msg ? msg : "", text, sizeof text);
  set_message(s, (const uint8_t *)text, tlen);
  snprintf(num, sizeof num, "%d", code);
  vbuf b = {0};
  if (!s->resp_started) {
    uint8_t status200 = 0x88; /* :status 200, static table */
    vbuf_add(&b, &status200, 1);
    hpack_literal(&b, "content-type", "application/grpc", 16);
  }
  hpack_literal(&b, "grpc-status", num, strlen(num));
  hpack_literal(&b, "grpc-message", text, tlen);
  if (b.p) emit_frame(&v->out[DOWN], T_HEADERS, F_END_STREAM | F_END_HEADERS, s->sid, b.p, b.len);
  vbuf_free(&b);
  if (!s->up_end) emit_u32(&v->out[DOWN], T_RST, s->sid, NGHTTP2_NO_ERROR);
  if (!v->lost) emit_u32(&v->out[UP], T_RST, s->sid, NGHTTP2_CANCEL);
  s->up_end = s->down_end = true;
  stream_free(s);
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
    emit_frame(&v->out[UP], T_DATA, last ? F_END_STREAM : 0, s->sid, s->pend.p + s->pend_off,
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
    if (!v->in_read) finish(v);
    return 0;
  }
  if (!body) {
    s->pend = s->body;
    s->body = (vbuf){0};
  } else if (vbuf_add(&s->pend, body, len) != 0) {
    self_answer(s, 8, "crihookd: out of memory holding the request");
    if (!v->in_read) finish(v);
    return -1;
  }
  vbuf_free(&s->body);
  s->v->reserve += (int64_t)s->pend.len;
  send_pending(s);
  if (!v->in_read) finish(v); /* from the owner's own callback: write now */
  return 0;
}

static void vcall_refuse(h2r_call *call, int grpc_status, const char *message) {
  h2v_stream *s = (h2v_stream *)call;
  if (!s->waiting) return;
  s->waiting = false;
  h2v_conn *v = s->v;
  self_answer(s, grpc_status, message ? message : "");
  if (!v->in_read) finish(v);
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
    h2r_answer a = {.grpc_status = s->grpc_status,
                    .body = s->adata.p ? s->adata.p : (const uint8_t *)"",
                    .len = s->adata.len,
                    .grpc_message = s->grpc_message,
                    .grpc_message_len = s->grpc_message_len};
    cfg->on_answer(cfg->ud, &s->call, &a);
  }
  out_emit(&s->v->out[DOWN], s->held.p, s->held.len);
  vbuf_free(&s->held);
  vbuf_free(&s->adata);
}

/* ---- request and answer headers ---- */

static void request_header(h2v_stream *s, const nghttp2_nv *nv) {
  const h2r *r = s->v->r;
  if (nv->namelen == 5 && memcmp(nv->name, ":path", 5) == 0 && !s->path) {
    s->path = strndup((const char *)nv->value, nv->valuelen);
    s->path_len = s->path ? strlen(s->path) : 0;
    s->call.path = s->path;
  } else if (nv->namelen == 12 && memcmp(nv->name, "grpc-timeout", 12) == 0) {
    uint64_t ns = h2r_grpc_timeout_ns(nv->value, nv->valuelen);
    s->call.deadline_ns = ns ? s->started_ns + ns : 0;
  } else if (r->probe_len && r->probe_len == nv->namelen &&
             memcmp(r->cfg.self_probe_header, nv->name, nv->namelen) == 0) {
    s->self_probe = true;
  }
}

static void answer_header(h2v_stream *s, const nghttp2_nv *nv) {
  if (nv->namelen == 11 && memcmp(nv->name, "grpc-status", 11) == 0) {
    int code = 0;
    for (size_t i = 0; i < nv->valuelen && i < 4 && nv->value[i] >= '0' && nv->value[i] <= '9'; i++)
      code = code * 10 + (nv->value[i] - '0');
    s->grpc_status = code;
  } else if (nv->namelen == 12 && memcmp(nv->name, "grpc-message", 12) == 0) {
    set_message(s, nv->value, nv->valuelen);
  }
}

/* Reads a whole header block; each field goes to `seen` (if s). */
static int inflate_block(vdir *x, h2v_stream *s, void (*seen)(h2v_stream *, const nghttp2_nv *)) {
  const uint8_t *in = x->block.p ? x->block.p : (const uint8_t *)"";
  size_t n = x->block.len;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t used = nghttp2_hd_inflate_hd2(x->inf, &nv, &flags, in, n, 1);
    if (used < 0) return -1;
    in += used;
    n -= (size_t)used;
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) && s) seen(s, &nv);
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(x->inf);
      x->block.len = 0;
      return 0;
    }
    if (n == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) return -1;
  }
}

static void route(h2v_stream *s) {
  const h2r_config *cfg = &s->v->r->cfg;
  h2r_route_out out = {0};
  int rt = cfg->route ? cfg->route(cfg->ud, s->path ? s->path : "", s->path_len, &out) : 0;
  s->route = rt >= 0 && rt < H2R_ROUTES ? rt : 0;
  s->streaming = out.streaming;
  s->tag = out.tag;
  s->intercept = out.intercept;
  s->bwin = s->v->binit;
  s->routed = true;
}

/* The client's half of s ended (END_STREAM). */
static void up_end(h2v_stream *s) {
  s->up_end = true;
  if (s->down_end) { /* answered before the request ended */
    stream_free(s);
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

static void protocol_error(h2v_conn *v, const char *why);

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
      if ((int64_t)x->len > v->cv) return A_ERROR; /* past the credit it was given */
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
      out_ref(&v->out[d], p, n);
      break;
    case A_HOLD:
      if (x->s && !x->s->doom_code) vbuf_add(&x->s->held, p, n);
      break;
    case A_CTL:
      if (x->ctl.len + n > CTL_MAX || vbuf_add(&x->ctl, p, n) != 0)
        protocol_error(v, "control frame too large");
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
      protocol_error(v, "header block too large");
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
  emit_frame(&v->out[d], T_SETTINGS, 0, 0, out.p, out.len);
  vbuf_free(&out);
}

static void backend_goaway(h2v_conn *v, vdir *x) {
  int32_t last = x->ctl.len >= 4 ? (int32_t)(get32(x->ctl.p) & 0x7fffffffu) : 0;
  emit_frame(&v->out[DOWN], T_GOAWAY, 0, 0, x->ctl.p, x->ctl.len);
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) {
    if (s->sid > last) stream_free(s); /* never processed: the client retries it */
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
  emit_u32(&v->out[DOWN], T_WU, x->sid, inc);
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
    out_boundary(&v->out[DOWN]);
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
    protocol_error(v, "client header block does not decode");
    return;
  }
  if (x->block_refuse) { /* drained or too many: the client tries again */
    emit_u32(&v->out[UP], T_RST, x->block_sid, NGHTTP2_CANCEL);
    emit_u32(&v->out[DOWN], T_RST, x->block_sid, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (fresh) route(s);
  if (s && x->block_end_stream) up_end(s);
}

static void block_end_down(h2v_conn *v, vdir *x) {
  h2v_stream *s = x->block_s;
  bool ours = s && !s->doom_code;
  if (inflate_block(x, ours ? s : NULL, answer_header) != 0 ||
      nghttp2_hd_inflate_get_dynamic_table_size(x->inf) != 0) {
    protocol_error(v, "backend header block does not decode alone");
    return;
  }
  if (x->block_act == A_PASS) out_boundary(&v->out[DOWN]);
  if (ours && x->block_end_stream) down_end(s);
}

static void doom_now(h2v_stream *s) {
  int code = s->doom_code;
  s->doom_code = 0;
  s->held_failed = true;
  self_answer(s, code, s->doom_msg);
}

static void frame_end(h2v_conn *v, int d) {
  vdir *x = &v->dir[d];
  x->decided = false;
  x->have = 0;
  if (x->act == A_CTL) frame_ctl(v, d);
  if (d == UP && x->type == T_SETTINGS && (x->flags & F_ACK) && v->has_table_pending) {
    nghttp2_hd_inflate_change_table_size(x->inf, v->table_pending);
    v->has_table_pending = false;
  }
  bool block = x->type == T_HEADERS || x->type == T_CONT;
  x->in_block = block && !(x->flags & F_END_HEADERS);
  if (x->act == A_PASS && !x->in_block) out_boundary(&v->out[d]);
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
    if (d == UP) s->client_reset = !s->down_end;
    s->up_end = s->down_end = true;
    stream_free(s);
    s = NULL;
  }
  if (s && s->doom_code && !x->in_block) doom_now(s);
}

/* ---- feeding ---- */

static bool preface_ok(vdir *x, const uint8_t **p, size_t *n, vout *o) {
  static const char magic[] = PREFACE;
  size_t at = 24 - x->magic, m = *n < x->magic ? *n : x->magic;
  if (memcmp(*p, magic + at, m) != 0) return false;
  out_copy(o, *p, m);
  x->magic -= m, *p += m, *n -= m;
  return true;
}

/* Reads n bytes of direction d; returns how many it took (fewer: the
 * client is stalled on the backend's window), -1 on a protocol error. */
static ssize_t feed(h2v_conn *v, int d, const uint8_t *p, size_t n) {
  vdir *x = &v->dir[d];
  size_t total = n;
  if (x->magic && !preface_ok(x, &p, &n, &v->out[d])) return -1;
  while (n || (x->have == 9 && !x->decided)) {
    if (v->closing || v->lost) return -1;
    if (x->have < 9) {
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
        out_copy(&v->out[d], x->hd, 9);
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

/* ---- after each read: credit, the stalled client, the writes ---- */

static void settle(h2v_conn *v) {
  if (v->closing) return;
  if (v->owe_backend && !v->lost) {
    uint64_t owe = v->owe_backend;
    v->owe_backend = 0;
    while (owe) {
      uint32_t inc = owe > 0x7fffffffu ? 0x7fffffffu : (uint32_t)owe;
      emit_u32(&v->out[UP], T_WU, 0, inc);
      owe -= inc;
    }
  }
  int64_t give = v->ab - v->reserve - v->cv;
  if (give > 0) {
    emit_u32(&v->out[DOWN], T_WU, 0, (uint32_t)give);
    v->cv += give;
  }
}

static void feed_stalled(h2v_conn *v) {
  if (!v->stalled) return;
  vbuf t = v->stall;
  v->stall = (vbuf){0};
  v->stalled = false;
  ssize_t took = feed(v, UP, t.p, t.len);
  if (took < 0) {
    vbuf_free(&t);
    protocol_error(v, "client protocol error");
    return;
  }
  if ((size_t)took < t.len) {
    vbuf_add(&v->stall, t.p + took, t.len - (size_t)took);
    v->stalled = true;
  }
  settle(v);
  out_flush(v, UP); /* before t goes: segments may point into it */
  vbuf_free(&t);
}

static void finish(h2v_conn *v) {
  if (v->closing) return;
  settle(v);
  int up = v->lost ? 0 : out_flush(v, UP);
  int down = out_flush(v, DOWN);
  if (down < 0) {
    h2r_conn_close(v->c);
    return;
  }
  if (up < 0) backend_lost(v);
  if (v->closing) return;
  feed_stalled(v);
  update_reading(v);
}

void h2v_client_read(h2v_conn *v, const uint8_t *p, size_t n) {
  if (v->closing || v->lost) return; /* its answers are on their way */
  v->in_read = true;
  ssize_t took = feed(v, UP, p, n);
  v->in_read = false;
  if (took < 0) {
    protocol_error(v, "client protocol error");
    return;
  }
  if ((size_t)took < n) {
    vbuf_add(&v->stall, p + took, n - (size_t)took);
    v->stalled = true;
  }
  finish(v);
}

static void backend_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  h2v_conn *v = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)v->r->slab, H2R_READ_SLAB);
}

static void backend_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  h2v_conn *v = h->data;
  if (v->closing || v->lost || nread == 0) return;
  if (nread < 0) {
    backend_lost(v);
    return;
  }
  v->in_read = true;
  ssize_t took = feed(v, DOWN, (const uint8_t *)buf->base, (size_t)nread);
  v->in_read = false;
  if (took < 0) {
    protocol_error(v, "backend protocol error");
    return;
  }
  finish(v);
}

/* ---- reading on and off (backpressure) ---- */

static void client_alloc_read(h2v_conn *v, bool on);

static void update_reading(h2v_conn *v) {
  if (v->closing || !v->c) return;
  bool client = v->bconnected && !v->lost && !v->stalled && !v->close_after_write &&
                v->out[UP].h->write_queue_size <= H2R_WRITE_HIGH;
  bool backend = v->bconnected && !v->lost && v->out[DOWN].h->write_queue_size <= H2R_WRITE_HIGH;
  if (client != v->reading_client) client_alloc_read(v, client);
  if (backend != v->reading_backend) {
    v->reading_backend = backend;
    if (backend)
      uv_read_start((uv_stream_t *)&v->bpipe, backend_alloc, backend_read);
    else
      uv_read_stop((uv_stream_t *)&v->bpipe);
  }
}

static void client_alloc_read(h2v_conn *v, bool on) {
  v->reading_client = on;
  h2r_conn_reading(v->c, on);
}

static void write_cb(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  h2v_conn *v = w->v;
  int d = w->d;
  free(w);
  if (v->closing) return;
  if (status < 0) {
    if (d == DOWN)
      h2r_conn_close(v->c);
    else
      backend_lost(v);
    return;
  }
  if (d == DOWN && v->close_after_write && v->out[DOWN].h->write_queue_size == 0) {
    h2r_conn_close(v->c);
    return;
  }
  update_reading(v);
}

/* ---- the backend connection ---- */

static void release_cb(uv_handle_t *h) { h2v_release(h->data); }

static void backend_close(h2v_conn *v) {
  if (uv_is_closing((uv_handle_t *)&v->bpipe)) return;
  uv_close((uv_handle_t *)&v->bpipe, release_cb);
  uv_close((uv_handle_t *)&v->hello, release_cb);
}

/* Every open stream gets UNAVAILABLE, the client a GOAWAY; the connection
 * closes once that is written (the client connects again for its next
 * call, to a fresh backend connection). */
static void backend_lost(h2v_conn *v) {
  if (v->lost || v->closing) return;
  v->lost = true;
  backend_close(v);
  if (v->out[DOWN].mid) { /* inside one of the backend's frames: nothing valid to add */
    h2r_conn_close(v->c);
    return;
  }
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) self_answer(s, 14, "backend connection lost");
  uint8_t p[8];
  put32(p, (uint32_t)v->last_sid);
  put32(p + 4, NGHTTP2_NO_ERROR);
  emit_frame(&v->out[DOWN], T_GOAWAY, 0, 0, p, 8);
  v->close_after_write = true;
  if (v->in_read) return; /* finish() writes it */
  if (out_flush(v, DOWN) < 0 || v->out[DOWN].h->write_queue_size == 0) h2r_conn_close(v->c);
}

static void protocol_error(h2v_conn *v, const char *why) {
  (void)why;
  if (v->closing) return;
  h2r_conn_close(v->c);
}

static void hello_timeout(uv_timer_t *t) { backend_lost(t->data); }

static void backend_connected(uv_connect_t *req, int status) {
  h2v_conn *v = req->data;
  if (v->closing) return;
  if (status < 0) { /* nothing read yet: the terminating engine answers */
    h2r_conn *c = v->c;
    v->lost = v->closing = true;
    v->c = NULL;
    backend_close(v);
    h2v_release(v); /* the client's reference */
    h2r_conn_fallback(c);
    return;
  }
  v->bconnected = true;
  update_reading(v);
}

int h2v_start(h2r_conn *c) {
  h2v_conn *v = calloc(1, sizeof *v);
  if (!v) return -1;
  v->c = c;
  v->r = c->r;
  v->refs = 3;
  v->ab = v->cv = 65535; /* both connection windows start at the default */
  v->binit = 65535;
  v->dir[UP].magic = 24;
  v->out[UP].h = (uv_stream_t *)&v->bpipe;
  v->out[DOWN].h = (uv_stream_t *)&c->pipe;
  v->out[DOWN].mid = true; /* nothing goes to the client before the backend's SETTINGS */
  if (nghttp2_hd_inflate_new(&v->dir[UP].inf) != 0 ||
      nghttp2_hd_inflate_new(&v->dir[DOWN].inf) != 0) {
    if (v->dir[UP].inf) nghttp2_hd_inflate_del(v->dir[UP].inf);
    free(v);
    return -1;
  }
  c->v = v;
  uv_pipe_init(c->r->loop, &v->bpipe, 0);
  uv_timer_init(c->r->loop, &v->hello);
  v->bpipe.data = v->hello.data = v->creq.data = v;
  uv_timer_start(&v->hello, hello_timeout, H2R_BACKEND_HELLO_MS, 0);
  uv_pipe_connect(&v->creq, &v->bpipe, c->r->backend_path, backend_connected);
  return 0;
}

/* ---- the accept side's calls ---- */

void h2v_close(h2v_conn *v) {
  if (v->closing) return;
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) {
    if (!s->down_end && !s->up_end) s->client_reset = true;
    stream_free(s);
  }
  v->closing = true;
  v->c = NULL;
  backend_close(v);
}

void h2v_release(h2v_conn *v) {
  if (--v->refs > 0) return;
  for (int d = 0; d < 2; d++) {
    nghttp2_hd_inflate_del(v->dir[d].inf);
    vbuf_free(&v->dir[d].ctl);
    vbuf_free(&v->dir[d].block);
    free(v->out[d].segs);
    vbuf_free(&v->out[d].own);
    vbuf_free(&v->out[d].later);
  }
  vbuf_free(&v->stall);
  free(v);
}

bool h2v_busy(const h2v_conn *v) { return v->nstreams > 0; }

bool h2v_lingering(const h2v_conn *v) { return v->close_after_write; }

void h2v_goaway(h2v_conn *v) {
  if (v->closing) return;
  uint8_t p[8];
  put32(p, (uint32_t)v->last_sid);
  put32(p + 4, NGHTTP2_NO_ERROR);
  emit_frame(&v->out[DOWN], T_GOAWAY, 0, 0, p, 8);
  if (!v->in_read) out_flush(v, DOWN);
}

void h2v_drain(h2v_conn *v, const char *msg) {
  if (v->closing) return;
  if (!v->draining) {
    v->draining = true;
    h2v_goaway(v);
  }
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) {
    if (!s->down_end && (s->streaming || s->fdown.count >= 2)) self_answer(s, 14, msg);
  }
  finish(v);
}
