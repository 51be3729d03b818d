/* test_qos_rules.c: unit tests of crihook-qos-cgroup's rule file
 * (qos_rules.c): the choice of a parent (label over annotation, default),
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
    " \"classes\": {\"gold\": \"/crihook/gold\", \"silver\": \"/crihook/silver\"},"
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

static void test_choice(void **state) {
  qos_rules *r = load(*state, example);
  assert_int_equal(qos_rules_class_count(r), 2);
  assert_string_equal(qos_rules_parent(r, "gold", NULL), "/crihook/gold");
  assert_string_equal(qos_rules_parent(r, NULL, "silver"), "/crihook/silver");
  assert_string_equal(qos_rules_parent(r, "gold", "silver"), "/crihook/gold"); /* label wins */
  assert_string_equal(qos_rules_parent(r, "", "silver"), "/crihook/silver");
  assert_null(qos_rules_parent(r, "bronze", NULL)); /* unknown: no change */
  assert_null(qos_rules_parent(r, NULL, NULL));
  qos_rules_free(r);
  r = load(*state, "{\"annotation\": \"qos\", \"classes\": {}, \"default\": \"/crihook/other\"}");
  assert_null(qos_rules_label(r));
  assert_string_equal(qos_rules_annotation(r), "qos");
  assert_string_equal(qos_rules_parent(r, NULL, "bronze"), "/crihook/other");
  assert_string_equal(qos_rules_parent(r, NULL, NULL), "/crihook/other");
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

static void test_bad_files(void **state) {
  const fixture *fx = *state;
  const int bad = CRIHOOK_INVALID_ARGUMENT;
  refused(fx, "{\"label\": \"x\", \"classes\": {", bad, "does not parse");
  refused(fx, "{\"label\": \"x\",\n \"classes\": {}, }", bad, "line 2");
  refused(fx, "[]", bad, "must be a JSON object");
  refused(fx, "{\"lable\": \"x\", \"classes\": {}}", bad, "unknown key \"lable\"");
  refused(fx, "{\"classes\": {}}", bad, "names neither");
  refused(fx, "{\"label\": 3, \"classes\": {}}", bad, "\"label\" must be a string");
  refused(fx, "{\"label\": \"x\"}", bad, "no \"classes\"");
  refused(fx, "{\"label\": \"x\", \"classes\": []}", bad, "must be an object");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": 1}}", bad, "must be a string");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"gold.slice\"}}", bad,
          "not a cgroupfs path");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"/x/../y\"}}", bad, "\"..\" component");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"/x//y\"}}", bad, "empty");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"/\"}}", bad, "empty");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"/x/\"}}", bad, "empty");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"\": \"/x\"}}", bad, "must not be empty");
  refused(fx, "{\"label\": \"x\", \"classes\": {}, \"default\": \"x\"}", bad,
          "\"default\": cgroup parent");
  refused(fx, "{\"label\": \"x\", \"classes\": {\"a\": \"/a\", \"a\": \"/b\"}}", bad, "duplicate");
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
  write_file(fx->path, "{\"label\": \"x\", \"classes\": {\"gold\": \"/elsewhere\"}}");
  touch(fx->path, 1);
  assert_int_equal(qos_rules_file_get(&f, &r, &reloaded, &err), 0);
  assert_true(reloaded);
  assert_string_equal(qos_rules_parent(r, "gold", NULL), "/elsewhere");
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
      cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_reloads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
