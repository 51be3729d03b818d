/* SPDX-License-Identifier: Apache-2.0 */
/* test_log.c: the JSON form of log lines (common/log_json.c): every line is
 * one valid JSON object whatever the message holds (invalid UTF-8
 * included), the whole message is kept, and key=value tokens become fields
 * (bare or quoted values, trailing ':' or ',' dropped, reserved keys not
 * overwritten); text lines escape what could forge a line; a stuck sink
 * drops and counts lines instead of blocking (common/log.c). */
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "log.h"
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

static void test_invalid_utf8_stays_valid_json(void **state) {
  (void)state;
  json_t *doc = line_of("name=caf\xc3\xa9 bad=\xff\xfe cut=\xe2\x82 del=\x7f");
  assert_string_equal(field(doc, "name"), "caf\xc3\xa9"); /* valid UTF-8 kept */
  assert_string_equal(field(doc, "bad"), "\xef\xbf\xbd\xef\xbf\xbd");
  assert_string_equal(field(doc, "cut"), "\xef\xbf\xbd\xef\xbf\xbd");
  assert_string_equal(field(doc, "del"), "\x7f");
  json_decref(doc);
}

/* ---- through ch_log, with stderr on a pipe ---- */

typedef struct captured {
  int saved, read_end;
} captured;

static captured capture(void) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  captured c = {.saved = dup(STDERR_FILENO), .read_end = p[0]};
  dup2(p[1], STDERR_FILENO);
  close(p[1]);
  return c;
}

/* Reads what the pipe holds until `want` shows up or a second passes with
 * nothing new (the writer thread writes to stderr when it can), then
 * restores stderr. Returns the text, malloc'd. */
static char *drain(captured *c, const char *want) {
  size_t cap = 1 << 20, used = 0;
  char *text = malloc(cap + 1);
  struct pollfd pfd = {.fd = c->read_end, .events = POLLIN};
  while (used < cap && poll(&pfd, 1, 1000) > 0) {
    ssize_t n = read(c->read_end, text + used, cap - used);
    if (n <= 0) break;
    used += (size_t)n;
    text[used] = '\0';
    if (want && strstr(text, want)) break;
  }
  text[used] = '\0';
  dup2(c->saved, STDERR_FILENO);
  close(c->saved);
  close(c->read_end);
  return text;
}

static void test_text_values_cannot_forge_lines(void **state) {
  (void)state;
  ch_log_set_format(CH_LOG_TEXT);
  captured c = capture();
  ch_log(CH_LOG_WARN, "plugins", "plugin added name=%s end=1",
         "a\n2026-01-01T00:00:00.000Z error main: forged\x01\xff");
  char *text = drain(&c, "end=1");
  assert_non_null(strstr(text,
                         " warn  plugins: plugin added name=a\\n2026-01-01T00:00:00.000Z "
                         "error main: forged\\x01\\xff end=1\n"));
  assert_int_equal(strchr(text, '\n') - text, (long)strlen(text) - 1); /* one line */
  free(text);
}

/* A sink nobody reads: logging goes on without waiting, the lines that do
 * not fit are dropped and counted, and once the sink moves again a line
 * says how many. */
static void test_stuck_sink_drops_and_counts(void **state) {
  (void)state;
  ch_log_set_format(CH_LOG_TEXT);
  uint64_t before = ch_log_dropped();
  captured c = capture();
  for (int i = 0; i < 20000; i++) /* ~2 MB: more than the pipe and the buffer hold */
    ch_log(CH_LOG_WARN, "test", "line %d of a log nobody reads, padded to a hundred bytes ....", i);
  assert_true(ch_log_dropped() > before);
  printf("# %llu of 20000 lines dropped\n", (unsigned long long)(ch_log_dropped() - before));
  char *text = drain(&c, "log lines dropped");
  assert_non_null(strstr(text, "line 0 of a log"));
  assert_non_null(strstr(text, " log lines dropped (the log sink was stuck) dropped="));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_reserved_keys_and_non_keys),
      cmocka_unit_test(test_escapes),
      cmocka_unit_test(test_worst_case_fits_the_bound),
      cmocka_unit_test(test_invalid_utf8_stays_valid_json),
      cmocka_unit_test(test_text_values_cannot_forge_lines),
      cmocka_unit_test(test_stuck_sink_drops_and_counts),
  };
  return cmocka_run_group_tests_name("log (JSON lines)", tests, NULL, NULL);
}
