/* SPDX-License-Identifier: Apache-2.0 */
/* trace_event.c: one traced call (trace.h): allocation, shared ownership,
 * the hook list collected while the call runs, and the JSON line a watcher
 * receives.
 *
 * The JSON is written by hand rather than through jansson: it runs once per
 * event per watcher on the control loop, and a plain buffer with an escaper
 * is several times cheaper than building and dumping a tree. Strings are
 * escaped and made valid UTF-8 by common/strbuf.h (with common/utf8.h: a
 * name cut short by a fixed buffer becomes U+FFFD), so any JSON parser reads
 * every line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_util.h"
#include "strbuf.h"
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
  static const char *const names[] = {"ok",       "error",   "timeout",
                                      "rejected", "skipped", "bad_answer"};
  return (unsigned)result < sizeof names / sizeof names[0] ? names[result] : "unknown";
}

/* ---- JSON ---- */

static void put_string(ch_strbuf *l, const char *s) {
  ch_strbuf_put(l, "\"", 1);
  ch_strbuf_put_json(l, s, strlen(s));
  ch_strbuf_put(l, "\"", 1);
}

/* ,"key":"value" unless value is empty. */
static void put_field(ch_strbuf *l, const char *key, const char *value) {
  if (!value[0]) return;
  ch_strbuf_printf(l, ",\"%s\":", key);
  put_string(l, value);
}

static void put_time(ch_strbuf *l, int64_t time_us) {
  time_t sec = (time_t)(time_us / 1000000);
  struct tm tm;
  char text[64];
  gmtime_r(&sec, &tm);
  size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  ch_strbuf_printf(l, "{\"time\":\"%.*s.%06dZ\"", (int)n, text, (int)(time_us % 1000000));
}

static void put_changes(ch_strbuf *l, const ch_trace_hook *h) {
  if (!h->change_count) return;
  CH_STRBUF_LITERAL(l, ",\"changes\":[");
  const char *c = h->changes;
  for (unsigned i = 0; i < h->change_count; i++, c += strlen(c) + 1) {
    if (i) ch_strbuf_put(l, ",", 1);
    put_string(l, c);
  }
  ch_strbuf_put(l, "]", 1);
}

static void put_hooks(ch_strbuf *l, const ch_trace_hooks *hooks) {
  if (!hooks || (!hooks->count && !hooks->dropped)) return;
  CH_STRBUF_LITERAL(l, ",\"hooks\":[");
  for (size_t i = 0; i < hooks->count; i++) {
    const ch_trace_hook *h = &hooks->items[i];
    if (i) CH_STRBUF_LITERAL(l, ",");
    CH_STRBUF_LITERAL(l, "{\"plugin\":");
    put_string(l, h->plugin);
    ch_strbuf_printf(l, ",\"hook\":\"%s\",\"result\":\"%s\",\"latency_ms\":%.3f",
                     h->hook ? h->hook : "", ch_trace_result_name(h->result), h->ms);
    put_changes(l, h);
    put_field(l, "cause", h->cause);
    ch_strbuf_put(l, "}", 1);
  }
  ch_strbuf_put(l, "]", 1);
  if (hooks->dropped) ch_strbuf_printf(l, ",\"hooks_dropped\":%zu", hooks->dropped);
}

char *ch_trace_event_json(const ch_trace_event *ev) {
  ch_strbuf l = CH_STRBUF_INIT;
  put_time(&l, ev->time_us);
  put_field(&l, "method", ev->method);
  put_field(&l, "pod", ev->pod);
  put_field(&l, "pod_id", ev->pod_id);
  put_field(&l, "container", ev->container);
  put_field(&l, "container_id", ev->container_id);
  ch_strbuf_printf(&l, ",\"code\":\"%s\"", ch_status_name(ev->code));
  put_field(&l, "message", ev->message);
  ch_strbuf_printf(&l, ",\"latency_ms\":%.3f", ev->latency_ms);
  put_hooks(&l, ev->hooks);
  ch_strbuf_put(&l, "}\n", 2);
  return ch_strbuf_take(&l);
}
