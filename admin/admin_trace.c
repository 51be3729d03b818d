/* SPDX-License-Identifier: Apache-2.0 */
/* admin_trace.c: the trace streams of admin_trace.h.
 *
 * One trace_conn per client: its own pipe (a dup of the admin connection's
 * socket), a uv_async_t the hub pokes when an event arrives for an idle
 * watcher, a timer, and the hub watcher. The poke takes what is queued and
 * starts the timer; every TICK_MS the timer takes what came since (up to
 * BATCH events: each becomes its JSON line, all written with one uv_write),
 * until a take finds nothing: then the watcher is idle again and the timer
 * stops. So a busy stream wakes the loop ~1000/TICK_MS times a second
 * whatever the call rate, and shows a call at most TICK_MS late. While a
 * write is in flight nothing is taken, so a client that reads slowly lets
 * its ring fill and the hub drops (and counts) what does not fit: the data
 * plane never waits.
 *
 * A conn is freed when its three handles have closed; it ends when the
 * client closes (read EOF or error), a write fails, or ch_trace_shutdown(). */
#include "admin_trace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "percent.h"
#include "trace.h"

#define RING_CAPACITY 4096 /* events queued per client */
#define BATCH 256          /* events per write */
#define TICK_MS 20         /* how often a busy stream is written */

typedef struct trace_conn {
  uv_pipe_t pipe;
  uv_async_t wake;
  uv_timer_t tick;
  ch_trace_watcher *watcher;
  uv_write_t write;
  char *lines[BATCH + 1]; /* owned while written */
  size_t line_count;
  bool writing, closing;
  bool more; /* the last take filled a batch: take again once written */
  int open_handles;
  uint64_t sent, dropped;
  struct trace_conn *next, *prev; /* every open stream, for shutdown */
  char discard[256];              /* what the client sends is ignored */
} trace_conn;

static trace_conn *conns;
static bool stopped; /* after ch_trace_shutdown: no new streams */

static const char header[] =
    "HTTP/1.0 200 OK\r\nContent-Type: application/x-ndjson\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n";

/* ---- the query ---- */

/* Decodes %XX and '+' in place. */
static int url_decode(char *s, ch_error *err) {
  size_t len = strlen(s);
  if (ch_percent_decode(s, len, s, len + 1, CH_PCT_QUERY) != 0)
    return ch_fail(err, "bad %%-escape in the query");
  return 0;
}

/* Splits "?method=a&pod=b" (copied into buf) into the filter. */
static int parse_query(const char *query, char *buf, size_t size, ch_trace_filter *f,
                       ch_error *err) {
  memset(f, 0, sizeof *f);
  if (*query == '?') query++;
  if (snprintf(buf, size, "%s", query) >= (int)size) return ch_fail(err, "query too long");
  char *save = NULL;
  for (char *pair = strtok_r(buf, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
    char *value = strchr(pair, '=');
    if (value) *value++ = '\0';
    if (url_decode(pair, err) != 0 || (value && url_decode(value, err) != 0)) return -1;
    if (strcmp(pair, "method") == 0)
      f->method = value;
    else if (strcmp(pair, "pod") == 0)
      f->pod = value;
    else
      return ch_fail(err, "unknown parameter \"%s\" (want method, pod)", pair);
  }
  return 0;
}

/* ---- teardown ---- */

static void free_lines(trace_conn *c) {
  for (size_t i = 0; i < c->line_count; i++) free(c->lines[i]);
  c->line_count = 0;
}

static void on_handle_closed(uv_handle_t *h) {
  trace_conn *c = h->data;
  if (--c->open_handles == 0) {
    free_lines(c);
    free(c);
  }
}

static void close_handles(trace_conn *c) {
  uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
  uv_close((uv_handle_t *)&c->wake, on_handle_closed);
  uv_close((uv_handle_t *)&c->tick, on_handle_closed);
}

static void close_conn(trace_conn *c, const char *why) {
  if (c->closing) return;
  c->closing = true;
  if (c->prev)
    c->prev->next = c->next;
  else if (conns == c)
    conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->watcher) {
    ch_trace_unwatch(c->watcher); /* no wake-up after this */
    c->watcher = NULL;
    ch_info("trace", "trace watcher detached reason=\"%s\" sent=%llu dropped=%llu", why,
            (unsigned long long)c->sent, (unsigned long long)c->dropped);
  }
  close_handles(c);
}

void ch_trace_shutdown(void) {
  stopped = true; /* an admin request still being read must not start one */
  while (conns) close_conn(conns, "crihookd is stopping");
}

/* ---- streaming ---- */

static size_t flush(trace_conn *c);

static void on_written(uv_write_t *w, int status) {
  trace_conn *c = w->data;
  c->writing = false;
  free_lines(c);
  if (status < 0)
    close_conn(c, uv_strerror(status));
  else if (c->more && !c->closing)
    flush(c); /* do not wait a tick */
}

static void write_lines(trace_conn *c) {
  uv_buf_t bufs[BATCH + 1];
  for (size_t i = 0; i < c->line_count; i++)
    bufs[i] = uv_buf_init(c->lines[i], (unsigned)strlen(c->lines[i]));
  c->write.data = c;
  c->writing = true;
  int rc = uv_write(&c->write, (uv_stream_t *)&c->pipe, bufs, (unsigned)c->line_count, on_written);
  if (rc != 0) {
    c->writing = false;
    free_lines(c);
    close_conn(c, uv_strerror(rc));
  }
}

/* Takes what the ring holds (up to BATCH events) and writes it; returns
 * how many events were taken or dropped (0: the watcher is idle now). */
static size_t flush(trace_conn *c) {
  if (c->writing || c->closing) return 1;
  ch_trace_event *events[BATCH];
  uint64_t dropped;
  size_t n = ch_trace_take(c->watcher, events, BATCH, &dropped);
  c->more = n == BATCH;
  for (size_t i = 0; i < n; i++) {
    char *json = ch_trace_event_json(events[i]);
    ch_trace_event_unref(events[i]);
    if (json)
      c->lines[c->line_count++] = json;
    else
      dropped++;
  }
  c->sent += c->line_count;
  c->dropped += dropped;
  if (dropped) {
    char note[48];
    snprintf(note, sizeof note, "{\"dropped\":%llu}\n", (unsigned long long)dropped);
    if ((c->lines[c->line_count] = strdup(note)) != NULL) c->line_count++;
  }
  if (c->line_count) write_lines(c);
  return n + dropped;
}

static void on_tick(uv_timer_t *t) {
  trace_conn *c = t->data;
  if (flush(c) == 0) uv_timer_stop(&c->tick);
}

static void on_wake(uv_async_t *a) {
  trace_conn *c = a->data;
  flush(c);
  if (!c->closing && !uv_is_active((uv_handle_t *)&c->tick))
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
}

/* Called by the hub on a worker thread. */
static void notify(void *arg) {
  trace_conn *c = arg;
  uv_async_send(&c->wake);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  trace_conn *c = h->data;
  *buf = uv_buf_init(c->discard, sizeof c->discard);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n < 0) close_conn(s->data, n == UV_EOF ? "client closed" : uv_strerror((int)n));
}

/* ---- starting ---- */

/* A conn on its own duplicate of the client's socket; NULL on failure. */
static trace_conn *open_conn(uv_stream_t *client, ch_error *err) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)client, &fd) != 0) {
    ch_fail(err, "admin connection has no socket");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  trace_conn *c = copy >= 0 ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    if (copy >= 0) close(copy);
    ch_fail(err, "out of resources for a trace stream");
    return NULL;
  }
  uv_pipe_init(client->loop, &c->pipe, 0);
  uv_async_init(client->loop, &c->wake, on_wake);
  uv_timer_init(client->loop, &c->tick);
  c->pipe.data = c->wake.data = c->tick.data = c;
  c->open_handles = 3;
  int rc = uv_pipe_open(&c->pipe, copy);
  if (rc != 0) {
    close(copy);
    ch_fail(err, "trace stream: %s", uv_strerror(rc));
    c->closing = true;
    close_handles(c);
    return NULL;
  }
  return c;
}

int ch_trace_serve(uv_stream_t *client, const char *query, ch_error *err) {
  char buf[1024];
  ch_trace_filter filter;
  if (stopped) return ch_fail(err, "trace: crihookd is stopping");
  if (parse_query(query, buf, sizeof buf, &filter, err) != 0) return ch_wrap(err, "trace");
  trace_conn *c = open_conn(client, err);
  if (!c) return -1;
  c->next = conns;
  if (conns) conns->prev = c;
  conns = c;
  if ((c->lines[0] = strdup(header)) != NULL)
    c->line_count = 1; /* written once the watcher is attached */
  else
    ch_fail(err, "out of memory");
  if (!c->line_count || ch_trace_watch(&filter, RING_CAPACITY, notify, c, &c->watcher, err) != 0) {
    close_conn(c, "not started");
    return ch_wrap(err, "trace");
  }
  ch_info("trace", "trace watcher attached method=\"%s\" pod=\"%s\"",
          filter.method ? filter.method : "", filter.pod ? filter.pod : "");
  write_lines(c);
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  return 0;
}
