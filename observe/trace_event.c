/* trace_event.c: one traced call (trace.h): allocation, shared ownership,
 * the hook list collected while the call runs, and the JSON line a watcher
 * receives.
 *
 * The JSON is written by hand rather than through jansson: it runs once per
 * event per watcher on the control loop, and a plain buffer with an escaper
 * is several times cheaper than building and dumping a tree. Strings are
 * escaped and made valid UTF-8 (a name cut short by a fixed buffer becomes
 * U+FFFD), so any JSON parser reads every line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_util.h"
#include "trace.h"

ch_trace_event *ch_trace_event_new(const char *method, size_t method_len, grpc_status_code code,
                                   double latency_ms) {
  ch_trace_event *ev = malloc(sizeof *ev);
  if (!ev) return NULL;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  atomic_init(&ev->refs, 1);
  ev->time_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
  ev->latency_ms = latency_ms;
  ev->code = code;
  snprintf(ev->method, sizeof ev->method, "%.*s", (int)method_len, method);
  ev->message[0] = ev->pod[0] = ev->pod_id[0] = ev->container[0] = ev->container_id[0] = '\0';
  ev->hooks = NULL;
  return ev;
}

void ch_trace_event_unref(ch_trace_event *ev) {
  if (!ev || atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1) return;
  free(ev->hooks);
  free(ev);
}

void ch_trace_hooks_add(ch_trace_hooks **list, const ch_trace_hook *hook) {
  ch_trace_hooks *l = *list;
  if (!l || l->count == l->cap) {
    size_t cap = l ? l->cap * 2 : 2;
    ch_trace_hooks *grown =
        cap <= CH_TRACE_MAX_HOOKS ? realloc(l, sizeof *l + cap * sizeof l->items[0]) : NULL;
    if (!grown) {
      if (l) l->dropped++;
      return;
    }
    if (!l) grown->count = grown->dropped = 0;
    grown->cap = cap;
    *list = l = grown;
  }
  l->items[l->count++] = *hook;
}

const char *ch_trace_result_name(ch_trace_result result) {
  static const char *const names[] = {"ok", "error", "timeout", "rejected", "skipped"};
  return (unsigned)result < sizeof names / sizeof names[0] ? names[result] : "unknown";
}

/* ---- JSON ---- */

typedef struct line {
  char *buf;
  size_t len, cap;
  bool failed;
} line;

static void put_raw(line *l, const char *s, size_t n) {
  if (l->failed) return;
  if (l->len + n + 1 > l->cap) {
    size_t cap = (l->len + n + 1) * 2;
    char *grown = realloc(l->buf, cap);
    if (!grown) {
      l->failed = true;
      return;
    }
    l->buf = grown;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
  l->buf[l->len] = '\0';
}

#define PUT_LITERAL(l, s) put_raw(l, s, sizeof s - 1)

static void put_fmt(line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(line *l, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) put_raw(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_length(const unsigned char *s, size_t left) {
  size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
  if (n == 0 || n > left || s[0] > 0xF4) return 0;
  uint32_t cp = s[0] & (0x3F >> (n - 1));
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

static void put_string(line *l, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s);
  put_raw(l, "\"", 1);
  while (left) {
    size_t run = 0; /* plain ASCII needing no escape, copied in one go */
    while (run < left && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
    put_raw(l, (const char *)p, run);
    p += run;
    left -= run;
    if (!left) break;
    size_t n = *p >= 0x80 ? utf8_length(p, left) : 1;
    if (*p == '"' || *p == '\\')
      put_fmt(l, "\\%c", *p);
    else if (*p < 0x20)
      put_fmt(l, "\\u%04x", *p);
    else if (n > 1)
      put_raw(l, (const char *)p, n);
    else
      PUT_LITERAL(l, "\\ufffd");
    p += n ? n : 1;
    left -= n ? n : 1;
  }
  put_raw(l, "\"", 1);
}

/* ,"key":"value" unless value is empty. */
static void put_field(line *l, const char *key, const char *value) {
  if (!value[0]) return;
  put_fmt(l, ",\"%s\":", key);
  put_string(l, value);
}

static void put_time(line *l, int64_t time_us) {
  time_t sec = (time_t)(time_us / 1000000);
  struct tm tm;
  char text[64];
  gmtime_r(&sec, &tm);
  size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  put_fmt(l, "{\"time\":\"%.*s.%06dZ\"", (int)n, text, (int)(time_us % 1000000));
}

static void put_changes(line *l, const ch_trace_hook *h) {
  if (!h->change_count) return;
  PUT_LITERAL(l, ",\"changes\":[");
  const char *c = h->changes;
  for (unsigned i = 0; i < h->change_count; i++, c += strlen(c) + 1) {
    if (i) put_raw(l, ",", 1);
    put_string(l, c);
  }
  put_raw(l, "]", 1);
}

static void put_hooks(line *l, const ch_trace_hooks *hooks) {
  if (!hooks || (!hooks->count && !hooks->dropped)) return;
  PUT_LITERAL(l, ",\"hooks\":[");
  for (size_t i = 0; i < hooks->count; i++) {
    const ch_trace_hook *h = &hooks->items[i];
    if (i) PUT_LITERAL(l, ",");
    PUT_LITERAL(l, "{\"plugin\":");
    put_string(l, h->plugin);
    put_fmt(l, ",\"hook\":\"%s\",\"result\":\"%s\",\"latency_ms\":%.3f", ch_hook_name(h->hook),
            ch_trace_result_name(h->result), h->ms);
    put_changes(l, h);
    put_field(l, "cause", h->cause);
    put_raw(l, "}", 1);
  }
  put_raw(l, "]", 1);
  if (hooks->dropped) put_fmt(l, ",\"hooks_dropped\":%zu", hooks->dropped);
}

char *ch_trace_event_json(const ch_trace_event *ev) {
  line l = {0};
  put_time(&l, ev->time_us);
  put_field(&l, "method", ev->method);
  put_field(&l, "pod", ev->pod);
  put_field(&l, "pod_id", ev->pod_id);
  put_field(&l, "container", ev->container);
  put_field(&l, "container_id", ev->container_id);
  put_fmt(&l, ",\"code\":\"%s\"", ch_status_name(ev->code));
  put_field(&l, "message", ev->message);
  put_fmt(&l, ",\"latency_ms\":%.3f", ev->latency_ms);
  put_hooks(&l, ev->hooks);
  put_raw(&l, "}\n", 2);
  if (l.failed) {
    free(l.buf);
    return NULL;
  }
  return l.buf;
}
