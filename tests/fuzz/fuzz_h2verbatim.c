/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_h2verbatim.c: libFuzzer target for relay/'s VERBATIM engine on the
 * client side (relay/h2verbatim.c: the client's frames read one by one and
 * passed through to its own backend connection, its header blocks read by
 * an HPACK decoder mirroring the backend's, intercepted requests eaten and
 * forwarded by the owner, held answers, the client's SETTINGS rewritten
 * for the backend, connection credit translated both ways, a client that
 * stalls on the backend's window). fuzz_h2relay.c covers the terminating
 * engine's client side, fuzz_h2relay_backend.c built as h2verbatim_backend
 * the verbatim engine's backend side.
 *
 * Why a backend here: the verbatim engine needs one that accepts (if the
 * connect fails it hands the connection to the terminating engine,
 * h2r_conn_fallback, which fuzz_h2relay.c already covers). The backend is
 * a listener of this process and a small scripted HTTP/2 server on it:
 * it sends an empty SETTINGS first, ACKs the relay's SETTINGS and PINGs,
 * gives back the credit of every DATA frame (connection and stream
 * WINDOW_UPDATE) and answers each stream whose request ended, by its id
 * (so the input chooses): (id >> 1) % 4 is 0 or 1: headers, one message
 * and trailers; 2: trailers-only grpc-status 5; 3: RST_STREAM(CANCEL).
 * Its header blocks are literals without indexing, as the relay needs of
 * a backend (h2verbatim.c: HEADER_TABLE_SIZE 0). What the relay writes to
 * the client is read and dropped.
 *
 * Input: the bytes a client sends after the connection preface (the
 * preface is added; the seeds start with their SETTINGS frame). Each input
 * is one client connection: the relay connects the backend, which is
 * accepted and greeted; the input is written, and the loop runs (the
 * backend answering) until nothing moved on either socket for a few
 * rounds (no wait in between: a unix socket's bytes are there as soon as
 * written, and the relay runs only in this thread's uv_run); then the client half-closes, and the
 * loop runs until the relay has closed both the client and the backend connection (it does on the
 * client's EOF). The loop then runs the close callbacks, so a leaked stream
 * or connection is reported by the leak checker, and a relay that never
 * closes either connection aborts the run. Streams whose path ends in
 * "Hook" are intercepted by the scripted owner of h2relay_fuzz.h. The
 * seeds in corpus/h2verbatim/ are those of h2relay (fuzz_h2relay.c) and a
 * few of the verbatim engine's own (make_seeds.py: hooked calls with
 * CONTINUATION, padding, resets, credit, HEADER_TABLE_SIZE, PING, GOAWAY,
 * a dynamic table the client keeps). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define H2R_FUZZ_VERBATIM 1
#include "h2relay_fuzz.h"

#define TARGET "fuzz_h2verbatim"

static uv_loop_t loop;
static struct sockaddr_un relay_addr;
static char backend_path[100];
static int backend_listener = -1;

static void remove_sockets(void) {
  unlink(relay_addr.sun_path);
  unlink(backend_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  backend_listener = h2r_fuzz_start_with_backend(&loop, TARGET, "/tmp/crihook-fuzz-h2v",
                                                 &relay_addr, backend_path, sizeof backend_path);
  atexit(remove_sockets);
  return 0;
}

/* ---- the scripted backend ---- */

typedef struct backend {
  int fd;
  bool eof;          /* the relay closed the backend connection */
  size_t preface;    /* preface bytes still to skip */
  uint8_t hd[9];     /* the frame header being read */
  uint8_t have;      /* of hd */
  uint32_t left;     /* payload bytes of the current frame still to read */
  uint8_t ping[8];   /* a PING's payload */
  uint32_t ping_len; /* of ping */
  int32_t block_sid; /* a HEADERS with END_STREAM whose block goes on: its stream */
  int32_t answered;  /* streams up to this one were answered (ids only grow) */
  uint8_t out[1 << 16];
  size_t out_len, out_off;
} backend;

static void b_put(backend *b, const void *p, size_t n) {
  if (b->out_len + n > sizeof b->out) return; /* the relay is not reading: drop, it ends anyway */
  if (n) memcpy(b->out + b->out_len, p, n);
  b->out_len += n;
}

static void b_frame(backend *b, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *p,
                    size_t n) {
  uint8_t hd[9] = {
      (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
      (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
  if (b->out_len + 9 + n > sizeof b->out) return; /* whole frames only */
  b_put(b, hd, 9);
  b_put(b, p, n);
}

static void b_u32(backend *b, uint8_t type, int32_t sid, uint32_t v) {
  uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  b_frame(b, type, 0, sid, p, 4);
}

/* HPACK literal header field without indexing, new name (RFC 7541 6.2.2). */
static size_t hpack_literal(uint8_t *out, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  out[0] = 0;
  out[1] = (uint8_t)nl;
  memcpy(out + 2, name, nl);
  out[2 + nl] = (uint8_t)vl;
  memcpy(out + 3 + nl, value, vl);
  return 3 + nl + vl;
}

/* The stream's request ended: its answer, chosen by its id. */
static void b_answer(backend *b, int32_t sid) {
  if (sid <= b->answered) return;
  b->answered = sid;
  uint8_t block[256];
  size_t n = 0;
  switch ((sid >> 1) & 3) {
    case 0:
    case 1: {
      static const uint8_t msg[] = {0, 0, 0, 0, 2, 'o', 'k'};
      n += hpack_literal(block + n, ":status", "200");
      n += hpack_literal(block + n, "content-type", "application/grpc");
      b_frame(b, 1 /* HEADERS */, 0x4 /* END_HEADERS */, sid, block, n);
      b_frame(b, 0 /* DATA */, 0, sid, msg, sizeof msg);
      n = hpack_literal(block, "grpc-status", "0");
      b_frame(b, 1, 0x5 /* END_HEADERS | END_STREAM */, sid, block, n);
      break;
    }
    case 2:
      n += hpack_literal(block + n, ":status", "200");
      n += hpack_literal(block + n, "content-type", "application/grpc");
      n += hpack_literal(block + n, "grpc-status", "5");
      n += hpack_literal(block + n, "grpc-message", "not%20found");
      b_frame(b, 1, 0x5, sid, block, n);
      break;
    default:
      b_u32(b, 3 /* RST_STREAM */, sid, 8 /* CANCEL */);
  }
}

/* One whole frame header was read (its payload follows, b->left bytes). */
static void b_frame_begin(backend *b) {
  uint8_t type = b->hd[3], flags = b->hd[4];
  int32_t sid = (int32_t)(((uint32_t)b->hd[5] << 24 | (uint32_t)b->hd[6] << 16 |
                           (uint32_t)b->hd[7] << 8 | b->hd[8]) &
                          0x7fffffffu);
  b->left = (uint32_t)b->hd[0] << 16 | (uint32_t)b->hd[1] << 8 | b->hd[2];
  b->ping_len = 0;
  switch (type) {
    case 0: /* DATA: its credit back, then an answer if it ends the request */
      if (b->left && sid) {
        b_u32(b, 8, 0, b->left);
        b_u32(b, 8, sid, b->left);
      }
      if (flags & 0x1) b_answer(b, sid);
      break;
    case 1: /* HEADERS */
      if ((flags & 0x1) && (flags & 0x4))
        b_answer(b, sid);
      else if (flags & 0x1)
        b->block_sid = sid;
      break;
    case 9: /* CONTINUATION */
      if ((flags & 0x4) && b->block_sid) b_answer(b, b->block_sid);
      if (flags & 0x4) b->block_sid = 0;
      break;
    case 3: /* RST_STREAM: not answered any more */
      if (sid > b->answered) b->answered = sid;
      break;
    case 4: /* SETTINGS */
      if (!(flags & 0x1)) b_frame(b, 4, 0x1, 0, NULL, 0);
      break;
    default:
      break;
  }
}

/* Payload bytes of the current frame (a PING's are kept for its ACK). */
static void b_payload(backend *b, const uint8_t *p, size_t n) {
  if (b->hd[3] == 6 && !(b->hd[4] & 0x1)) {
    for (size_t i = 0; i < n && b->ping_len < sizeof b->ping; i++) b->ping[b->ping_len++] = p[i];
  }
  b->left -= (uint32_t)n;
  if (!b->left && b->hd[3] == 6 && !(b->hd[4] & 0x1) && b->ping_len == 8)
    b_frame(b, 6, 0x1, 0, b->ping, 8);
}

static void b_parse(backend *b, const uint8_t *p, size_t n) {
  size_t skip = n < b->preface ? n : b->preface;
  p += skip, n -= skip, b->preface -= skip;
  while (n) {
    if (b->have < 9) {
      b->hd[b->have++] = *p++, n--;
      if (b->have < 9) continue;
      b_frame_begin(b);
    } else {
      size_t m = n < b->left ? n : b->left;
      b_payload(b, p, m);
      p += m, n -= m;
    }
    if (!b->left) b->have = 0;
  }
}

/* Reads what the relay wrote, answers, writes what it can; bytes moved. */
static size_t b_service(backend *b) {
  size_t moved = 0;
  uint8_t buf[65536];
  while (!b->eof) {
    ssize_t n = read(b->fd, buf, sizeof buf);
    if (n > 0) {
      b_parse(b, buf, (size_t)n);
      moved += (size_t)n;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) b->eof = true;
    break;
  }
  while (b->out_off < b->out_len) {
    ssize_t n = write(b->fd, b->out + b->out_off, b->out_len - b->out_off);
    if (n <= 0) break;
    b->out_off += (size_t)n;
    moved += (size_t)n;
  }
  if (b->out_off == b->out_len) b->out_off = b->out_len = 0;
  return moved;
}

/* ---- one input ---- */

/* Reads and drops what is there; bytes read, and *eof once the peer closed. */
static size_t c_drain(int fd, bool *eof) {
  char buf[65536];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) *eof = true;
    return got;
  }
}

static void step(int a, int b) {
  uv_run(&loop, UV_RUN_NOWAIT);
  struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  poll(p, b < 0 ? 1 : 2, 1);
}

/* Runs the loop until the relay connected to the backend; its socket. */
static int backend_accept(int cfd) {
  bool eof = false;
  for (int i = 0; i < 2000; i++) {
    int bfd = accept4(backend_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (bfd >= 0) return bfd;
    c_drain(cfd, &eof);
    step(cfd, -1);
  }
  fprintf(stderr, TARGET ": the relay never connected to the backend\n");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static backend b;
  if (size > 32768) return 0; /* stays within the socket buffer: no blocking */
  int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (cfd < 0 || connect(cfd, (struct sockaddr *)&relay_addr, sizeof relay_addr) != 0) abort();
  if (write(cfd, preface, sizeof preface - 1) != (ssize_t)(sizeof preface - 1)) abort();
  if (size && write(cfd, data, size) != (ssize_t)size) abort();
  b = (backend){.fd = backend_accept(cfd), .preface = 24};
  b_frame(&b, 4 /* SETTINGS */, 0, 0, NULL, 0);
  bool ceof = false;
  /* the conversation, until it is quiet (or the relay closed the client) */
  for (int i = 0, idle = 0; i < 4000 && idle < 4 && !ceof; i++) {
    size_t moved = b_service(&b) + c_drain(cfd, &ceof);
    uv_run(&loop, UV_RUN_NOWAIT); /* what moved on a socket is there at once (unix sockets) */
    moved += b_service(&b) + c_drain(cfd, &ceof);
    idle = moved ? 0 : idle + 1;
  }
  shutdown(cfd, SHUT_WR);
  for (int i = 0; !ceof || !b.eof; i++) {
    if (i == 4000) {
      fprintf(stderr, TARGET ": the relay did not close the %s connection\n",
              ceof ? "backend" : "client");
      abort();
    }
    b_service(&b);
    c_drain(cfd, &ceof);
    if (!ceof || !b.eof) step(cfd, b.eof ? -1 : b.fd);
  }
  close(b.fd);
  close(cfd);
  for (int i = 0; i < 4; i++) uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
