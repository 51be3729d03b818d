/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_conn.c: one client HTTP/2 connection of crihook's gRPC client
 * (rpc.h): the unix socket, the nghttp2 client session, reads and writes,
 * and what happens to the calls when the connection fails or closes.
 *
 * Writes: everything nghttp2 has to send is copied into one buffer per
 * flush and handed to uv_write. This is a control-path client (requests of
 * a few hundred bytes), so a copy is cheaper than the bookkeeping the
 * relay's zero-copy writes need; what is queued is bounded by the server's
 * flow-control windows.
 *
 * Failure: a connect error, EOF, a read error or bytes nghttp2 refuses
 * (a server that does not speak HTTP/2) mark the conn lost and end every
 * open call with UNAVAILABLE and the reason. GOAWAY marks it lost for new
 * calls; nghttp2 itself refuses the streams past the GOAWAY's last stream
 * (they end UNAVAILABLE) and lets the others finish.
 *
 * SIGPIPE: libuv writes to a unix socket with write(2), which raises
 * SIGPIPE when the server has gone; grpc core, which this client replaces,
 * sends with MSG_NOSIGNAL, so its users never had to care. The first conn
 * therefore sets SIGPIPE to ignored if it is still at its default (a
 * process that handles it keeps its handler); the write then fails with
 * EPIPE and the calls end UNAVAILABLE. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crihook-config.h"
#include "rpc_int.h"

#define STREAM_WINDOW (1 << 20) /* per-stream receive window we advertise */
#define CONN_WINDOW (16 << 20)  /* connection receive window */

typedef struct write_req {
  uv_write_t req;
  size_t len;
  uint8_t data[];
} write_req;

/* ---- failure ---------------------------------------------------------------- */

static void conn_lost(ch_rpc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_lost(ch_rpc_conn *c, const char *fmt, ...) {
  if (!c->lost) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->lost_reason, sizeof c->lost_reason, fmt, ap);
    va_end(ap);
  }
  c->lost = true;
  c->ready = false;
  if (c->connected) uv_read_stop((uv_stream_t *)&c->pipe);
  c->connected = false;
  while (c->calls) rpc_call_end(c->calls, GRPC_STATUS_UNAVAILABLE, true, "%s", c->lost_reason);
}

/* ---- writes ------------------------------------------------------------------- */

/* A write refused because the server has closed the connection reports
 * that, in the words the read of its end of file uses: which of the two
 * the loop sees first is chance (a server that closes right after its
 * answer while the client still owes it a SETTINGS ack or a
 * WINDOW_UPDATE), and the operator should read one cause either way
 * (test_rpc_pool failed once under TSan on "write to the server: broken
 * pipe"). */
static void write_failed(ch_rpc_conn *c, int status) {
  if (status == UV_EPIPE || status == UV_ECONNRESET)
    conn_lost(c, "connection closed by the server (seen writing)");
  else
    conn_lost(c, "write to the server: %s", uv_strerror(status));
}

static void write_cb(uv_write_t *req, int status) {
  ch_rpc_conn *c = req->data;
  free(req);
  if (status < 0 && status != UV_ECANCELED) write_failed(c, status);
}

/* Appends what nghttp2 wants to send to *buf; -1 on a session error. */
static int gather(ch_rpc_conn *c, write_req **buf, size_t *cap) {
  const uint8_t *data;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(c->session, &data)) > 0) {
    size_t used = *buf ? (*buf)->len : 0;
    if (!*buf || used + (size_t)n > *cap) {
      size_t want = (used + (size_t)n) * 2;
      write_req *grown = realloc(*buf, sizeof **buf + want);
      if (!grown) return -1;
      grown->len = used;
      *buf = grown;
      *cap = want;
    }
    memcpy((*buf)->data + (*buf)->len, data, (size_t)n);
    (*buf)->len += (size_t)n;
  }
  return n < 0 ? -1 : 0;
}

void rpc_conn_flush(ch_rpc_conn *c) {
  if (!c->connected || c->closing || c->in_recv) return;
  write_req *w = NULL;
  size_t cap = 0;
  if (gather(c, &w, &cap) < 0) {
    free(w);
    conn_lost(c, "HTTP/2 session failed to produce frames");
    return;
  }
  if (!w) return;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  w->req.data = c;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
  if (rc < 0) {
    free(w);
    write_failed(c, rc);
  }
}

/* ---- reads -------------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  ch_rpc_conn *c = h->data;
  *buf = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  ch_rpc_conn *c = s->data;
  if (n == UV_EOF || n == UV_ECONNRESET) { /* a reset: it closed with our bytes unread */
    conn_lost(c, "connection closed by the server%s", n == UV_ECONNRESET ? " (reset)" : "");
    return;
  }
  if (n < 0) {
    conn_lost(c, "read from the server: %s", uv_strerror((int)n));
    return;
  }
  c->in_recv = true;
  ssize_t used = nghttp2_session_mem_recv(c->session, (const uint8_t *)buf->base, (size_t)n);
  c->in_recv = false;
  if (c->closing) return;
  if (used < 0) {
    conn_lost(c, "the server does not speak HTTP/2 as gRPC wants: %s", nghttp2_strerror((int)used));
    return;
  }
  rpc_conn_flush(c);
}

static void start_reading(ch_rpc_conn *c) {
  c->connected = true;
  int rc = uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
  if (rc < 0) {
    conn_lost(c, "read from the server: %s", uv_strerror(rc));
    return;
  }
  rpc_conn_flush(c);
}

static void connect_cb(uv_connect_t *req, int status) {
  ch_rpc_conn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    conn_lost(c, "connect to %s: %s", c->path, uv_strerror(status));
    return;
  }
  start_reading(c);
}

/* ---- session ------------------------------------------------------------------- */

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)s;
  ch_rpc_conn *c = ud;
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->lost)
    c->ready = true;
  if (f->hd.type == NGHTTP2_GOAWAY) {
    c->lost = true; /* no new calls; streams nghttp2 refused end UNAVAILABLE */
    c->ready = false;
    snprintf(c->lost_reason, sizeof c->lost_reason, "the server sent GOAWAY (%s)",
             nghttp2_http2_strerror(f->goaway.error_code));
  }
  return 0;
}

static int new_session(ch_rpc_conn *c, ch_error *err) {
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) return ch_fail(err, "out of memory");
  rpc_call_callbacks(cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  int rc = nghttp2_session_client_new(&c->session, cb, c);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) return ch_fail(err, "HTTP/2 session: %s", nghttp2_strerror(rc));
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
  };
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
    return ch_fail(err, "HTTP/2 settings: out of memory");
  return 0;
}

/* ---- life ---------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  ch_rpc_conn *c = h->data;
  if (--c->open_handles > 0) return;
  nghttp2_session_del(c->session);
  free(c->path);
  free(c->user_agent);
  free(c->authority);
  free(c);
}

static void later_cb(uv_timer_t *t) { rpc_conn_end_doomed(t->data); }

void rpc_conn_later(ch_rpc_conn *c) { uv_timer_start(&c->later, later_cb, 0, 0); }

static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
}

static ch_rpc_conn *conn_new(uv_loop_t *loop, const ch_rpc_opts *opts, ch_error *err) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, ignore_sigpipe);
  ch_rpc_conn *c = calloc(1, sizeof *c);
  if (!c) {
    ch_fail(err, "out of memory");
    return NULL;
  }
  c->loop = loop;
  c->max_recv = opts && opts->max_recv ? opts->max_recv : CH_RPC_MAX_RECV;
  c->user_agent = strdup(opts && opts->user_agent ? opts->user_agent : "crihook/" CRIHOOK_VERSION);
  c->authority = strdup(opts && opts->authority ? opts->authority : "localhost");
  if (!c->user_agent || !c->authority || new_session(c, err) < 0) {
    if (!c->user_agent || !c->authority) ch_fail(err, "out of memory");
    nghttp2_session_del(c->session);
    free(c->user_agent);
    free(c->authority);
    free(c);
    return NULL;
  }
  uv_pipe_init(loop, &c->pipe, 0);
  uv_timer_init(loop, &c->later);
  c->pipe.data = c->later.data = c->connect_req.data = c;
  c->open_handles = 2;
  return c;
}

int ch_rpc_conn_open(uv_loop_t *loop, const char *path, const ch_rpc_opts *opts, ch_rpc_conn **out,
                     ch_error *err) {
  ch_rpc_conn *c = conn_new(loop, opts, err);
  if (!c) return -1;
  if (!(c->path = strdup(path))) {
    ch_rpc_conn_close(c);
    return ch_fail(err, "out of memory");
  }
  uv_pipe_connect(&c->connect_req, &c->pipe, path, connect_cb);
  *out = c;
  return 0;
}

int ch_rpc_conn_open_fd(uv_loop_t *loop, int fd, const ch_rpc_opts *opts, ch_rpc_conn **out,
                        ch_error *err) {
  ch_rpc_conn *c = conn_new(loop, opts, err);
  if (!c) {
    close(fd);
    return -1;
  }
  int rc = uv_pipe_open(&c->pipe, fd);
  if (rc < 0) {
    close(fd);
    ch_rpc_conn_close(c);
    return ch_fail(err, "use socket %d: %s", fd, uv_strerror(rc));
  }
  start_reading(c);
  *out = c;
  return 0;
}

void ch_rpc_conn_close(ch_rpc_conn *c) {
  if (!c || c->closing) return;
  while (c->calls) rpc_call_end(c->calls, GRPC_STATUS_CANCELLED, true, "connection closed");
  c->closing = true;
  c->lost = true;
  c->ready = false;
  c->connected = false;
  uv_close((uv_handle_t *)&c->pipe, handle_closed);
  uv_close((uv_handle_t *)&c->later, handle_closed);
}

bool ch_rpc_conn_usable(const ch_rpc_conn *c) { return !c->lost && !c->closing; }

bool ch_rpc_conn_ready(const ch_rpc_conn *c) { return c->ready && !c->lost; }

bool ch_rpc_conn_idle(const ch_rpc_conn *c) { return c->calls == NULL; }
