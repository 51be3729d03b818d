/* log.c: formats and writes log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log_internal.h"

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

static void write_all(const char *line, size_t n) {
  ssize_t ignored = write(STDERR_FILENO, line, n);
  (void)ignored;
}

/* The JSON form of a formatted message (log_json.c); falls back to the
 * text line if out of memory. */
static void write_json(const char *time, ch_log_level level, const char *component, const char *msg,
                       const char *text_line, size_t text_len) {
  size_t size = ch_log_json_bound(strlen(component), strlen(msg));
  char *line = malloc(size);
  if (!line) {
    write_all(text_line, text_len);
    return;
  }
  write_all(line, ch_log_json_line(line, size, time, level_names[level], component, msg));
  free(line);
}

void ch_log(ch_log_level level, const char *component, const char *fmt, ...) {
  if (!ch_log_enabled(level)) return;
  char line[4096], time[40];
  format_time(time, sizeof time);
  size_t n =
      (size_t)snprintf(line, sizeof line, "%s %-5s %s: ", time, level_names[level], component);
  if (n >= sizeof line) n = sizeof line - 1;
  size_t msg_at = n;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  n = (m < 0 || n + (size_t)m >= sizeof line - 1) ? sizeof line - 2 : n + (size_t)m;
  line[n] = '\0';
  if (current_format == CH_LOG_JSON) {
    write_json(time, level, component, line + msg_at, line, n);
    return;
  }
  line[n++] = '\n';
  write_all(line, n);
}
