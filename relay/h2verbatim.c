/* SPDX-License-Identifier: Apache-2.0 */
/* h2verbatim.c: the verbatim engine (h2relay.h "Verbatim"): one backend
 * connection per client connection, frames passed through as they came.
 * This file: the sockets, the writes, connection credit, the backend
 * connection and the accept side's calls; h2verbatim_frame.c reads the
 * frames and keeps the streams (h2verbatim_int.h).
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
 * that mirrors the receiver's (hpack_decode.h: ours, not nghttp2's, for
 * its cost): :path, grpc-timeout and the self-probe mark of a request;
 * grpc-status and grpc-message of an answer.
 *
 * The frames of one read that pass go out as one piece of the read buffer
 * (h2v_out_slab, h2v_out_ref): a run of frames costs no copy, and a frame
 * or credit of the relay's own in between starts a new piece.
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
#include <stdio.h>

#include "h2verbatim_int.h"

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

int h2v_out_copy(vout *o, const uint8_t *p, size_t n) {
  size_t off = o->own.len;
  if (vbuf_add(&o->own, p, n) != 0) return -1;
  if (o->nsegs && !o->segs[o->nsegs - 1].p &&
      o->segs[o->nsegs - 1].off + o->segs[o->nsegs - 1].len == off) {
    o->segs[o->nsegs - 1].len += n;
    return 0;
  }
  return seg_push(o, (h2r_seg){.off = off, .len = n});
}

/* Read bytes p..p+n join the last segment if they follow it there;
 * otherwise a new one refers to them, or (copy) they are copied. */
static int out_read_bytes(vout *o, const uint8_t *p, size_t n, bool copy) {
  h2r_seg *last = o->nsegs ? &o->segs[o->nsegs - 1] : NULL;
  if (last && last->p && last->p + last->len == p) {
    last->len += n;
    return 0;
  }
  if (copy) return h2v_out_copy(o, p, n);
  return seg_push(o, (h2r_seg){.p = p, .len = n});
}

int h2v_out_ref(vout *o, const uint8_t *p, size_t n) {
  return out_read_bytes(o, p, n, n < H2R_REF_MIN);
}

int h2v_out_slab(vout *o, const uint8_t *p, size_t n) {
  return out_read_bytes(o, p, n, o->nsegs >= OUT_REF_SEGS);
}

/* A frame of the relay's own: now, or at the next frame boundary. */
void h2v_out_emit(vout *o, const uint8_t *p, size_t n) {
  if (o->mid)
    vbuf_add(&o->later, p, n);
  else
    h2v_out_copy(o, p, n);
}

void h2v_out_boundary(vout *o) {
  o->mid = false;
  if (!o->later.len) return;
  h2v_out_copy(o, o->later.p, o->later.len);
  o->later.len = 0;
}

void h2v_emit_frame(vout *o, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *payload,
                    size_t len) {
  uint8_t hd[9];
  frame_head(hd, len, type, flags, sid);
  bool mid = o->mid;
  if (mid) {
    vbuf_add(&o->later, hd, 9);
    vbuf_add(&o->later, payload, len);
  } else {
    h2v_out_copy(o, hd, 9);
    h2v_out_copy(o, payload, len);
  }
}

void h2v_emit_u32(vout *o, uint8_t type, int32_t sid, uint32_t value) {
  uint8_t p[4];
  put32(p, value);
  h2v_emit_frame(o, type, 0, sid, p, 4);
}

typedef struct wreq {
  uv_write_t req;
  h2v_conn *v;
  int d;
  uint8_t data[];
} wreq;

static void write_cb(uv_write_t *req, int status);
static void backend_lost(h2v_conn *v);
static void close_when_written(h2v_conn *v);
static void update_reading(h2v_conn *v);

/* Writes what the direction gathered: at once if the socket takes it, the
 * rest copied into one write request. */
static int out_flush(h2v_conn *v, int d) {
  vout *o = &v->out[d];
  if (!o->nsegs) return 0;
  uv_buf_t stackbufs[OUT_REF_SEGS + 8] = {{0}};
  uv_buf_t *bufs = o->nsegs <= OUT_REF_SEGS + 8 ? stackbufs : malloc(o->nsegs * sizeof *bufs);
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

/* ---- after each read: credit, the stalled client, the writes ---- */

static void settle(h2v_conn *v) {
  if (v->closing) return;
  if (v->owe_backend && !v->lost) {
    uint64_t owe = v->owe_backend;
    v->owe_backend = 0;
    while (owe) {
      uint32_t inc = owe > 0x7fffffffu ? 0x7fffffffu : (uint32_t)owe;
      h2v_emit_u32(&v->out[UP], T_WU, 0, inc);
      owe -= inc;
    }
  }
  int64_t give = v->ab - v->reserve - v->cv;
  if (give > 0) {
    h2v_emit_u32(&v->out[DOWN], T_WU, 0, (uint32_t)give);
    v->cv += give;
  }
}

/* Whether the client's stalled bytes can go on: their first frame (its
 * header read, undecided) was a DATA frame larger than the backend's
 * connection window; the backend's WINDOW_UPDATE may have made room. */
static bool stall_movable(const h2v_conn *v) {
  const vdir *x = &v->dir[UP];
  return v->stalled && !v->lost && (int64_t)x->len <= v->ab;
}

/* Feeds the client's stalled bytes as a read would (in_read: an owner's
 * forward inside waits for this finish). Returns them: the writes that
 * follow may point into them, so they go only after both flushes. */
static vbuf feed_stalled(h2v_conn *v) {
  vbuf t = v->stall;
  v->stall = (vbuf){0};
  v->stalled = false;
  v->in_read = true;
  ssize_t took = h2v_feed(v, UP, t.p, t.len);
  v->in_read = false;
  if (took < 0) {
    h2v_protocol_error(v, UP, v->dir[UP].err);
  } else if ((size_t)took < t.len) {
    vbuf_add(&v->stall, t.p + took, t.len - (size_t)took);
    v->stalled = true;
  }
  return t;
}

/* After a read, an owner's call or the backend's credit: the stalled client
 * bytes first (what they make, a refusal or an answer of the relay's own
 * included, goes out in this same finish), then credit, then the writes. */
void h2v_finish(h2v_conn *v) {
  if (v->closing) return;
  vbuf fed = stall_movable(v) ? feed_stalled(v) : (vbuf){0};
  if (v->closing) {
    vbuf_free(&fed);
    return;
  }
  settle(v);
  int up = v->lost ? 0 : out_flush(v, UP);
  int down = out_flush(v, DOWN);
  vbuf_free(&fed);
  if (down < 0) {
    h2r_conn_close(v->c);
    return;
  }
  if (up < 0) backend_lost(v);
  if (v->close_after_write) close_when_written(v); /* a GOAWAY that went at once */
  if (v->closing) return;
  update_reading(v);
}

void h2v_client_read(h2v_conn *v, const uint8_t *p, size_t n) {
  if (v->closing || v->lost) return; /* its answers are on their way */
  v->in_read = true;
  ssize_t took = h2v_feed(v, UP, p, n);
  v->in_read = false;
  if (took < 0) {
    h2v_protocol_error(v, UP, v->dir[UP].err);
    return;
  }
  if ((size_t)took < n) {
    vbuf_add(&v->stall, p + took, n - (size_t)took);
    v->stalled = true;
  }
  h2v_finish(v);
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
  ssize_t took = h2v_feed(v, DOWN, (const uint8_t *)buf->base, (size_t)nread);
  v->in_read = false;
  if (took < 0) {
    h2v_protocol_error(v, DOWN, v->dir[DOWN].err);
    return;
  }
  h2v_finish(v);
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

/* GOAWAY(code) to the client, naming the last stream it opened. */
static void emit_goaway(h2v_conn *v, uint32_t code) {
  uint8_t p[8];
  put32(p, (uint32_t)v->last_sid);
  put32(p + 4, code);
  h2v_emit_frame(&v->out[DOWN], T_GOAWAY, 0, 0, p, 8);
}

/* The client's last frame: GOAWAY(code); the connection closes once that
 * is written (now, or from h2v_finish() when this runs inside a read). */
static void last_goaway(h2v_conn *v, uint32_t code) {
  emit_goaway(v, code);
  v->close_after_write = true;
}

static void close_when_written(h2v_conn *v) {
  if (v->in_read || v->closing) return;
  if (out_flush(v, DOWN) < 0 || v->out[DOWN].h->write_queue_size == 0) h2r_conn_close(v->c);
}

/* The backend connection goes; returns whether the client can still be
 * given a last word, else its connection is closed now (see below). With
 * `preface`, a client the backend never greeted gets an empty SETTINGS of
 * the relay's own first, the server preface its GOAWAY needs. */
static bool cut_backend(h2v_conn *v, bool preface) {
  v->lost = true;
  backend_close(v);
  if (preface && !v->greeted) {
    v->greeted = true;
    v->out[DOWN].mid = false;
    h2v_emit_frame(&v->out[DOWN], T_SETTINGS, 0, 0, NULL, 0);
  }
  if (v->out[DOWN].mid) { /* mid-frame, or not greeted yet */
    h2r_conn_close(v->c);
    return false;
  }
  return true;
}

/* Every open stream gets UNAVAILABLE, the client a GOAWAY; the connection
 * closes once that is written (the client connects again for its next
 * call, to a fresh backend connection).
 * Where out[DOWN] is mid-frame nothing valid can be added: the connection
 * just closes. That includes the time before the backend's SETTINGS (top of
 * the file): a server preface of the relay's own followed by GOAWAY would
 * make a gRPC client take the connection as ready and try its call again
 * and again until its deadline, where a connection closed before any
 * SETTINGS fails its calls with UNAVAILABLE at once (e2e-faults, a backend
 * that never speaks). A client's protocol error is different: its calls
 * are not to be tried again, and its GOAWAY gets that preface
 * (h2v_protocol_error()). */
static void backend_lost(h2v_conn *v) {
  if (v->lost || v->closing) return;
  if (!cut_backend(v, false)) return;
  h2v_stream *s, *tmp;
  HASH_ITER(hh, v->streams, s, tmp) h2v_self_answer(s, 14, "backend connection lost");
  last_goaway(v, NGHTTP2_NO_ERROR);
  close_when_written(v);
}

void h2v_protocol_error(h2v_conn *v, int d, uint32_t code) {
  if (v->closing) return;
  if (d == DOWN) {
    backend_lost(v);
  } else if (v->dir[UP].magic) { /* not HTTP/2 at all */
    h2r_conn_close(v->c);
    return;
  } else if (!v->lost) {
    if (!cut_backend(v, true)) return;
    last_goaway(v, code ? code : NGHTTP2_PROTOCOL_ERROR);
  }
  close_when_written(v);
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
  hpack_decoder_init(&v->dir[UP].hpack);
  hpack_decoder_init(&v->dir[DOWN].hpack);
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
    if (!s->down_end && !s->up_end) s->rec.client_reset = true;
    h2v_stream_free(s);
  }
  v->closing = true;
  v->c = NULL;
  backend_close(v);
}

void h2v_release(h2v_conn *v) {
  if (--v->refs > 0) return;
  for (int d = 0; d < 2; d++) {
    hpack_decoder_free(&v->dir[d].hpack);
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
  emit_goaway(v, NGHTTP2_NO_ERROR);
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
    if (!s->down_end && (s->streaming || s->fdown.count >= 2)) h2v_self_answer(s, 14, msg);
  }
  h2v_finish(v);
}
