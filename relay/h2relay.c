/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay.c: the relay's listener, client connections, backend connections
 * and socket I/O on libuv (streams and nghttp2 callbacks: h2relay_stream.c).
 * Frames leave a session only while its socket's write queue is below
 * H2R_WRITE_HIGH, which is what bounds the relay's memory (h2relay.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2relay_int.h"
#include "h2verbatim.h"

typedef struct wreq {
  uv_write_t req;
  h2r_conn *c;    /* client side write, or */
  h2r_backend *b; /* backend side write */
  size_t len;
  uint8_t data[];
} wreq;

/* One read buffer per relay (it runs on one thread, and what a read brought
 * is consumed before the next read). */
static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  h2r_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)c->r->slab, H2R_READ_SLAB);
}

static void backend_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  h2r_backend *b = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)b->c->r->slab, H2R_READ_SLAB);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status);

static int scratch_reserve(h2r *r, size_t need) {
  if (need <= r->scratch_cap) return 0;
  size_t cap = r->scratch_cap ? r->scratch_cap : 2 * H2R_WRITE_HIGH;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(r->scratch, cap);
  if (!p) return -1;
  r->scratch = p;
  r->scratch_cap = cap;
  return 0;
}

static h2r_seg *seg_new(h2r *r) {
  if (r->nsegs == r->segs_cap) {
    size_t cap = r->segs_cap ? r->segs_cap * 2 : 64;
    h2r_seg *segs = realloc(r->segs, cap * sizeof *segs);
    if (segs) r->segs = segs;
    uv_buf_t *bufs = segs ? realloc(r->bufs, cap * sizeof *bufs) : NULL;
    if (!bufs) return NULL;
    r->bufs = bufs;
    r->segs_cap = cap;
  }
  return &r->segs[r->nsegs++];
}

int h2r_batch_copy(h2r *r, const uint8_t *d, size_t n) {
  if (scratch_reserve(r, r->scratch_len + n) != 0) return -1;
  memcpy(r->scratch + r->scratch_len, d, n);
  h2r_seg *last = r->nsegs ? &r->segs[r->nsegs - 1] : NULL;
  if (last && !last->p && last->off + last->len == r->scratch_len) {
    last->len += n;
  } else {
    h2r_seg *g = seg_new(r);
    if (!g) return -1;
    *g = (h2r_seg){NULL, r->scratch_len, n};
  }
  r->scratch_len += n;
  r->batch_len += n;
  return 0;
}

int h2r_batch_ref(h2r *r, const uint8_t *p, size_t n) {
  h2r_seg *g = seg_new(r);
  if (!g) return -1;
  *g = (h2r_seg){p, 0, n};
  r->batch_len += n;
  return 0;
}

/* Gathers frames (up to H2R_WRITE_HIGH and one more) as the relay's batch;
 * 0 if there were none. DATA frames do not pass through nghttp2's buffer:
 * its send_data callback (h2relay_stream.c) adds them to the batch itself,
 * between the frames mem_send returns, so the order holds. */
static ssize_t gather(h2r *r, nghttp2_session *s) {
  r->scratch_len = r->nsegs = r->batch_len = 0;
  for (;;) {
    const uint8_t *d;
    ssize_t n = nghttp2_session_mem_send(s, &d);
    if (n < 0) return -1;
    if (n == 0) break;
    if (h2r_batch_copy(r, d, (size_t)n) != 0) return -1;
    if (r->batch_len >= H2R_WRITE_HIGH) break;
  }
  return (ssize_t)r->batch_len;
}

/* The batch as iovecs; its first `skip` bytes are left out. */
static unsigned batch_bufs(h2r *r, size_t skip) {
  unsigned n = 0;
  for (size_t i = 0; i < r->nsegs; i++) {
    const h2r_seg *g = &r->segs[i];
    if (skip >= g->len) {
      skip -= g->len;
      continue;
    }
    const uint8_t *p = g->p ? g->p : r->scratch + g->off;
    r->bufs[n++] = uv_buf_init((char *)p + skip, (unsigned)(g->len - skip));
    skip = 0;
  }
  return n;
}

/* What the socket did not take goes into a write request of its own. */
static int queue_rest(uv_stream_t *h, h2r *r, size_t off, h2r_conn *c, h2r_backend *b) {
  unsigned n = batch_bufs(r, off);
  wreq *w = malloc(sizeof *w + r->batch_len - off);
  if (!w) return -1;
  w->len = 0;
  for (unsigned i = 0; i < n; i++) {
    memcpy(w->data + w->len, r->bufs[i].base, r->bufs[i].len);
    w->len += r->bufs[i].len;
  }
  w->c = c;
  w->b = b;
  uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
  if (uv_write(&w->req, h, &buf, 1, write_cb) < 0) {
    free(w);
    return -1;
  }
  return 0;
}

/* The batch is written or copied: chunks it referred to can go. */
static void batch_done(h2r *r) {
  r->in_batch = false;
  for (h2r_chunk *k = r->spent, *n; k; k = n) {
    n = k->next;
    h2r_pool_free(r->pool, k);
  }
  r->spent = NULL;
}

/* Writes a batch: at once if the socket takes it (no allocation, the common
 * case: writev of the scratch and the DATA still in its chunks), else what
 * is left is copied into a write request that waits in the socket's
 * queue. */
static int send_batch(uv_stream_t *h, nghttp2_session *s, h2r_conn *c, h2r_backend *b) {
  h2r *r = c ? c->r : b->c->r;
  r->batch++;
  r->in_batch = true;
  ssize_t len = gather(r, s);
  int rc = len < 0 ? -1 : len > 0;
  size_t off = 0;
  if (len > 0 && h->write_queue_size == 0) {
    int wrote = uv_try_write(h, r->bufs, batch_bufs(r, 0));
    if (wrote < 0 && wrote != UV_EAGAIN) rc = -1;
    off = wrote > 0 ? (size_t)wrote : 0;
  }
  if (rc > 0 && off < (size_t)len && queue_rest(h, r, off, c, b) != 0) rc = -1;
  batch_done(r);
  return rc;
}

/* Produces frames while the socket's queue has room; -1 on a fatal error. */
static int flush_one(uv_stream_t *h, nghttp2_session *s, h2r_conn *c, h2r_backend *b, int *sent) {
  while (h->write_queue_size < H2R_WRITE_HIGH) {
    int rc = send_batch(h, s, c, b);
    if (rc < 0) return -1;
    if (rc == 0) break;
    (*sent)++;
  }
  return 0;
}

static void conn_maybe_done(h2r_conn *c) {
  if (!c->closing && !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s) &&
      c->pipe.write_queue_size == 0)
    h2r_conn_close(c);
}

static void backend_detach(h2r_backend *b);

/* Retired backends write what they still owe (WINDOW_UPDATE, request DATA)
 * and close once nghttp2 is done with them (no stream, nothing to send). */
static int flush_retired(h2r_conn *c, int *sent) {
  for (h2r_backend *b = c->retired, *n; b; b = n) {
    n = b->rnext;
    if (flush_one((uv_stream_t *)&b->pipe, b->s, NULL, b, sent) < 0) {
      h2r_backend_lost(b);
      *sent = 1;
      return -1;
    }
    if (!nghttp2_session_want_read(b->s) && !nghttp2_session_want_write(b->s) &&
        b->pipe.write_queue_size == 0)
      backend_detach(b);
  }
  return 0;
}

/* A backend session in use that neither reads nor writes any more has
 * ended the connection: the backend broke HTTP/2 and nghttp2 has sent its
 * GOAWAY (mem_recv does not report that as an error). Its streams would
 * wait for ever; they get UNAVAILABLE as for a lost backend. */
static bool session_over(const h2r_backend *b) {
  return !nghttp2_session_want_read(b->s) && !nghttp2_session_want_write(b->s) &&
         b->pipe.write_queue_size == 0;
}

static int flush_client(h2r_conn *c, int *sent) {
  if (flush_one((uv_stream_t *)&c->pipe, c->s, c, NULL, sent) == 0) return 0;
  h2r_conn_close(c);
  return -1;
}

/* Sending on one session can queue frames on the other (a consume queues a
 * WINDOW_UPDATE, a close an RST_STREAM): loop until both are quiet. */
static void flush(h2r_conn *c, bool client_first) {
  int sent;
  do {
    sent = 0;
    if (c->closing || (client_first && flush_client(c, &sent) < 0)) return;
    for (int i = 0; i < H2R_ROUTES; i++) {
      h2r_backend *b = c->b[i];
      if (b && b->up &&
          (flush_one((uv_stream_t *)&b->pipe, b->s, NULL, b, &sent) < 0 || session_over(b))) {
        h2r_backend_lost(b);
        sent = 1;
      }
    }
    if (flush_retired(c, &sent) < 0) continue;
    if (c->closing || (!client_first && flush_client(c, &sent) < 0)) return;
  } while (sent);
  conn_maybe_done(c);
}

void h2r_flush(h2r_conn *c) { flush(c, false); }

void h2r_flush_client_first(h2r_conn *c) { flush(c, true); }

static void write_cb(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  h2r_conn *c = w->c;
  h2r_backend *b = w->b;
  free(w);
  if (b) {
    if (!b->c) return;
    c = b->c;
    if (status < 0) h2r_backend_lost(b);
  } else if (c->closing) {
    return;
  } else if (status < 0) {
    h2r_conn_close(c);
    return;
  }
  h2r_flush(c);
}

/* Feeds a read to a session; an intercepted call's owner that forwards or
 * refuses from inside the callbacks this runs leaves the flush to the
 * read (h2r_call_forward). */
static int relay_recv(h2r *r, nghttp2_session *s, const uv_buf_t *buf, ssize_t nread) {
  r->in_recv = true;
  ssize_t rc = nghttp2_session_mem_recv(s, (uint8_t *)buf->base, (size_t)nread);
  r->in_recv = false;
  return rc < 0 ? -1 : 0;
}

/* ---- backend connections ---- */

static void backend_free_cb(uv_handle_t *h) {
  h2r_backend *b = h->data;
  if (--b->handles == 0) free(b);
}

static void backend_detach(h2r_backend *b) {
  if (b->c && b->retired) {
    h2r_backend **p = &b->c->retired;
    while (*p != b) p = &(*p)->rnext;
    *p = b->rnext;
  } else if (b->c) {
    b->c->b[b->route] = NULL;
  }
  b->c = NULL;
  nghttp2_session_del(b->s);
  b->s = NULL;
  uv_close((uv_handle_t *)&b->pipe, backend_free_cb);
  uv_close((uv_handle_t *)&b->timer, backend_free_cb);
}

/* The backend said GOAWAY: its open streams finish on it, new ones go to a
 * new connection (the client never sees the backend's GOAWAY; a stream the
 * backend refused comes back REFUSED_STREAM, which gRPC clients retry). */
void h2r_backend_retire(h2r_backend *b) {
  h2r_conn *c = b->c;
  if (!c || b->retired) return;
  c->b[b->route] = NULL;
  b->retired = true;
  b->rnext = c->retired;
  c->retired = b;
}

void h2r_backend_greeted(h2r_backend *b) {
  b->greeted = true;
  uv_timer_stop(&b->timer);
}

static void backend_hello_timeout(uv_timer_t *t) {
  h2r_backend *b = t->data;
  if (b->c) h2r_backend_lost(b);
}

/* The backend connection failed: every stream bound to it, or waiting for
 * it, gets UNAVAILABLE; the next stream connects anew. */
void h2r_backend_lost(h2r_backend *b) {
  h2r_conn *c = b->c;
  if (!c) return;
  for (h2r_stream *s = c->streams, *n; s; s = n) {
    n = s->next;
    bool waiting = !b->retired && s->ready && !s->bsid && s->rec.route == b->route;
    if (s->b != b && !waiting) continue;
    s->bopen = false;
    s->b = NULL; /* its session goes away: no credit owed there */
    h2r_stream_answer(s, 14, "backend connection lost");
    h2r_stream_maybe_free(s);
  }
  backend_detach(b);
  h2r_flush(c);
}

static void backend_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  h2r_backend *b = h->data;
  if (!b->c || nread == 0) return;
  h2r_conn *c = b->c;
  if (nread < 0 || relay_recv(b->c->r, b->s, buf, nread) < 0)
    h2r_backend_lost(b);
  else
    h2r_flush_client_first(c);
  if (!c->closing) h2r_chunks_keep(c);
}

/* The socket is connected: the HTTP/2 session starts. */
static int backend_up(h2r_backend *b) {
  h2r_conn *c = b->c;
  nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2R_WINDOW},
                                  {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, H2R_MAX_FRAME}};
  if (nghttp2_session_client_new3(&b->s, c->r->client_cbs, b, c->r->opt,
                                  h2r_pool_mem(c->r->pool)) != 0 ||
      nghttp2_submit_settings(b->s, NGHTTP2_FLAG_NONE, set, 3) != 0 ||
      nghttp2_session_set_local_window_size(b->s, NGHTTP2_FLAG_NONE, 0, H2R_CONN_WINDOW) != 0 ||
      uv_read_start((uv_stream_t *)&b->pipe, backend_alloc_cb, backend_read_cb) < 0)
    return -1;
  b->up = true;
  return 0;
}

static void backend_connect_cb(uv_connect_t *req, int status) {
  h2r_backend *b = req->data;
  if (!b->c) return;
  h2r_conn *c = b->c;
  if (status < 0 || backend_up(b) != 0) {
    h2r_backend_lost(b);
    return;
  }
  for (h2r_stream *s = c->streams, *n; s; s = n) {
    n = s->next;
    if (s->rec.route == b->route) h2r_stream_open_backend(s);
  }
  h2r_flush(c);
}

h2r_backend *h2r_backend_get(h2r_conn *c, int route) {
  if (c->b[route]) return c->b[route];
  h2r_backend *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (uv_pipe_init(c->r->loop, &b->pipe, 0) < 0) {
    free(b);
    return NULL;
  }
  uv_timer_init(c->r->loop, &b->timer);
  b->handles = 2;
  b->timer.data = b;
  b->pipe.data = b;
  b->creq.data = b;
  uv_timer_start(&b->timer, backend_hello_timeout, H2R_BACKEND_HELLO_MS, 0);
  b->c = c;
  b->route = route;
  c->b[route] = b;
  uv_pipe_connect(&b->creq, &b->pipe, c->r->route_paths[route], backend_connect_cb);
  return b;
}

/* ---- client connections ---- */

static void conn_free_cb(uv_handle_t *h) {
  h2r_conn *c = h->data;
  if (c->v) h2v_release(c->v);
  free(c);
}

void h2r_conn_close(h2r_conn *c) {
  if (c->closing) return;
  c->closing = true;
  c->r->stats.open--;
  if (c->v) h2v_close(c->v);
  for (int i = 0; i < H2R_ROUTES; i++)
    if (c->b[i]) backend_detach(c->b[i]);
  while (c->retired) backend_detach(c->retired);
  if (c->s) nghttp2_session_del(c->s);
  c->s = NULL;
  while (c->streams) h2r_stream_free(c->streams);
  if (c->prev)
    c->prev->next = c->next;
  else
    c->r->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->pipe, conn_free_cb);
}

/* The client connection preface (RFC 9113 3.4): the 24-byte magic, then a
 * SETTINGS frame (no ACK) whose 9-byte header follows the magic. */
#define PREFACE_MAGIC 24
#define PREFACE_HEAD (PREFACE_MAGIC + 9)

/* Notes how much of the preface has been read; done once the magic and the
 * whole first frame are in and that frame is a SETTINGS. nghttp2 checks the
 * content itself and fails the connection when it is wrong; this only tells
 * the sweep that the client got that far. */
static void preface_track(h2r_conn *c, const uint8_t *p, size_t n) {
  for (; n && c->seen < PREFACE_HEAD; p++, n--, c->seen++)
    if (c->seen >= PREFACE_MAGIC) c->fhd[c->seen - PREFACE_MAGIC] = *p;
  if (c->seen < PREFACE_HEAD || c->fhd[3] != NGHTTP2_SETTINGS || (c->fhd[4] & NGHTTP2_FLAG_ACK))
    return;
  uint64_t end = PREFACE_HEAD + ((uint64_t)c->fhd[0] << 16 | (uint64_t)c->fhd[1] << 8 | c->fhd[2]);
  c->seen += n < end - c->seen ? n : end - c->seen;
  c->preface_done = c->seen == end;
}

static bool conn_busy(const h2r_conn *c) { return c->streams || (c->v && h2v_busy(c->v)); }

static void verbatim_read(h2r_conn *c, ssize_t nread, const uv_buf_t *buf) {
  if (nread < 0) {
    h2r_conn_close(c);
    return;
  }
  if (!c->preface_done) preface_track(c, (const uint8_t *)buf->base, (size_t)nread);
  bool busy = conn_busy(c);
  h2v_client_read(c->v, (const uint8_t *)buf->base, (size_t)nread);
  if (!c->closing && (busy || conn_busy(c))) c->busy_at = uv_now(c->r->loop);
}

static void conn_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  h2r_conn *c = h->data;
  if (c->closing || nread == 0) return;
  if (c->v) {
    verbatim_read(c, nread, buf);
    return;
  }
  bool busy = c->streams != NULL;
  if (nread < 0 || relay_recv(c->r, c->s, buf, nread) < 0) {
    h2r_conn_close(c);
    return;
  }
  if (!c->preface_done) preface_track(c, (const uint8_t *)buf->base, (size_t)nread);
  if (busy || c->streams) c->busy_at = uv_now(c->r->loop);
  h2r_flush(c);
  if (!c->closing) h2r_chunks_keep(c);
}

static int session_start(h2r *r, h2r_conn *c);

/* Accepts first: whatever fails after, the pending connection is taken off
 * the listener (libuv stops polling it while one is pending). */
static int conn_start(h2r *r, h2r_conn *c) {
  if (uv_accept((uv_stream_t *)&r->listener, (uv_stream_t *)&c->pipe) < 0) return -1;
  if (r->verbatim) return h2v_start(c); /* it reads the client once the backend is up */
  return session_start(r, c);
}

/* The verbatim engine could not reach the backend before it read a byte:
 * this engine serves the connection instead (each stream then gets
 * UNAVAILABLE, and a later stream connects anew). */
void h2r_conn_fallback(h2r_conn *c) {
  c->v = NULL;
  if (session_start(c->r, c) != 0) {
    h2r_conn_close(c);
    return;
  }
  h2r_flush(c);
}

static int session_start(h2r *r, h2r_conn *c) {
  nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2R_MAX_STREAMS},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2R_WINDOW},
                                  {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, H2R_MAX_FRAME}};
  if (nghttp2_session_server_new3(&c->s, r->server_cbs, c, r->sopt, h2r_pool_mem(r->pool)) != 0)
    return -1;
  if (nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, set, 3) != 0) return -1;
  if (nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, H2R_CONN_WINDOW) != 0)
    return -1;
  return uv_read_start((uv_stream_t *)&c->pipe, conn_alloc_cb, conn_read_cb) < 0 ? -1 : 0;
}

void h2r_conn_reading(h2r_conn *c, bool on) {
  if (on)
    uv_read_start((uv_stream_t *)&c->pipe, conn_alloc_cb, conn_read_cb);
  else
    uv_read_stop((uv_stream_t *)&c->pipe);
}

/* ---- the accept side: shedding, the reserve descriptor, the sweep ---- */

static void handle_free_cb(uv_handle_t *h) { free(h); }

static void sweep_cb(uv_timer_t *t);

static void sweep_arm(h2r *r) {
  if (!uv_is_active((uv_handle_t *)r->sweep))
    uv_timer_start(r->sweep, sweep_cb, r->sweep_ms, r->sweep_ms);
}

/* Accepts the pending connection and closes it at once: while a connection
 * is pending, libuv polls the listener no more, so leaving it there would
 * stall the listener. Without even the memory for a handle, the sweep tries
 * again (shed_pending). */
static void shed(h2r *r) {
  uv_pipe_t *p = malloc(sizeof *p);
  if (!p) {
    r->shed_pending = true;
    sweep_arm(r);
    return;
  }
  uv_pipe_init(r->loop, p, 0);
  uv_accept((uv_stream_t *)&r->listener, (uv_stream_t *)p);
  uv_close((uv_handle_t *)p, handle_free_cb);
}

/* libuv reports a failed accept. libuv 1.44's uv__server_io then accepts
 * again at once, and again, until accept says EAGAIN. On EMFILE/ENFILE it
 * calls back only when its own reserve descriptor (uv__emfile_trick) is
 * gone: another thread took the slot it freed (crihookd has several). And
 * Linux's accept fails with EMFILE before it looks at the backlog, so
 * without a free slot every accept fails alike and the loop spins in
 * uv__server_io for good. The relay's own reserve gives that slot: it
 * accepts and closes what is pending, and the slot stays free, so libuv's
 * next accept says EAGAIN and the loop goes on. The reserve is taken back
 * by the next connection (reserve_fd < 0 there) or the sweep. Should
 * another thread take that slot as well, nothing here can end libuv's loop.
 * Connections libuv sheds itself (its reserve intact) are not reported to
 * the relay, so they are not counted. */
static void accept_failed(h2r *r, int status) {
  r->stats.accept_errors++;
  uv_os_fd_t lfd;
  if ((status != UV_EMFILE && status != UV_ENFILE) ||
      uv_fileno((uv_handle_t *)&r->listener, &lfd) != 0)
    return;
  if (r->reserve_fd >= 0) close(r->reserve_fd);
  r->reserve_fd = -1;
  int fd;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0 || errno == EINTR) {
    if (fd < 0) continue;
    close(fd);
    r->stats.shed++;
  }
}

/* The reserve is spent (accept_failed): take it back before serving a new
 * connection; when even that fails, the descriptors are still used up, so
 * this connection is shed and its slot stays free for the next accept. */
static bool reserve_back(h2r *r) {
  if (r->reserve_fd < 0) r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return r->reserve_fd >= 0;
}

static void on_connection(uv_stream_t *server, int status) {
  h2r *r = server->data;
  if (status < 0) {
    accept_failed(r, status);
    return;
  }
  if (r->closing) return;
  if (!reserve_back(r)) {
    r->stats.shed++;
    shed(r);
    return;
  }
  if (r->stats.open >= r->cfg.max_conns) {
    r->stats.refused_over_cap++;
    shed(r);
    return;
  }
  h2r_conn *c = calloc(1, sizeof *c);
  if (!c) {
    r->stats.shed++;
    shed(r);
    return;
  }
  c->r = r;
  uv_pipe_init(r->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->next = r->conns;
  if (r->conns) r->conns->prev = c;
  r->conns = c;
  r->stats.open++;
  c->born = c->busy_at = uv_now(r->loop);
  sweep_arm(r);
  if (conn_start(r, c) != 0) {
    h2r_conn_close(c);
    return;
  }
  if (!c->v) h2r_flush(c);
}

/* One connection's bounds: the preface, then idleness (no open stream).
 * An idle connection gets GOAWAY(NO_ERROR) and closes once it is written;
 * one sweep later it is closed whatever its peer reads. */
static void conn_sweep(h2r *r, h2r_conn *c, uint64_t now) {
  if (!c->preface_done) {
    if (now - c->born < r->cfg.preface_timeout_ms) return;
    r->stats.closed_preface++;
    h2r_conn_close(c);
    return;
  }
  if (c->idle_goaway) {
    h2r_conn_close(c);
    return;
  }
  if (c->v && h2v_lingering(c->v)) { /* its last answers had a sweep period */
    c->idle_goaway = true;
    return;
  }
  if (conn_busy(c)) {
    c->busy_at = now;
    return;
  }
  if (now - c->busy_at < r->cfg.idle_ms) return;
  r->stats.closed_idle++;
  c->idle_goaway = true;
  if (c->v) {
    h2v_goaway(c->v);
    return;
  }
  nghttp2_session_terminate_session(c->s, NGHTTP2_NO_ERROR);
  h2r_flush(c);
}

/* One sweep timer per relay rather than one uv_timer per connection: the
 * read path then only stores uv_now() (no timer restart per read), a
 * connection carries no second handle to close, and walking the
 * connections once per period (a tenth of the smaller bound, at most 1 s)
 * costs microseconds for thousands of them. The price: each bound is kept
 * to within one period. The timer runs only while there are connections
 * (or a connection waits to be shed). */
static void sweep_cb(uv_timer_t *t) {
  h2r *r = t->data;
  uint64_t now = uv_now(r->loop);
  if (r->shed_pending) {
    r->shed_pending = false;
    shed(r);
  }
  reserve_back(r);
  for (h2r_conn *c = r->conns, *n; c; c = n) {
    n = c->next;
    conn_sweep(r, c, now);
  }
  if (!r->conns && !r->shed_pending) uv_timer_stop(t);
}

static int accept_init(h2r *r, ch_error *err) {
  h2r_config *cfg = &r->cfg;
  if (!cfg->preface_timeout_ms) cfg->preface_timeout_ms = H2R_PREFACE_TIMEOUT_MS;
  if (!cfg->idle_ms) cfg->idle_ms = H2R_IDLE_MS;
  if (!cfg->max_conns) cfg->max_conns = H2R_MAX_CONNS;
  unsigned low = cfg->preface_timeout_ms < cfg->idle_ms ? cfg->preface_timeout_ms : cfg->idle_ms;
  r->sweep_ms = low / 10 < 10 ? 10 : low / 10 > 1000 ? 1000 : low / 10;
  r->sweep = malloc(sizeof *r->sweep);
  if (!r->sweep) return ch_fail(err, "relay: out of memory");
  uv_timer_init(r->loop, r->sweep);
  r->sweep->data = r;
  uv_unref((uv_handle_t *)r->sweep); /* never keeps a loop alive by itself */
  r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return 0;
}

static void accept_fini(h2r *r) {
  uv_close((uv_handle_t *)r->sweep, handle_free_cb);
  if (r->reserve_fd >= 0) close(r->reserve_fd);
}

void h2r_stats(const h2r *r, h2r_counters *out) { *out = r->stats; }

/* ---- the relay ---- */

static void relay_free_cb(uv_handle_t *h) {
  h2r *r = h->data;
  nghttp2_session_callbacks_del(r->server_cbs);
  nghttp2_session_callbacks_del(r->client_cbs);
  nghttp2_option_del(r->opt);
  nghttp2_option_del(r->sopt);
  free(r->listen_path);
  free(r->scratch);
  free(r->segs);
  free(r->bufs);
  free(r->slab);
  h2r_pool_free_all(r->pool); /* every session and stream is gone by now */
  for (int i = 1; i < H2R_ROUTES; i++) free(r->route_paths[i]);
  free(r->backend_path);
  free(r);
}

static int relay_init(h2r *r, uv_loop_t *loop, const h2r_config *cfg, ch_error *err) {
  r->loop = loop;
  r->cfg = *cfg;
  r->live_streams = cfg->live_streams ? cfg->live_streams : &r->own_live;
  if (!r->cfg.max_held_bytes) r->cfg.max_held_bytes = 16u << 20;
  r->listen_path = strdup(cfg->listen_path ? cfg->listen_path : "");
  r->backend_path = strdup(cfg->backend_path);
  r->slab = malloc(H2R_READ_SLAB);
  r->pool = h2r_pool_new();
  r->probe_len = cfg->self_probe_header ? strlen(cfg->self_probe_header) : 0;
  if (!r->listen_path || !r->backend_path || !r->slab || !r->pool)
    return ch_fail(err, "out of memory");
  r->cfg.listen_path = r->listen_path;
  r->cfg.backend_path = r->backend_path;
  r->route_paths[0] = r->backend_path;
  for (int i = 1; i < H2R_ROUTES; i++) {
    const char *p = cfg->route_paths[i] ? cfg->route_paths[i] : cfg->backend_path;
    if (!(r->route_paths[i] = strdup(p))) return ch_fail(err, "out of memory");
  }
  if (nghttp2_option_new(&r->opt) != 0 || nghttp2_option_new(&r->sopt) != 0)
    return ch_fail(err, "nghttp2 options: out of memory");
  nghttp2_option *both[] = {r->opt, r->sopt};
  for (int i = 0; i < 2; i++) {
    nghttp2_option_set_no_auto_window_update(both[i], 1);
    /* the relay sends no priority signals and uses none: nghttp2 need not
     * keep closed streams in its RFC 7540 priority tree */
    nghttp2_option_set_no_closed_streams(both[i], 1);
    nghttp2_option_set_max_send_header_block_length(both[i], H2R_MAX_HEADER_BLOCK);
  }
  /* nghttp2's HTTP messaging checks would reset a request whose :authority
   * is not a host (RFC 3986) with PROTOCOL_ERROR, and kubelet's grpc-go
   * sends the socket path there ("/run/containerd/containerd.sock"); the
   * runtime accepts it. The relay passes requests on as they are (it drops
   * connection-specific headers itself) and the runtime judges them. */
  nghttp2_option_set_no_http_messaging(r->sopt, 1);
  if (h2r_callbacks_new(r) != 0) return ch_fail(err, "nghttp2 callbacks: out of memory");
  r->verbatim = cfg->verbatim;
  for (int i = 1; i < H2R_ROUTES; i++) /* one backend connection serves every route */
    if (strcmp(r->route_paths[i], r->backend_path) != 0) r->verbatim = false;
  return 0;
}

int h2r_start(uv_loop_t *loop, const h2r_config *cfg, h2r **out, ch_error *err) {
  h2r *r = calloc(1, sizeof *r);
  if (!r) return ch_fail(err, "relay: out of memory");
  uv_pipe_init(loop, &r->listener, 0);
  r->listener.data = r;
  int rc;
  if (relay_init(r, loop, cfg, err) != 0 || accept_init(r, err) != 0) {
    uv_close((uv_handle_t *)&r->listener, relay_free_cb);
    return -1;
  }
  if (cfg->have_listen_fd) { /* the fd is the listener's from here on */
    if ((rc = uv_pipe_open(&r->listener, cfg->listen_fd)) < 0) close(cfg->listen_fd);
    if (rc < 0 || (rc = uv_listen((uv_stream_t *)&r->listener, 512, on_connection)) < 0) {
      ch_fail(err, "relay: listen on fd %d: %s", cfg->listen_fd, uv_strerror(rc));
      accept_fini(r);
      uv_close((uv_handle_t *)&r->listener, relay_free_cb);
      return -1;
    }
    *out = r;
    return 0;
  }
  if (unlink(r->listen_path) != 0 && errno != ENOENT) {
    ch_fail_errno(err, errno, "relay: remove stale %s", r->listen_path);
    accept_fini(r);
    uv_close((uv_handle_t *)&r->listener, relay_free_cb);
    return -1;
  }
  if ((rc = uv_pipe_bind(&r->listener, r->listen_path)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&r->listener, 512, on_connection)) < 0) {
    ch_fail(err, "relay: listen on unix:%s: %s", r->listen_path, uv_strerror(rc));
    accept_fini(r);
    uv_close((uv_handle_t *)&r->listener, relay_free_cb);
    return -1;
  }
  *out = r;
  return 0;
}

void h2r_close(h2r *r) {
  r->closing = true;
  while (r->conns) h2r_conn_close(r->conns);
  accept_fini(r);
  if (!r->draining)
    uv_close((uv_handle_t *)&r->listener, relay_free_cb);
  else if (r->listener_gone) /* closed by h2r_drain; else its callback frees r */
    relay_free_cb((uv_handle_t *)&r->listener);
}

static void listener_closed_cb(uv_handle_t *h) {
  h2r *r = h->data;
  r->listener_gone = true;
  if (r->closing) relay_free_cb(h);
}

void h2r_drain(h2r *r, const char *msg) {
  if (!r->draining) {
    r->draining = true;
    uv_close((uv_handle_t *)&r->listener, listener_closed_cb);
    for (h2r_conn *c = r->conns; c; c = c->next)
      if (!c->v)
        nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->s), NGHTTP2_NO_ERROR, NULL,
                              0);
  }
  for (h2r_conn *c = r->conns, *n; c; c = n) {
    n = c->next;
    if (c->v) {
      h2v_drain(c->v, msg);
      continue;
    }
    for (h2r_stream *s = c->streams, *sn; s; s = sn) {
      sn = s->next;
      h2r_stream_end_for_drain(s, msg);
    }
    h2r_flush(c);
  }
}

int h2r_live_streams(const h2r *r) { return atomic_load(r->live_streams); }
