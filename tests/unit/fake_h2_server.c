/* SPDX-License-Identifier: Apache-2.0 */
/* fake_h2_server.c: a scriptable, misbehaving gRPC server on raw nghttp2
 * (fake_h2_server.h).
 *
 * One thread polls the listen socket, a self-pipe (written by fh2_stop) and
 * every accepted connection; each connection has its own nghttp2 server
 * session fed by mem_recv, whose frames leave through mem_send into the
 * connection's output buffer. A stream is answered when its request ends
 * (END_STREAM from the client), by the mode in effect at that moment: the
 * mode and its parameters are copied into the stream then, so a test may
 * change them between calls without touching a call in flight.
 *
 * "The last request" is the one whose END_STREAM came last (any connection):
 * its request header block (not request trailers) and its DATA (the first
 * BODY_CAP bytes) are copied then; a stream reset before its end leaves no
 * record. Until set: grpc-status 0 with no message, size 0, one streamed
 * message with no pause. A client that does not speak HTTP/2 is closed.
 *
 * Ownership: the thread owns the connections and their streams (a stream is
 * freed when nghttp2 closes it, or with its connection: nghttp2_session_del
 * does not report the streams it drops). The mutex guards the settings, the
 * counters and the last request's copy, which is all the test thread reads.
 *
 * Answers with a body share one data source: a buffer, then a run of 'x'
 * (FH2_BIG's payload, made as it is sent, so its size costs no memory), then
 * more copies of the buffer when they are due (FH2_STREAM: the source defers
 * until then, and the poll timeout is the nearest due time). Output is made
 * only while the connection's buffer is below OUT_HIGH, so a big answer to a
 * slow reader waits in nghttp2 (and its flow control) rather than here. */
#include "fake_h2_server.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "test_clock.h"

#define BODY_CAP (16u << 20) /* the request DATA kept per stream */
#define OUT_HIGH (1u << 20)  /* stop making frames above this much unsent */
#define GARBAGE "HTTP/1.1 400 Bad Request\r\n\r\nnot http2 at all"

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

typedef struct fh2_conn fh2_conn;

typedef struct fh2_stream {
  int32_t id;
  buf headers; /* the request's header block: "name\0value\0" pairs */
  buf body;    /* the request's DATA (at most BODY_CAP bytes) */
  buf answer;  /* the answer's DATA: answer.p[off..len), then */
  size_t off;
  size_t xs;       /* this many 'x', then */
  int left;        /* this many more copies of answer, one due at due_ms, */
  int interval_ms; /* the next interval_ms later */
  int64_t due_ms;
  bool deferred; /* the source returned NGHTTP2_ERR_DEFERRED */
  bool trailers; /* end with trailers grpc-status 0 (else END_STREAM on DATA) */
  struct fh2_stream *next;
} fh2_stream;

struct fh2_conn {
  fake_h2 *s;
  int fd;
  nghttp2_session *session;
  buf out; /* unsent bytes: out.p[out_off..out.len) */
  size_t out_off;
  fh2_stream *streams;
  bool dead;   /* close now, unsent bytes dropped */
  bool goaway; /* our GOAWAY went out: stay until the client closes */
  fh2_conn *next;
};

/* A copy of the settings, taken when a request ends. */
typedef struct fh2_script {
  fh2_mode mode;
  int grpc_status;
  char *message; /* owned copy, or NULL */
  size_t size;
  int stream_n, interval_ms;
} fh2_script;

struct fake_h2 {
  char *path;
  int listen_fd;
  int wake[2]; /* self-pipe: fh2_stop writes, the thread wakes and leaves */
  pthread_t thread;
  fh2_conn *conns; /* the thread's only */
  pthread_mutex_t mu;
  fh2_script script; /* under mu, like everything below */
  int requests, resets, connections;
  buf last_headers, last_body;
};

/* ---- small helpers ---- */

static void buf_add(buf *b, const void *p, size_t n) {
  if (n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) abort();
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void buf_free(buf *b) {
  free(b->p);
  *b = (buf){0};
}

static nghttp2_nv nv(const char *name, const char *value) {
  return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                      NGHTTP2_NV_FLAG_NONE};
}

/* The gRPC message prefix: flag byte, 4-byte big-endian length. */
static void add_prefix(buf *b, uint8_t flag, size_t len) {
  uint32_t n = (uint32_t)len;
  uint8_t p[5] = {flag, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  buf_add(b, p, sizeof p);
}

/* ---- streams ---- */

static void stream_free(fh2_stream *st) {
  buf_free(&st->headers);
  buf_free(&st->body);
  buf_free(&st->answer);
  free(st);
}

static void stream_unlink(fh2_conn *c, fh2_stream *st) {
  for (fh2_stream **pp = &c->streams; *pp; pp = &(*pp)->next)
    if (*pp == st) {
      *pp = st->next;
      return;
    }
}

/* Counts the request and keeps a copy of its headers and DATA as the last. */
static fh2_script record_request(fake_h2 *s, const fh2_stream *st) {
  pthread_mutex_lock(&s->mu);
  s->requests++;
  s->last_headers.len = 0;
  buf_add(&s->last_headers, st->headers.p, st->headers.len);
  s->last_body.len = 0;
  buf_add(&s->last_body, st->body.p, st->body.len);
  fh2_script sc = s->script;
  if (sc.mode == FH2_GOAWAY_ONCE) { /* the mode goes on as FH2_OK */
    sc.mode = FH2_GOAWAY;
    s->script.mode = FH2_OK;
  }
  sc.message = s->script.message ? strdup(s->script.message) : NULL;
  pthread_mutex_unlock(&s->mu);
  return sc;
}

/* ---- answers ---- */

static void submit_trailers_ok(nghttp2_session *session, int32_t id) {
  nghttp2_nv t[] = {nv("grpc-status", "0")};
  nghttp2_submit_trailer(session, id, t, 1);
}

/* Copies what is pending of st's answer (buffer, then 'x's) into dst. */
static size_t take(fh2_stream *st, uint8_t *dst, size_t length) {
  size_t n = st->answer.len - st->off;
  if (n > length) n = length;
  if (n) memcpy(dst, st->answer.p + st->off, n);
  st->off += n;
  size_t k = length - n < st->xs ? length - n : st->xs;
  memset(dst + n, 'x', k);
  st->xs -= k;
  return n + k;
}

static bool drained(const fh2_stream *st) { return st->off == st->answer.len && st->xs == 0; }

static ssize_t read_answer(nghttp2_session *session, int32_t id, uint8_t *dst, size_t length,
                           uint32_t *flags, nghttp2_data_source *source, void *user_data) {
  fh2_stream *st = source->ptr;
  (void)user_data;
  if (drained(st) && st->left > 0) {
    int64_t now = now_ms();
    if (now < st->due_ms) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    st->off = 0;
    st->left--;
    st->due_ms = now + st->interval_ms;
  }
  size_t n = take(st, dst, length);
  if (drained(st) && st->left == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      submit_trailers_ok(session, id);
    }
  }
  return (ssize_t)n;
}

/* :status 200, content-type application/grpc, then st's answer as DATA. */
static void submit_answer(fh2_conn *c, fh2_stream *st) {
  nghttp2_nv h[] = {nv(":status", "200"), nv("content-type", "application/grpc")};
  nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_answer};
  nghttp2_submit_response(c->session, st->id, h, 2, &dp);
}

static void submit_status(fh2_conn *c, int32_t id, int grpc_status, const char *message) {
  char code[16];
  snprintf(code, sizeof code, "%d", grpc_status);
  nghttp2_nv h[] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                    nv("grpc-status", code), nv("grpc-message", message ? message : "")};
  nghttp2_submit_response(c->session, id, h, message ? 4 : 3, NULL);
}

static void submit_503(fh2_conn *c, int32_t id) {
  nghttp2_nv h[] = {nv(":status", "503")};
  nghttp2_submit_response(c->session, id, h, 1, NULL);
}

/* The request's DATA as is, or an empty message if it had none. */
static void add_echo(buf *b, const fh2_stream *st) {
  if (st->body.len)
    buf_add(b, st->body.p, st->body.len);
  else
    add_prefix(b, 0, 0);
}

/* Fills st's answer for the modes that send DATA; false for the others. */
static bool plan_body(fh2_stream *st, const fh2_script *sc) {
  static const uint8_t truncated[3] = {0, 0, 0};
  st->trailers = sc->mode != FH2_NO_STATUS;
  switch (sc->mode) {
    case FH2_OK:
    case FH2_NO_STATUS:
      add_echo(&st->answer, st);
      return true;
    case FH2_TWO_MESSAGES:
      add_echo(&st->answer, st);
      add_echo(&st->answer, st);
      return true;
    case FH2_BIG:
      add_prefix(&st->answer, 0, sc->size);
      st->xs = sc->size;
      return true;
    case FH2_STREAM:
      add_echo(&st->answer, st);
      st->off = st->answer.len; /* nothing until the first is due */
      st->left = sc->stream_n > 0 ? sc->stream_n : 0;
      st->interval_ms = sc->interval_ms > 0 ? sc->interval_ms : 0;
      st->due_ms = now_ms() + st->interval_ms;
      return true;
    case FH2_BAD_FRAMING:
      buf_add(&st->answer, truncated, sizeof truncated);
      return true;
    case FH2_COMPRESSED:
      add_prefix(&st->answer, 1, 3);
      buf_add(&st->answer, "abc", 3);
      return true;
    default:
      return false;
  }
}

/* The client ended st's request: record it, answer it by the mode now. */
static void request_end(fh2_conn *c, fh2_stream *st) {
  fh2_script sc = record_request(c->s, st);
  if (plan_body(st, &sc))
    submit_answer(c, st);
  else if (sc.mode == FH2_STATUS)
    submit_status(c, st->id, sc.grpc_status, sc.message);
  else if (sc.mode == FH2_HTTP_503)
    submit_503(c, st->id);
  else if (sc.mode == FH2_RST)
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  else if (sc.mode == FH2_GOAWAY) {
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    c->goaway = true;
  } else if (sc.mode == FH2_CLOSE)
    c->dead = true;
  /* FH2_HANG (and FH2_GARBAGE, which never gets here): nothing */
  free(sc.message);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  fh2_conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  fh2_stream *st = calloc(1, sizeof *st);
  if (!st) abort();
  st->id = frame->hd.stream_id;
  st->next = c->streams;
  c->streams = st;
  nghttp2_session_set_stream_user_data(session, st->id, st);
  return 0;
}

/* Keeps the request's header block only (not request trailers). */
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  fh2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!st) return 0;
  buf_add(&st->headers, name, namelen);
  buf_add(&st->headers, "", 1);
  buf_add(&st->headers, value, valuelen);
  buf_add(&st->headers, "", 1);
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user_data) {
  (void)flags;
  (void)user_data;
  fh2_stream *st = nghttp2_session_get_stream_user_data(session, id);
  if (!st || st->body.len >= BODY_CAP) return 0;
  if (len > BODY_CAP - st->body.len) len = BODY_CAP - st->body.len;
  buf_add(&st->body, data, len);
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  fh2_conn *c = user_data;
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    pthread_mutex_lock(&c->s->mu);
    c->s->resets++;
    pthread_mutex_unlock(&c->s->mu);
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  fh2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (st) request_end(c, st);
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code,
                           void *user_data) {
  fh2_conn *c = user_data;
  (void)error_code;
  fh2_stream *st = nghttp2_session_get_stream_user_data(session, id);
  if (!st) return 0;
  nghttp2_session_set_stream_user_data(session, id, NULL);
  stream_unlink(c, st);
  stream_free(st);
  return 0;
}

static nghttp2_session *session_new(fh2_conn *c) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session *session = NULL;
  int rv = nghttp2_session_server_new(&session, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return NULL;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 1);
  return session;
}

/* ---- connections ---- */

/* Closes fd after reading what it holds: closing a unix socket with unread
 * bytes makes the peer's next read fail with ECONNRESET instead of EOF. */
static void drain_and_close(int fd) {
  uint8_t in[4096];
  while (recv(fd, in, sizeof in, MSG_DONTWAIT) > 0) {
  }
  close(fd);
}

static void conn_free(fh2_conn *c) {
  if (c->session) nghttp2_session_del(c->session); /* does not close streams */
  while (c->streams) {
    fh2_stream *st = c->streams;
    c->streams = st->next;
    stream_free(st);
  }
  drain_and_close(c->fd);
  buf_free(&c->out);
  free(c);
}

/* Writes what is unsent; false if the socket failed. */
static bool conn_flush(fh2_conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    c->out_off += (size_t)n;
  }
  c->out.len = c->out_off = 0;
  return true;
}

/* Moves frames from the session to the socket while the buffer has room. */
static void conn_pump(fh2_conn *c) {
  for (;;) {
    size_t before = c->out.len;
    while (c->out.len - c->out_off < OUT_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(c->session, &data);
      if (n < 0) {
        c->dead = true;
        return;
      }
      if (n == 0) break;
      buf_add(&c->out, data, (size_t)n);
    }
    bool produced = c->out.len != before;
    if (!conn_flush(c)) {
      c->dead = true;
      return;
    }
    if (!produced || c->out.len) return; /* nothing more, or socket full */
  }
}

/* Reads until the socket would block; marks c dead on EOF, error or bytes
 * nghttp2 refuses (a client that does not speak HTTP/2). */
static void conn_read(fh2_conn *c) {
  uint8_t in[16384];
  while (!c->dead) {
    ssize_t n = recv(c->fd, in, sizeof in, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0 || nghttp2_session_mem_recv(c->session, in, (size_t)n) < 0) c->dead = true;
  }
}

/* Done once nghttp2 has nothing to read or write (it ended the session),
 * unless it is our FH2_GOAWAY: then the client is the one to close. */
static bool conn_finished(fh2_conn *c) {
  if (c->dead) return true;
  if (c->goaway || c->out.len) return false;
  return !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session);
}

static void conn_resume_due(fh2_conn *c, int64_t now) {
  for (fh2_stream *st = c->streams; st; st = st->next)
    if (st->deferred && st->due_ms <= now) {
      st->deferred = false;
      nghttp2_session_resume_data(c->session, st->id);
    }
}

static void send_garbage(int fd) {
  ssize_t n = send(fd, GARBAGE, sizeof GARBAGE - 1, MSG_NOSIGNAL);
  (void)n;
  drain_and_close(fd);
}

static void accept_one(fake_h2 *s, int fd) {
  pthread_mutex_lock(&s->mu);
  s->connections++;
  fh2_mode mode = s->script.mode;
  pthread_mutex_unlock(&s->mu);
  if (mode == FH2_GARBAGE) {
    send_garbage(fd);
    return;
  }
  fh2_conn *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->s = s;
  c->fd = fd;
  c->session = session_new(c);
  if (!c->session) {
    conn_free(c);
    return;
  }
  c->next = s->conns;
  s->conns = c;
  conn_pump(c);
}

static void accept_all(fake_h2 *s) {
  for (;;) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && errno == EINTR) continue;
    if (fd < 0) return;
    accept_one(s, fd);
  }
}

/* ---- the thread ---- */

/* Milliseconds until the nearest deferred stream is due; -1: none. */
static int poll_timeout(fake_h2 *s, int64_t now) {
  int64_t best = -1;
  for (fh2_conn *c = s->conns; c; c = c->next)
    for (fh2_stream *st = c->streams; st; st = st->next) {
      if (!st->deferred) continue;
      int64_t wait = st->due_ms > now ? st->due_ms - now : 0;
      if (best < 0 || wait < best) best = wait;
    }
  return best > 60000 ? 60000 : (int)best;
}

static size_t count_conns(fake_h2 *s) {
  size_t n = 0;
  for (fh2_conn *c = s->conns; c; c = c->next) n++;
  return n;
}

/* Fills fds (wake pipe, listener, then one per connection, in list order). */
static void fill_pollfds(fake_h2 *s, struct pollfd *fds) {
  fds[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
  fds[1] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
  size_t i = 2;
  for (fh2_conn *c = s->conns; c; c = c->next, i++)
    fds[i] = (struct pollfd){.fd = c->fd, .events = POLLIN | (c->out.len ? POLLOUT : 0)};
}

/* Serves the connections poll reported on (in fds order), and the due ones. */
static void serve_conns(fake_h2 *s, const struct pollfd *fds, size_t n) {
  int64_t now = now_ms();
  size_t i = 0;
  for (fh2_conn **pp = &s->conns; *pp; i++) {
    fh2_conn *c = *pp;
    short re = i < n ? fds[i].revents : 0;
    if (re & (POLLIN | POLLHUP | POLLERR)) conn_read(c);
    if (!c->dead) {
      conn_resume_due(c, now);
      conn_pump(c);
    }
    if (conn_finished(c)) {
      *pp = c->next;
      conn_free(c);
    } else {
      pp = &c->next;
    }
  }
}

static void *serve(void *arg) {
  fake_h2 *s = arg;
  for (;;) {
    size_t n = count_conns(s);
    struct pollfd *fds = calloc(n + 2, sizeof *fds);
    if (!fds) abort();
    fill_pollfds(s, fds);
    int rv = poll(fds, n + 2, poll_timeout(s, now_ms()));
    if (rv < 0 && errno != EINTR) abort();
    bool stop = rv > 0 && fds[0].revents;
    if (!stop) serve_conns(s, fds + 2, n); /* before accepting: same order */
    if (!stop && rv > 0 && fds[1].revents) accept_all(s);
    free(fds);
    if (stop) break;
  }
  while (s->conns) {
    fh2_conn *c = s->conns;
    s->conns = c->next;
    conn_free(c);
  }
  return NULL;
}

/* ---- the API ---- */

static int listen_unix(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void destroy(fake_h2 *s) {
  if (s->listen_fd >= 0) close(s->listen_fd);
  if (s->wake[0] >= 0) close(s->wake[0]);
  if (s->wake[1] >= 0) close(s->wake[1]);
  pthread_mutex_destroy(&s->mu);
  free(s->script.message);
  buf_free(&s->last_headers);
  buf_free(&s->last_body);
  free(s->path);
  free(s);
}

fake_h2 *fh2_start(const char *path, fh2_mode mode) {
  fake_h2 *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->wake[0] = s->wake[1] = -1;
  pthread_mutex_init(&s->mu, NULL);
  s->script = (fh2_script){.mode = mode, .size = 0, .stream_n = 1};
  s->path = strdup(path);
  s->listen_fd = s->path ? listen_unix(path) : -1;
  if (s->listen_fd < 0 || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    destroy(s);
    return NULL;
  }
  if (pthread_create(&s->thread, NULL, serve, s) != 0) {
    unlink(s->path);
    destroy(s);
    return NULL;
  }
  return s;
}

void fh2_stop(fake_h2 *s) {
  if (!s) return;
  ssize_t n;
  do n = write(s->wake[1], "x", 1);
  while (n < 0 && errno == EINTR);
  pthread_join(s->thread, NULL);
  unlink(s->path);
  destroy(s);
}

void fh2_set_mode(fake_h2 *s, fh2_mode mode) {
  pthread_mutex_lock(&s->mu);
  s->script.mode = mode;
  pthread_mutex_unlock(&s->mu);
}

void fh2_set_status(fake_h2 *s, int grpc_status, const char *message) {
  char *copy = message ? strdup(message) : NULL;
  if (message && !copy) abort();
  pthread_mutex_lock(&s->mu);
  s->script.grpc_status = grpc_status;
  free(s->script.message);
  s->script.message = copy;
  pthread_mutex_unlock(&s->mu);
}

void fh2_set_size(fake_h2 *s, size_t bytes) {
  pthread_mutex_lock(&s->mu);
  s->script.size = bytes;
  pthread_mutex_unlock(&s->mu);
}

void fh2_set_stream(fake_h2 *s, int n, int interval_ms) {
  pthread_mutex_lock(&s->mu);
  s->script.stream_n = n;
  s->script.interval_ms = interval_ms;
  pthread_mutex_unlock(&s->mu);
}

static int read_count(fake_h2 *s, const int *field) {
  pthread_mutex_lock(&s->mu);
  int n = *field;
  pthread_mutex_unlock(&s->mu);
  return n;
}

int fh2_requests(fake_h2 *s) { return read_count(s, &s->requests); }
int fh2_resets(fake_h2 *s) { return read_count(s, &s->resets); }
int fh2_connections(fake_h2 *s) { return read_count(s, &s->connections); }

/* The first field called name (any case) in a "name\0value\0" list. */
static const char *find_header(const buf *h, const char *name) {
  if (h->len == 0) return "";
  const char *p = (const char *)h->p, *end = p + h->len;
  while (p < end) {
    const char *value = p + strlen(p) + 1;
    if (strcasecmp(p, name) == 0) return value;
    p = value + strlen(value) + 1;
  }
  return "";
}

void fh2_last_header(fake_h2 *s, const char *name, char *out, size_t len) {
  if (len == 0) return;
  pthread_mutex_lock(&s->mu);
  snprintf(out, len, "%s", find_header(&s->last_headers, name));
  pthread_mutex_unlock(&s->mu);
}

size_t fh2_last_body(fake_h2 *s, uint8_t *out, size_t len) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->last_body.len;
  if (out && n && len) memcpy(out, s->last_body.p, n < len ? n : len);
  pthread_mutex_unlock(&s->mu);
  return n;
}
