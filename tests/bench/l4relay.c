/* SPDX-License-Identifier: Apache-2.0 */
/* l4relay.c: crihook-l4relay, the floor for one user-space hop in
 * scripts/bench.sh. It accepts on a unix socket, connects to the backend's
 * unix socket once per client connection, and copies bytes both ways with
 * read/write on one epoll loop (one thread, non-blocking sockets). It knows
 * nothing of HTTP/2: whatever any proxy does beyond this is protocol work.
 *
 *   crihook-l4relay [--h2-peek] LISTEN_PATH BACKEND_PATH
 *
 * --h2-peek also reads what a verbatim HTTP/2 relay would have to read
 * (h2peek.h: frame headers, every header block through an HPACK decoder):
 * a request's bytes before they are passed on (a route is chosen from
 * them), an answer's after. Each connection's counts go to stderr when it
 * closes. The floor of the verbatim relay, beside the plain floor.
 *
 * Each direction has one buffer; while it holds bytes the peer did not take,
 * the source is not read (backpressure) and the sink is watched for
 * EPOLLOUT. EOF on one side is passed on as shutdown(SHUT_WR) of the other;
 * a side that hung up entirely (EPOLLHUP) or an error closes both, after
 * what could be read was passed on. Bench-only: no limits, no logging beyond
 * fatal start-up errors. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "h2peek.h"

#define BUF_SIZE (64 * 1024)

typedef struct end end;
typedef struct pipe_dir { /* bytes read from `from`, not yet written to `to` */
  char data[BUF_SIZE];
  size_t off, len;
  int eof;
} pipe_dir;

struct end {
  int fd;
  end *peer;
  pipe_dir in;       /* what this end read, for the peer */
  uint32_t watching; /* the epoll events asked for */
  int closed;
  int client;   /* the client's end (its bytes are requests) */
  h2peek *peek; /* --h2-peek: what is read of this end's bytes */
};

static int ep;
static int peeking;

static int unix_addr(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) return -1;
  strcpy(a->sun_path, path);
  return 0;
}

static void watch(end *e, int op) {
  uint32_t ev = 0;
  if (!e->in.eof && e->in.len == 0) ev |= EPOLLIN;
  if (e->peer->in.len > 0) ev |= EPOLLOUT;
  if (op == EPOLL_CTL_MOD && ev == e->watching) return; /* no syscall when nothing changes */
  e->watching = ev;
  struct epoll_event x = {.events = ev, .data.ptr = e};
  epoll_ctl(ep, op, e->fd, &x);
}

static void peek_report(const end *c) {
  const h2peek *q = c->peek, *a = c->peer->peek;
  fprintf(stderr,
          "h2peek: connection closed: requests: header blocks %lu, :path %lu%s%s; "
          "answers: header blocks %lu, grpc-status %lu%s%s\n",
          q->blocks, q->paths, q->stopped ? ", stopped: " : "", q->stopped ? q->stopped : "",
          a->blocks, a->statuses, a->stopped ? ", stopped: " : "", a->stopped ? a->stopped : "");
}

static void close_pair(end *e) {
  end *p = e->peer;
  if (e->peek) {
    peek_report(e->client ? e : p);
    h2peek_free(e->peek);
    h2peek_free(p->peek);
    free(e->peek);
    free(p->peek);
    e->peek = p->peek = NULL;
  }
  close(e->fd);
  close(p->fd);
  e->closed = p->closed = 1; /* freed by the loop once this round of events is done */
}

/* Writes what `e` holds to its peer; -1 on a fatal error. */
static int flush(end *e) {
  pipe_dir *d = &e->in;
  while (d->len > 0) {
    ssize_t n = write(e->peer->fd, d->data + d->off, d->len);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    d->off += (size_t)n;
    d->len -= (size_t)n;
  }
  d->off = 0;
  if (d->eof) shutdown(e->peer->fd, SHUT_WR);
  return 0;
}

/* Reads what `e` has (while its buffer is empty) and passes it on. A short
 * read means the socket is drained: epoll is level-triggered, so no second
 * read is needed to see EAGAIN. */
static int pump(end *e) {
  pipe_dir *d = &e->in;
  while (!d->eof && d->len == 0) {
    ssize_t n = read(e->fd, d->data, BUF_SIZE);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) d->eof = 1;
    d->off = 0;
    d->len = (size_t)n;
    if (e->peek && e->client) h2peek_feed(e->peek, (const uint8_t *)d->data, (size_t)n);
    if (flush(e) != 0) return -1;
    if (e->peek && !e->client) h2peek_feed(e->peek, (const uint8_t *)d->data, (size_t)n);
    if (n < BUF_SIZE) break;
  }
  return 0;
}

static void on_event(end *e, uint32_t ev) {
  if (e->closed) return;
  int rc = 0;
  if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) rc = flush(e->peer);
  if (rc == 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) rc = pump(e);
  /* EPOLLHUP: this end is gone both ways (what it sent was just read);
   * nothing more can reach it, so the pair ends here. */
  int done = e->in.eof && e->peer->in.eof && !e->in.len && !e->peer->in.len;
  if (rc != 0 || done || (ev & (EPOLLHUP | EPOLLERR))) {
    close_pair(e);
    return;
  }
  watch(e, EPOLL_CTL_MOD);
  watch(e->peer, EPOLL_CTL_MOD);
}

static void on_accept(int lfd, const struct sockaddr_un *backend) {
  int c;
  while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
    int b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b < 0 || connect(b, (const struct sockaddr *)backend, sizeof *backend) != 0 ||
        fcntl(b, F_SETFL, O_NONBLOCK) != 0) {
      perror("crihook-l4relay: backend");
      close(c);
      if (b >= 0) close(b);
      continue;
    }
    end *x = calloc(2, sizeof *x);
    if (!x) abort();
    x[0] = (end){.fd = c, .peer = &x[1], .client = 1};
    x[1] = (end){.fd = b, .peer = &x[0]};
    if (peeking) {
      x[0].peek = malloc(sizeof *x[0].peek);
      x[1].peek = malloc(sizeof *x[1].peek);
      if (!x[0].peek || !x[1].peek || h2peek_init(x[0].peek, 1) != 0 ||
          h2peek_init(x[1].peek, 0) != 0)
        abort();
    }
    watch(&x[0], EPOLL_CTL_ADD);
    watch(&x[1], EPOLL_CTL_ADD);
  }
}

static int listen_on(const char *path) {
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || unix_addr(path, &a) != 0) return -1;
  unlink(path);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) return -1;
  return fd;
}

int main(int argc, char **argv) {
  struct sockaddr_un backend;
  if (argc == 4 && strcmp(argv[1], "--h2-peek") == 0) {
    peeking = 1;
    argv++;
    argc--;
  }
  if (argc != 3 || unix_addr(argv[2], &backend) != 0) {
    fprintf(stderr, "usage: crihook-l4relay [--h2-peek] LISTEN_PATH BACKEND_PATH\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(argv[1]);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (lfd < 0 || ep < 0) {
    perror("crihook-l4relay: listen");
    return 1;
  }
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[64];
  end *dead[128];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    int nd = 0;
    for (int i = 0; i < n; i++) {
      end *e = evs[i].data.ptr;
      if (!e) {
        on_accept(lfd, &backend);
        continue;
      }
      int was = e->closed;
      on_event(e, evs[i].events);
      if (!was && e->closed) dead[nd++] = e < e->peer ? e : e->peer;
    }
    for (int i = 0; i < nd; i++) free(dead[i]);
  }
}
