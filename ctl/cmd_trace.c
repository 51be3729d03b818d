/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_trace.c: `crihookctl trace [--method RE] [--pod NAME] [--json]`, the
 * live stream of CRI calls passing through crihookd.
 *
 * Sends GET /trace?method=..&pod=.. to the admin socket (admin/admin_trace.h:
 * the filters run in crihookd, so unwatched traffic is not sent) and prints
 * one line per call as it arrives: the JSON as-is with --json, otherwise
 *   15:04:05.123 CreateContainer pod=default/web container=app OK 12.3ms
 *     hooks: 10-env:PreCreateContainer ok 1.2ms (env+FOO=bar)
 * on one line. Runs until interrupted (SIGINT/SIGTERM: exit 0) or until
 * crihookd ends the stream (exit 1). The signal handler only shuts the
 * socket down, which ends the blocking read on whatever thread it lands. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "percent.h"

static volatile sig_atomic_t interrupted;
static volatile int trace_fd = -1;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  if (trace_fd >= 0) shutdown(trace_fd, SHUT_RDWR);
}

static void catch_signals(void) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* ---- the request ---- */

static int send_request(int fd, const char *method, const char *pod, ch_error *err) {
  char m[1024], p[1024], request[2304];
  ch_percent_encode(method ? method : "", m, sizeof m, CH_PCT_QUERY);
  ch_percent_encode(pod ? pod : "", p, sizeof p, CH_PCT_QUERY);
  int n = snprintf(request, sizeof request, "GET /trace?method=%s&pod=%s HTTP/1.0\r\n\r\n", m, p);
  if (n >= (int)sizeof request) return ch_fail(err, "filters too long");
  if (write(fd, request, (size_t)n) != n) return ch_fail_errno(err, errno, "admin socket write");
  return 0;
}

/* The stream as it arrives: read(2) into a growing buffer, so that all the
 * lines one read brings are printed with one write (see follow). */
typedef struct reader {
  int fd;
  char *buf;
  size_t len, cap;
} reader;

/* Reads once more; 0 at end of stream (or on a signal), -1 out of memory. */
static ssize_t read_more(reader *r) {
  if (r->cap - r->len < 4096) {
    size_t cap = r->cap ? r->cap * 2 : 65536;
    char *grown = realloc(r->buf, cap + 1);
    if (!grown) return -1;
    r->buf = grown;
    r->cap = cap;
  }
  ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
  if (n <= 0) return 0;
  r->len += (size_t)n;
  r->buf[r->len] = '\0';
  return n;
}

static void consume(reader *r, size_t n) {
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
  r->buf[r->len] = '\0';
}

/* Reads the status line and headers; on an error answer, its message. */
static int read_header(reader *r, ch_error *err) {
  char *end;
  while (!(r->buf && (end = strstr(r->buf, "\r\n\r\n")) != NULL))
    if (read_more(r) <= 0) return ch_fail(err, "admin /trace: no answer");
  int code = 0;
  sscanf(r->buf, "HTTP/1.%*d %d", &code);
  consume(r, (size_t)(end + 4 - r->buf));
  if (code == 200) return 0;
  while (read_more(r) > 0) {
  }
  json_error_t jerr;
  json_t *body = json_loads(r->buf, 0, &jerr);
  const char *why = json_string_value(json_object_get(body, "error"));
  ch_fail(err, "admin /trace: HTTP %d%s%s", code, why ? ": " : "", why ? why : "");
  json_decref(body);
  return -1;
}

/* ---- printing ---- */

static const char *str(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

/* "2024-05-01T15:04:05.123456Z" as local "15:04:05.123". */
static void local_clock(const char *iso, char *buf, size_t size) {
  struct tm tm = {0};
  int us = 0;
  if (sscanf(iso, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &us) != 7) {
    snprintf(buf, size, "%s", iso);
    return;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  localtime_r(&t, &tm);
  snprintf(buf, size, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, us / 1000);
}

static void print_ms(double ms) { printf(ms < 1 ? " %.2fms" : " %.1fms", ms); }

/* CRI methods by their short name, anything else by its full path. */
static const char *method_label(const char *path) {
  const char *slash = strrchr(path, '/');
  return strncmp(path, "/runtime.", 9) == 0 && slash ? slash + 1 : path;
}

static void print_subject(const json_t *ev) {
  char id[16];
  if (*str(ev, "pod")) {
    printf(" pod=%s", str(ev, "pod"));
  } else if (*str(ev, "pod_id")) {
    ctl_short_id(str(ev, "pod_id"), id, sizeof id);
    printf(" pod=%s", id);
  }
  if (*str(ev, "container")) {
    printf(" container=%s", str(ev, "container"));
  } else if (*str(ev, "container_id")) {
    ctl_short_id(str(ev, "container_id"), id, sizeof id);
    printf(" container=%s", id);
  }
}

static void print_hook(const json_t *h, size_t index) {
  printf("%s%s:%s %s", index ? "; " : " hooks: ", str(h, "plugin"), str(h, "hook"),
         str(h, "result"));
  if (strcmp(str(h, "result"), "skipped") != 0)
    print_ms(json_number_value(json_object_get(h, "latency_ms")));
  size_t i;
  json_t *change;
  json_array_foreach(json_object_get(h, "changes"), i, change) {
    printf("%s%s", i ? ", " : " (", json_string_value(change));
  }
  if (json_array_size(json_object_get(h, "changes"))) printf(")");
  if (*str(h, "cause")) printf(" [%s]", str(h, "cause"));
}

static void print_event(const json_t *ev) {
  if (json_object_get(ev, "dropped")) {
    printf("--- %lld calls not shown: this reader fell behind ---\n",
           json_integer_value(json_object_get(ev, "dropped")));
    return;
  }
  char clock[32];
  local_clock(str(ev, "time"), clock, sizeof clock);
  printf("%s %s", clock, method_label(str(ev, "method")));
  print_subject(ev);
  printf(" %s", str(ev, "code"));
  if (*str(ev, "message")) printf(" \"%s\"", str(ev, "message"));
  print_ms(json_number_value(json_object_get(ev, "latency_ms")));
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(ev, "hooks"), i, h) print_hook(h, i);
  printf("\n");
}

static void print_line(char *line, bool json) {
  if (json) {
    puts(line);
    return;
  }
  json_error_t jerr;
  json_t *ev = json_loads(line, 0, &jerr);
  if (ev) print_event(ev);
  json_decref(ev);
}

/* Prints each line until the stream ends; returns the exit code. Output is
 * flushed once per read, not per line: at thousands of calls a second a
 * write per line would cost more than crihookd spends on the trace. */
static int follow(reader *r, bool json) {
  do {
    size_t used = 0;
    for (char *nl; (nl = memchr(r->buf + used, '\n', r->len - used)) != NULL;
         used = (size_t)(nl + 1 - r->buf)) {
      *nl = '\0';
      print_line(r->buf + used, json);
    }
    consume(r, used);
    fflush(stdout);
  } while (read_more(r) > 0);
  if (interrupted) return CTL_EXIT_OK;
  return ctl_fail("crihookd ended the trace");
}

/* ---- the command ---- */

static int parse_options(int argc, char **argv, const char **method, const char **pod, bool *json) {
  static const struct option longs[] = {
      {"method", required_argument, NULL, 'm'},
      {"pod", required_argument, NULL, 'p'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "+m:p:j", longs, NULL)) != -1) {
    if (opt == 'm')
      *method = optarg;
    else if (opt == 'p')
      *pod = optarg;
    else if (opt == 'j')
      *json = true;
    else
      return -1;
  }
  return optind == argc ? 0 : -1;
}

int ctl_cmd_trace(ctl_ctx *ctx, int argc, char **argv) {
  const char *method = NULL, *pod = NULL;
  bool json = false;
  if (parse_options(argc, argv, &method, &pod, &json) != 0) return ctl_usage("trace");
  ch_error err;
  int fd = ctl_admin_connect(ctx->admin, &err);
  if (fd < 0) return ctl_fail("%s", err.msg);
  reader r = {.fd = fd};
  int rc = CTL_EXIT_FAIL;
  trace_fd = fd;
  catch_signals();
  if (send_request(fd, method, pod, &err) != 0 || read_header(&r, &err) != 0)
    ctl_fail("%s", err.msg);
  else
    rc = follow(&r, json);
  trace_fd = -1;
  close(fd);
  free(r.buf);
  return rc;
}
