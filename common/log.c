/* log.c: formats and writes log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = CH_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ch_log_set_level(ch_log_level level) { current_level = level; }

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

void ch_log(ch_log_level level, const char *component, const char *fmt, ...) {
  if (!ch_log_enabled(level)) return;
  char line[4096];
  size_t n = format_time(line, sizeof line);
  n += (size_t)snprintf(line + n, sizeof line - n, " %-5s %s: ", level_names[level], component);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  n = (m < 0 || n + (size_t)m >= sizeof line - 1) ? sizeof line - 2 : n + (size_t)m;
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, n);
  (void)ignored;
}
