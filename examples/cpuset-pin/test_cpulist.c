/* SPDX-License-Identifier: Apache-2.0 */
/* test_cpulist.c: unit tests of crihook-cpuset-pin's CPU lists (cpulist.c):
 * what parses, what is refused and with which message, the canonical form,
 * subsets, and reading a list from a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include "cpulist.h"

/* Parses `text` and returns its canonical form (static buffer). */
static const char *canonical(const char *text) {
  static char buf[256];
  cpulist set;
  crihook_error err;
  int rc = cpulist_parse(text, &set, &err);
  if (rc != 0) fail_msg("%s: %s", text, err.message);
  cpulist_format(&set, buf, sizeof buf);
  return buf;
}

static void test_valid_lists(void **state) {
  (void)state;
  assert_string_equal(canonical("0"), "0");
  assert_string_equal(canonical("0-1,3"), "0-1,3");
  assert_string_equal(canonical("3,0-1"), "0-1,3");
  assert_string_equal(canonical("0,1,2,5"), "0-2,5");
  assert_string_equal(canonical("4-4"), "4");
  assert_string_equal(canonical("0-1\n"), "0-1"); /* sysfs files end in a newline */
  assert_string_equal(canonical("  7 "), "7");
  assert_string_equal(canonical("1-2,2-3"), "1-3");
  assert_string_equal(canonical("8191"), "8191");
  assert_string_equal(canonical("62-65"), "62-65"); /* across a word of the bitmap */
}

/* Parses `text`, expects INVALID_ARGUMENT and a message containing `part`. */
static void refused(const char *text, const char *part) {
  cpulist set;
  crihook_error err;
  int rc = cpulist_parse(text, &set, &err);
  if (rc != CRIHOOK_INVALID_ARGUMENT) fail_msg("\"%s\" parsed (rc %d)", text, rc);
  if (!strstr(err.message, part))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err.message, part);
}

static void test_invalid_lists(void **state) {
  (void)state;
  refused("", "it is empty");
  refused(" \n", "it is empty");
  refused("abc", "expected a CPU number at position 1 ('a')");
  refused("0,", "expected a CPU number at the end");
  refused(",0", "expected a CPU number at position 1");
  refused("0-", "expected a CPU number at the end");
  refused("3-1", "range 3-1 goes backwards");
  refused("0 1", "unexpected character at position 2");
  refused("0,,1", "expected a CPU number at position 3");
  refused("-1", "expected a CPU number at position 1");
  refused("1-2-3", "unexpected character at position 4");
  refused("0x1", "unexpected character at position 2");
  refused("8192", "CPU 8192 is beyond");
  refused("99999999999999999999999", "is beyond");
  refused("0-7:2", "position 4");
}

static void test_subset(void **state) {
  (void)state;
  cpulist online, want;
  crihook_error err;
  assert_int_equal(cpulist_parse("0-1", &online, &err), 0);
  assert_int_equal(cpulist_parse("1", &want, &err), 0);
  assert_true(cpulist_is_subset(&want, &online));
  assert_int_equal(cpulist_parse("0-63", &want, &err), 0);
  assert_false(cpulist_is_subset(&want, &online));
  assert_int_equal(cpulist_parse("4000", &want, &err), 0);
  assert_false(cpulist_is_subset(&want, &online));
  assert_true(cpulist_has(&want, 4000));
  assert_false(cpulist_has(&want, 9000));
  assert_false(cpulist_is_empty(&want));
}

static void test_format_truncates_like_snprintf(void **state) {
  (void)state;
  cpulist set;
  crihook_error err;
  assert_int_equal(cpulist_parse("0,2,4,6,8,10", &set, &err), 0);
  char small[6];
  size_t need = cpulist_format(&set, small, sizeof small);
  assert_int_equal(need, strlen("0,2,4,6,8,10"));
  assert_string_equal(small, "0,2,4");
  assert_int_equal(cpulist_format(&set, NULL, 0), need);
}

static void test_read_file(void **state) {
  (void)state;
  char path[] = "/tmp/crihook-cpulist-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "0-3,6\n", 6), 6);
  close(fd);
  cpulist set;
  crihook_error err;
  assert_int_equal(cpulist_read_file(path, &set, &err), 0);
  assert_true(cpulist_has(&set, 6));
  unlink(path);
  assert_int_equal(cpulist_read_file(path, &set, &err), CRIHOOK_FAILED_PRECONDITION);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "No such file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_lists), cmocka_unit_test(test_invalid_lists),
      cmocka_unit_test(test_subset),      cmocka_unit_test(test_format_truncates_like_snprintf),
      cmocka_unit_test(test_read_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
