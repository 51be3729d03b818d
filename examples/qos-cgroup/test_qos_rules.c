/* SPDX-License-Identifier: Apache-2.0 */
/* test_qos_rules.c: unit tests of crihook-qos-cgroup's rule file
 * (qos_rules.c): the choice of a class (label over annotation, default),
 * what a class does to the cpu shares and oom_score_adj kubelet computed,
 * the checks and their messages, and re-reading a changed file. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include "qos_rules.h"

static const char *const example =
    "{\"label\": \"crihook.io/qos-class\", \"annotation\": \"crihook.io/qos-class\","
    " \"classes\": {\"gold\": {\"cpu_shares\": {\"factor\": 2, \"min\": 1024},"
    "                        \"oom_score_adj\": {\"max\": 500}},"
    "             \"silver\": {},"
    "             \"bronze\": {\"cpu_shares\": {\"factor\": 0.5, \"max\": 512},"
    "                          \"oom_score_adj\": {\"min\": 1000}}},"
    " \"default\": \"\"}";

typedef struct fixture {
  char path[64];
} fixture;

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  snprintf(fx->path, sizeof fx->path, "/tmp/crihook-qos-%d-%ld.json", (int)getpid(),
           (long)random());
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  unlink(fx->path);
  free(fx);
  return 0;
}

static qos_rules *load(const fixture *fx, const char *text) {
  write_file(fx->path, text);
  qos_rules *r = NULL;
  crihook_error err;
  if (qos_rules_load(fx->path, &r, &err) != 0) fail_msg("%s", err.message);
  return r;
}

static const char *class_name(const qos_class *c) { return c ? c->name : NULL; }

static void test_choice(void **state) {
  qos_rules *r = load(*state, example);
  assert_int_equal(qos_rules_class_count(r), 3);
  assert_string_equal(class_name(qos_rules_class(r, "gold", NULL)), "gold");
  assert_string_equal(class_name(qos_rules_class(r, NULL, "silver")), "silver");
  assert_string_equal(class_name(qos_rules_class(r, "gold", "silver")), "gold"); /* label wins */
  assert_string_equal(class_name(qos_rules_class(r, "", "silver")), "silver");
  assert_null(qos_rules_class(r, "tin", NULL)); /* unknown: no change */
  assert_null(qos_rules_class(r, NULL, NULL));
  qos_rules_free(r);
  r = load(*state,
           "{\"annotation\": \"qos\", \"classes\": {\"other\": {}}, \"default\": \"other\"}");
  assert_null(qos_rules_label(r));
  assert_string_equal(qos_rules_annotation(r), "qos");
  assert_string_equal(class_name(qos_rules_class(r, NULL, "bronze")), "other");
  assert_string_equal(class_name(qos_rules_class(r, NULL, NULL)), "other");
  qos_rules_free(r);
}

/* Applies class `cls` to what kubelet computed; expects the wanted values. */
static void apply(const qos_rules *r, const char *cls, int64_t shares, int64_t oom,
                  int64_t want_shares, int64_t want_oom) {
  qos_class_apply(qos_rules_class(r, cls, NULL), &shares, &oom);
  if (shares != want_shares || oom != want_oom)
    fail_msg("%s: shares %lld oom %lld, want %lld %lld", cls, (long long)shares, (long long)oom,
             (long long)want_shares, (long long)want_oom);
}

static void test_adjustments(void **state) {
  qos_rules *r = load(*state, example);
  /* kubelet's values: BestEffort 2/1000, Burstable (100m, some memory)
   * 102/968, Guaranteed (1 CPU) 1024/-997 */
  apply(r, "gold", 102, 968, 1024, 500);    /* raised to the minimum; capped at 500 */
  apply(r, "gold", 1024, -997, 2048, -997); /* doubled; already below the cap */
  apply(r, "gold", 2, 1000, 1024, 500);
  apply(r, "silver", 102, 968, 102, 968); /* names itself only */
  apply(r, "bronze", 102, 968, 51, 1000);
  apply(r, "bronze", 2048, -997, 512, 1000); /* halved, then the maximum */
  apply(r, "bronze", 3, 1000, 2, 1000);      /* never below the kernel's 2 */
  apply(r, "bronze", 0, 0, 0, 0);            /* none given (an update of cpuset only): left alone */
  apply(r, "gold", 0, 0, 0, 0);
  qos_rules_free(r);
  r = load(*state,
           "{\"label\": \"x\", \"classes\": {\"huge\": {\"cpu_shares\": {\"factor\": 1000}}}}");
  apply(r, "huge", 100000, 5, 262144, 5); /* the kernel's maximum */
  apply(r, "huge", -5, 5, -5, 5);         /* nonsense in, unchanged out */
  apply(r, "huge", 1, -1, 1000, -1);
  qos_rules_free(r);
}

/* Loads `text` (NULL: the file as it is), expects `code` and a message with the file's name and
 * `part`. */
static void refused(const fixture *fx, const char *text, int code, const char *part) {
  if (text) write_file(fx->path, text);
  qos_rules *r = NULL;
  crihook_error err;
  int rc = qos_rules_load(fx->path, &r, &err);
  if (rc != code) fail_msg("%s: rc %d, want %d (%s)", text, rc, code, rc ? err.message : "");
  assert_null(r);
  if (!strstr(err.message, fx->path) || !strstr(err.message, part))
    fail_msg("%s: message \"%s\" lacks the path or \"%s\"", text, err.message, part);
}

/* A rule file with one class `a` whose adjustments are `cls` (JSON). */
static const char *with_class(char *buf, size_t size, const char *cls) {
  snprintf(buf, size, "{\"label\": \"x\", \"classes\": {\"a\": %s}}", cls);
  return buf;
}

static void test_bad_files(void **state) {
  const fixture *fx = *state;
  const int bad = CRIHOOK_INVALID_ARGUMENT;
  char b[256];
  refused(fx, "{\"label\": \"x\", \"classes\": {", bad, "does not parse");
  refused(fx, "{\"label\": \"x\",\n \"classes\": {}, }", bad, "line 2");
  refused(fx, "[]", bad, "must be a JSON object");
  refused(fx, "{\"lable\": \"x\", \"classes\": {}}", bad, "unknown key \"lable\"");
  refused(fx, "{\"classes\": {}}", bad, "names neither");
  refused(fx, "{\"label\": 3, \"classes\": {}}", bad, "\"label\" must be a string");
  refused(fx, "{\"label\": \"x\"}", bad, "no \"classes\"");
  refused(fx, "{\"label\": \"x\", \"classes\": []}", bad, "must be an object");
  refused(fx, with_class(b, sizeof b, "\"/crihook/a\""), bad, "class \"a\" must be an object");
  refused(fx, with_class(b, sizeof b, "{\"cpu\": 1}"), bad,
          "class \"a\": unknown key \"cpu\" (known: cpu_shares, oom_score_adj)");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": 2}"), bad, "cpu_shares must be an object");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"times\": 2}}"), bad,
          "cpu_shares: unknown key \"times\" (known: factor, min, max)");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"factor\": 0}}"), bad,
          "\"factor\" must be a number above 0");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"factor\": \"2\"}}"), bad,
          "\"factor\" must be a number above 0");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"min\": 1}}"), bad,
          "class \"a\": cpu_shares: \"min\" must be an integer in 2..262144");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"max\": 2.5}}"), bad,
          "\"max\" must be an integer");
  refused(fx, with_class(b, sizeof b, "{\"cpu_shares\": {\"min\": 900, \"max\": 800}}"), bad,
          "\"min\" 900 is above \"max\" 800");
  refused(fx, with_class(b, sizeof b, "{\"oom_score_adj\": {\"min\": 1001}}"), bad,
          "oom_score_adj: \"min\" must be an integer in -1000..1000");
  refused(fx, with_class(b, sizeof b, "{\"oom_score_adj\": {\"max\": 0}}"), bad,
          "a bound of 0 cannot be set");
  refused(fx, with_class(b, sizeof b, "{\"oom_score_adj\": {\"factor\": 2}}"), bad,
          "oom_score_adj: unknown key \"factor\" (known: min, max)");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"\": {}}}", bad, "must not be empty");
  refused(fx, "{\"label\": \"x\", \"classes\": {}, \"default\": \"gold\"}", bad,
          "\"default\" names class \"gold\", which \"classes\" lacks");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": {}, \"a\": {}}}", bad, "duplicate");
  unlink(fx->path);
  refused(fx, NULL, CRIHOOK_FAILED_PRECONDITION, "No such file");
}

/* Sets the file's mtime `seconds` from now, so a rewrite is seen as one
 * even within the file system's timestamp granularity. */
static void touch(const char *path, int seconds) {
  struct timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec += seconds;
  times[1] = times[0];
  assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static void test_file_reloads(void **state) {
  const fixture *fx = *state;
  qos_rules_file f;
  qos_rules_file_init(&f, fx->path);
  const qos_rules *r;
  bool reloaded;
  crihook_error err;
  write_file(fx->path, example);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), 0);
  assert_true(reloaded);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), 0);
  assert_false(reloaded);
  write_file(fx->path, "{\"label\": \"x\", \"classes\": {\"platinum\": {}}}");
  touch(fx->path, 1);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), 0);
  assert_true(reloaded);
  assert_null(qos_rules_class(r, "gold", NULL));
  assert_non_null(qos_rules_class(r, "platinum", NULL));
  write_file(fx->path, "{not json");
  touch(fx->path, 2);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), CRIHOOK_INVALID_ARGUMENT);
  assert_true(reloaded);
  assert_non_null(strstr(err.message, "does not parse"));
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), CRIHOOK_INVALID_ARGUMENT);
  assert_false(reloaded); /* the failure is remembered, not logged again */
  unlink(fx->path);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), CRIHOOK_FAILED_PRECONDITION);
  assert_true(reloaded);
  write_file(fx->path, example);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), 0);
  assert_true(reloaded);
  qos_rules_file_release(&f);
}

int main(void) {
  srandom((unsigned)time(NULL));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_choice, setup, teardown),
      cmocka_unit_test_setup_teardown(test_adjustments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_reloads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
