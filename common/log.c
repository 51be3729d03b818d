/* SPDX-License-Identifier: Apache-2.0 */
/* log.c: formats log lines and hands them to a writer thread (see log.h).
 *
 * A caller formats its line; while nothing is queued and stderr is
 * writable (poll), it writes the line itself, so lines appear in order as
 * they happen. Otherwise it copies the line into a bounded buffer under a
 * short lock, and a writer thread writes the buffer: a sink that blocks (a
 * pipe nobody reads, a stuck journald) blocks only that thread.
 * When the buffer is full the line is dropped and counted: the writer
 * then says "N log lines dropped" after the lines queued before, and
 * ch_log_dropped() feeds the crihook_log_dropped_total metric. At exit the
 * writer gets a second to write what is queued. */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log_internal.h"
#include "utf8.h"

static _Atomic int current_level = CH_LOG_INFO;
static _Atomic int current_format = CH_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ch_log_set_level(ch_log_level level) { current_level = level; }

void ch_log_set_format(ch_log_format format) { current_format = format; }

int ch_log_parse_format(const char *name, ch_log_format *out) {
  if (strcasecmp(name, "text") == 0)
    *out = CH_LOG_TEXT;
  else if (strcasecmp(name, "json") == 0)
    *out = CH_LOG_JSON;
  else
    return -1;
  return 0;
}

bool ch_log_enabled(ch_log_level level) { return (int)level >= current_level; }

int ch_log_parse_level(const char *name, ch_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (ch_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(name, "warning") == 0) {
    *out = CH_LOG_WARN;
    return 0;
  }
  return -1;
}

static size_t format_time(char *buf, size_t len) {
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  return n + (size_t)snprintf(buf + n, len - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* ---- the sink: a bounded buffer and the thread that writes it ---- */

/* Lines wait here for the writer; a line that does not fit is dropped. Two
 * buffers: callers fill one while the writer writes the other. */
#define SINK_BYTES (256 * 1024)

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake, idle;
  char bufs[2][SINK_BYTES];
  char *filling; /* bufs[0] or bufs[1] */
  size_t used;
  bool writing;
  uint64_t drops; /* since the writer last said so */
} sink = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .idle = PTHREAD_COND_INITIALIZER};

static _Atomic uint64_t dropped_total;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;
static bool sink_threaded; /* false: the writer could not start, write directly */

uint64_t ch_log_dropped(void) { return dropped_total; }

static void write_all(const char *line, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, line, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    line += w;
    n -= (size_t)w;
  }
}

static size_t format_line(ch_log_level level, const char *component, const char *msg, char *line,
                          size_t size);

/* "N log lines dropped", written after the lines that were queued before
 * the drops. */
static void write_drop_note(uint64_t drops) {
  char msg[96], line[2048];
  snprintf(msg, sizeof msg, "%llu log lines dropped (the log sink was stuck) dropped=%llu",
           (unsigned long long)drops, (unsigned long long)drops);
  write_all(line, format_line(CH_LOG_WARN, "log", msg, line, sizeof line));
}

static void *writer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&sink.lock);
  for (;;) {
    while (sink.used == 0 && sink.drops == 0) pthread_cond_wait(&sink.wake, &sink.lock);
    char *batch = sink.filling;
    size_t n = sink.used;
    uint64_t drops = sink.drops;
    sink.filling = batch == sink.bufs[0] ? sink.bufs[1] : sink.bufs[0];
    sink.used = 0;
    sink.drops = 0;
    sink.writing = true;
    pthread_mutex_unlock(&sink.lock);
    write_all(batch, n); /* may block: only this thread waits */
    if (drops) write_drop_note(drops);
    pthread_mutex_lock(&sink.lock);
    sink.writing = false;
    pthread_cond_broadcast(&sink.idle);
  }
  return NULL;
}

/* At exit: gives the writer up to a second to write what is queued. */
static void sink_flush(void) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 1;
  pthread_mutex_lock(&sink.lock);
  while ((sink.used > 0 || sink.writing) &&
         pthread_cond_timedwait(&sink.idle, &sink.lock, &until) == 0) {
  }
  pthread_mutex_unlock(&sink.lock);
}

static void sink_start(void) {
  sink.filling = sink.bufs[0];
  pthread_t t;
  if (pthread_create(&t, NULL, writer_main, NULL) != 0) return;
  pthread_detach(t);
  sink_threaded = true;
  atexit(sink_flush);
}

/* With nothing queued and the sink ready, writes (part of) the line at
 * once, as a plain write would: lines appear when they happen while the
 * sink keeps up. A line up to PIPE_BUF bytes does not block once poll
 * says the sink is writable. Returns the bytes written. Under the lock. */
static size_t write_through(const char *line, size_t n) {
  struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
  if (sink.used > 0 || sink.writing || sink.drops > 0 || n > PIPE_BUF || poll(&pfd, 1, 0) != 1 ||
      !(pfd.revents & POLLOUT))
    return 0;
  ssize_t w = write(STDERR_FILENO, line, n);
  return w > 0 ? (size_t)w : 0;
}

/* Writes or queues a whole line, or drops and counts it; never waits for
 * the sink. */
static void sink_put(const char *line, size_t n) {
  pthread_once(&sink_once, sink_start);
  if (!sink_threaded) {
    write_all(line, n);
    return;
  }
  pthread_mutex_lock(&sink.lock);
  size_t done = write_through(line, n);
  size_t left = n - done;
  if (left > 0 && left <= SINK_BYTES - sink.used) {
    memcpy(sink.filling + sink.used, line + done, left);
    sink.used += left;
  } else if (left > 0) {
    sink.drops++;
    dropped_total++;
  }
  if (left > 0) pthread_cond_signal(&sink.wake);
  pthread_mutex_unlock(&sink.lock);
}

/* ---- formatting ---- */

/* msg with control characters and bytes that are not UTF-8 escaped
 * (newline as "\n", others as "\xNN"), so that a value from outside
 * cannot end the line or forge another. */
static size_t escape_text(const char *msg, char *out, size_t size) {
  size_t used = 0, n = strlen(msg);
  for (size_t i = 0; i < n && used + 5 < size;) {
    unsigned char c = (unsigned char)msg[i];
    size_t seq = ch_utf8_sequence((const unsigned char *)msg + i, n - i);
    if (c == '\n') {
      memcpy(out + used, "\\n", 2);
      used += 2;
    } else if (c < 0x20 || c == 0x7f || seq == 0) {
      used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
    } else {
      memcpy(out + used, msg + i, seq);
      used += seq;
      i += seq;
      continue;
    }
    i++;
  }
  return used;
}

/* The whole line for `msg` in the current format, '\n' included. */
static size_t format_line(ch_log_level level, const char *component, const char *msg, char *line,
                          size_t size) {
  char time[40];
  format_time(time, sizeof time);
  if (current_format == CH_LOG_JSON && ch_log_json_bound(strlen(component), strlen(msg)) <= size)
    return ch_log_json_line(line, size, time, level_names[level], component, msg);
  size_t n = (size_t)snprintf(line, size - 1, "%s %-5s %s: ", time, level_names[level], component);
  if (n >= size - 1) n = size - 2;
  n += escape_text(msg, line + n, size - 1 - n);
  line[n++] = '\n';
  return n;
}

void ch_log(ch_log_level level, const char *component, const char *fmt, ...) {
  if (!ch_log_enabled(level)) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t size = current_format == CH_LOG_JSON ? ch_log_json_bound(strlen(component), strlen(msg))
                                              : 4 * strlen(msg) + 128;
  char *line = malloc(size);
  if (!line) return;
  sink_put(line, format_line(level, component, msg, line, size));
  free(line);
}
