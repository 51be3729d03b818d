/* test_log.c: the JSON form of log lines (common/log_json.c): every line is
 * one valid JSON object whatever the message holds, the whole message is
 * kept, and key=value tokens become fields (bare or quoted values, trailing
 * ':' or ',' dropped, reserved keys not overwritten). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log_internal.h"

/* Formats `msg` and parses the line back (the caller decrefs). */
static json_t *line_of(const char *msg) {
  size_t size = ch_log_json_bound(strlen("proxy"), strlen(msg));
  char *line = malloc(size);
  assert_non_null(line);
  size_t n = ch_log_json_line(line, size, "2026-12-01T00:00:00.000Z", "info", "proxy", msg);
  assert_true(n > 2 && n <= size);
  assert_int_equal(line[n - 1], '\n');
  assert_null(memchr(line, '\n', n - 1)); /* one line */
  json_error_t err;
  json_t *doc = json_loadb(line, n, 0, &err);
  if (!doc) fail_msg("not JSON (%s): %.*s", err.text, (int)n, line);
  free(line);
  return doc;
}

static const char *field(const json_t *doc, const char *key) {
  return json_string_value(json_object_get(doc, key));
}

static void test_fields(void **state) {
  (void)state;
  json_t *doc =
      line_of("backend chosen path=/run/x.sock: first that answered, reason=\"no such file\" n=3,");
  assert_string_equal(field(doc, "msg"),
                      "backend chosen path=/run/x.sock: first that answered, reason=\"no such "
                      "file\" n=3,");
  assert_string_equal(field(doc, "level"), "info");
  assert_string_equal(field(doc, "component"), "proxy");
  assert_string_equal(field(doc, "time"), "2026-12-01T00:00:00.000Z");
  assert_string_equal(field(doc, "path"), "/run/x.sock");
  assert_string_equal(field(doc, "reason"), "no such file");
  assert_string_equal(field(doc, "n"), "3");
  json_decref(doc);
}

static void test_reserved_keys_and_non_keys(void **state) {
  (void)state;
  json_t *doc = line_of("level=fake msg=x a==b x=1=2 Upper=no url=http://h/?q=1");
  assert_string_equal(field(doc, "level"), "info"); /* not overwritten */
  assert_string_equal(field(doc, "x"), "1=2");
  assert_string_equal(field(doc, "url"), "http://h/?q=1");
  assert_null(json_object_get(doc, "Upper"));
  json_decref(doc);
}

static void test_escapes(void **state) {
  (void)state;
  json_t *doc = line_of("quote\" back\\slash tab\t newline\n bell\a key=\"un\\terminated");
  assert_string_equal(field(doc, "msg"),
                      "quote\" back\\slash tab\t newline\n bell\a key=\"un\\terminated");
  assert_string_equal(field(doc, "key"), "un\\terminated");
  json_decref(doc);
}

static void test_worst_case_fits_the_bound(void **state) {
  (void)state;
  char msg[2001];
  for (size_t i = 0; i < 2000; i += 2) {
    msg[i] = 'a';
    msg[i + 1] = i % 4 ? '=' : '\x01'; /* many tiny fields and escapes */
  }
  msg[2000] = '\0';
  json_decref(line_of(msg));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_reserved_keys_and_non_keys),
      cmocka_unit_test(test_escapes),
      cmocka_unit_test(test_worst_case_fits_the_bound),
  };
  return cmocka_run_group_tests_name("log (JSON lines)", tests, NULL, NULL);
}
