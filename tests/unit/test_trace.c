/* SPDX-License-Identifier: Apache-2.0 */
/* test_trace.c: the live-trace hub of observe/trace.h: nothing is queued
 * without a watcher, filters by method (regex on the full path and the
 * short name) and pod (namespace/name, name, ID), bounded rings that count
 * drops, wake-ups only for an idle watcher, and the JSON line of an event. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "trace.h"

#define CREATE "/runtime.v1.RuntimeService/CreateContainer"
#define VERSION "/runtime.v1.RuntimeService/Version"

static int wakeups;
static void count_wakeup(void *arg) { (*(int *)arg)++; }

static ch_trace_event *event(const char *method, const char *pod, const char *pod_id) {
  ch_trace_event *ev = ch_trace_event_new(method, strlen(method), GRPC_STATUS_OK, 1.5);
  assert_non_null(ev);
  snprintf(ev->pod, sizeof ev->pod, "%s", pod);
  snprintf(ev->pod_id, sizeof ev->pod_id, "%s", pod_id);
  return ev;
}

static ch_trace_watcher *watch(const char *method, const char *pod, size_t capacity) {
  ch_trace_filter f = {.method = method, .pod = pod};
  ch_trace_watcher *w = NULL;
  ch_error err;
  if (ch_trace_watch(&f, capacity, count_wakeup, &wakeups, &w, &err) != 0) fail_msg("%s", err.msg);
  return w;
}

/* Takes everything queued; returns the count and frees the events. */
static size_t drain(ch_trace_watcher *w, uint64_t *dropped) {
  ch_trace_event *got[64];
  size_t n = ch_trace_take(w, got, 64, dropped);
  for (size_t i = 0; i < n; i++) ch_trace_event_unref(got[i]);
  return n;
}

static void nothing_happens_without_a_watcher(void **state) {
  (void)state;
  assert_false(ch_trace_active());
  ch_trace_publish(event(VERSION, "", "")); /* freed at once (ASan checks) */
  ch_trace_watcher *w = watch(NULL, NULL, 4);
  assert_true(ch_trace_active());
  ch_trace_unwatch(w);
  assert_false(ch_trace_active());
}

static void events_arrive_in_order_and_wake_only_an_idle_watcher(void **state) {
  (void)state;
  wakeups = 0;
  ch_trace_watcher *w = watch("", "", 8);
  ch_trace_publish(event(VERSION, "", ""));
  ch_trace_publish(event(CREATE, "default/web", "p1"));
  assert_int_equal(wakeups, 1); /* the watcher was busy at the second */
  ch_trace_event *got[4];
  uint64_t dropped;
  assert_int_equal(ch_trace_take(w, got, 4, &dropped), 2);
  assert_string_equal(got[0]->method, VERSION);
  assert_string_equal(got[1]->method, CREATE);
  assert_int_equal(dropped, 0);
  ch_trace_event_unref(got[0]);
  ch_trace_event_unref(got[1]);
  ch_trace_publish(event(VERSION, "", ""));
  assert_int_equal(wakeups, 1); /* still busy: it takes again on its timer */
  assert_int_equal(drain(w, &dropped), 1);
  assert_int_equal(drain(w, &dropped), 0); /* found nothing: idle */
  ch_trace_publish(event(VERSION, "", ""));
  assert_int_equal(wakeups, 2);
  ch_trace_unwatch(w); /* frees what is still queued */
}

static void method_filter_matches_full_path_or_short_name(void **state) {
  (void)state;
  ch_trace_watcher *short_name = watch("^Create", NULL, 8);
  ch_trace_watcher *full = watch("RuntimeService/Version$", NULL, 8);
  ch_trace_watcher *either = watch("Version|CreateContainer", NULL, 8);
  ch_trace_publish(event(CREATE, "", ""));
  ch_trace_publish(event(VERSION, "", ""));
  ch_trace_publish(event("/fake.Svc/Echo", "", ""));
  uint64_t dropped;
  assert_int_equal(drain(short_name, &dropped), 1);
  assert_int_equal(drain(full, &dropped), 1);
  assert_int_equal(drain(either, &dropped), 2);
  ch_trace_unwatch(short_name);
  ch_trace_unwatch(full);
  ch_trace_unwatch(either);
}

static void pod_filter_matches_namespace_name_name_or_id(void **state) {
  (void)state;
  ch_trace_watcher *by_full = watch(NULL, "default/web", 8);
  ch_trace_watcher *by_name = watch(NULL, "web", 8);
  ch_trace_watcher *by_id = watch(NULL, "abc123", 8);
  ch_trace_watcher *both = watch("Version", "web", 8);
  ch_trace_publish(event(CREATE, "default/web", "abc123"));
  ch_trace_publish(event(CREATE, "other/web", "def456"));
  ch_trace_publish(event(CREATE, "default/webby", "x"));
  ch_trace_publish(event(VERSION, "", "")); /* no subject: never matches a pod */
  uint64_t dropped;
  assert_int_equal(drain(by_full, &dropped), 1);
  assert_int_equal(drain(by_name, &dropped), 2);
  assert_int_equal(drain(by_id, &dropped), 1);
  assert_int_equal(drain(both, &dropped), 0);
  ch_trace_unwatch(by_full);
  ch_trace_unwatch(by_name);
  ch_trace_unwatch(by_id);
  ch_trace_unwatch(both);
}

static void a_full_ring_drops_and_counts(void **state) {
  (void)state;
  ch_trace_watcher *slow = watch(NULL, NULL, 2);
  ch_trace_watcher *fast = watch(NULL, NULL, 16);
  for (int i = 0; i < 5; i++) ch_trace_publish(event(VERSION, "", ""));
  uint64_t dropped;
  assert_int_equal(drain(slow, &dropped), 2);
  assert_int_equal(dropped, 3);
  assert_int_equal(drain(fast, &dropped), 5); /* one slow reader costs the others nothing */
  assert_int_equal(dropped, 0);
  ch_trace_publish(event(VERSION, "", ""));
  assert_int_equal(drain(slow, &dropped), 1);
  assert_int_equal(dropped, 0); /* reported once */
  ch_trace_unwatch(slow);
  ch_trace_unwatch(fast);
}

static void a_bad_regex_is_refused(void **state) {
  (void)state;
  ch_trace_filter f = {.method = "(("};
  ch_trace_watcher *w = NULL;
  ch_error err;
  assert_int_equal(ch_trace_watch(&f, 4, NULL, NULL, &w, &err), -1);
  assert_non_null(strstr(err.msg, "method filter \"((\""));
  assert_false(ch_trace_active());
}

static void hook_list_grows_and_caps(void **state) {
  (void)state;
  ch_trace_hooks *list = NULL;
  ch_trace_hook h = {.plugin = "p", .hook = "PreCreateContainer"};
  for (int i = 0; i < CH_TRACE_MAX_HOOKS + 3; i++) ch_trace_hooks_add(&list, &h);
  assert_int_equal(list->count, CH_TRACE_MAX_HOOKS);
  assert_int_equal(list->dropped, 3);
  free(list);
}

static void event_json_line(void **state) {
  (void)state;
  ch_trace_event *ev = event(CREATE, "default/web", "p1");
  ev->code = GRPC_STATUS_PERMISSION_DENIED;
  snprintf(ev->message, sizeof ev->message, "say \"no\"\n\xff\xc3"); /* invalid UTF-8 */
  snprintf(ev->container, sizeof ev->container, "app");
  ch_trace_hook h = {.plugin = "10-env",
                     .hook = "PreCreateContainer",
                     .result = CH_TRACE_HOOK_OK,
                     .ms = 1.25,
                     .change_count = 2};
  memcpy(h.changes, "env+FOO=bar\0annotation+x=y", 27);
  ch_trace_hooks_add(&ev->hooks, &h);
  char *line = ch_trace_event_json(ev);
  assert_non_null(line);
  assert_int_equal(line[strlen(line) - 1], '\n');
  assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1); /* one line */
  json_error_t jerr;
  json_t *doc = json_loads(line, 0, &jerr);
  if (!doc) fail_msg("not JSON (%s): %s", jerr.text, line);
  assert_string_equal(json_string_value(json_object_get(doc, "method")), CREATE);
  assert_string_equal(json_string_value(json_object_get(doc, "pod")), "default/web");
  assert_string_equal(json_string_value(json_object_get(doc, "container")), "app");
  assert_null(json_object_get(doc, "container_id")); /* empty: left out */
  assert_string_equal(json_string_value(json_object_get(doc, "code")), "PERMISSION_DENIED");
  assert_string_equal(json_string_value(json_object_get(doc, "message")),
                      "say \"no\"\n\xef\xbf\xbd\xef\xbf\xbd");
  assert_true(json_number_value(json_object_get(doc, "latency_ms")) == 1.5);
  assert_non_null(strstr(json_string_value(json_object_get(doc, "time")), "Z"));
  json_t *hook = json_array_get(json_object_get(doc, "hooks"), 0);
  assert_string_equal(json_string_value(json_object_get(hook, "plugin")), "10-env");
  assert_string_equal(json_string_value(json_object_get(hook, "hook")), "PreCreateContainer");
  assert_string_equal(json_string_value(json_object_get(hook, "result")), "ok");
  json_t *changes = json_object_get(hook, "changes");
  assert_int_equal(json_array_size(changes), 2);
  assert_string_equal(json_string_value(json_array_get(changes, 1)), "annotation+x=y");
  json_decref(doc);
  free(line);
  ch_trace_event_unref(ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nothing_happens_without_a_watcher),
      cmocka_unit_test(events_arrive_in_order_and_wake_only_an_idle_watcher),
      cmocka_unit_test(method_filter_matches_full_path_or_short_name),
      cmocka_unit_test(pod_filter_matches_namespace_name_name_or_id),
      cmocka_unit_test(a_full_ring_drops_and_counts),
      cmocka_unit_test(a_bad_regex_is_refused),
      cmocka_unit_test(hook_list_grows_and_caps),
      cmocka_unit_test(event_json_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
