/* SPDX-License-Identifier: Apache-2.0 */
/* test_percent.c: the percent-decoder's two dialects (common/percent.h):
 * a grpc-message keeps what is not a valid escape and is cut to its
 * buffer; a query value turns '+' into a space and refuses a bad escape;
 * decoding in place works; nothing is written past the buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "percent.h"

static char out[64];

static int decode(const char *in, size_t out_size, ch_pct_dialect d) {
  memset(out, 'Z', sizeof out);
  return ch_percent_decode(in, strlen(in), out, out_size, d);
}

static void test_hex_digits(void **state) {
  (void)state;
  assert_int_equal(ch_hex_digit('0'), 0);
  assert_int_equal(ch_hex_digit('9'), 9);
  assert_int_equal(ch_hex_digit('a'), 10);
  assert_int_equal(ch_hex_digit('F'), 15);
  assert_int_equal(ch_hex_digit('g'), -1);
  assert_int_equal(ch_hex_digit('/'), -1); /* just below '0' */
  assert_int_equal(ch_hex_digit(':'), -1); /* just above '9' */
  assert_int_equal(ch_hex_digit(0x80 | 'a'), -1);
}

static void test_grpc_message(void **state) {
  (void)state;
  /* what grpc-go sends for "bad: 100% \n done" */
  assert_int_equal(decode("bad: 100%25 %0A done", sizeof out, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(out, "bad: 100% \n done");
  /* not escapes: kept as they are, '+' is not a space here */
  assert_int_equal(decode("50% off, %zz, a+b, end%", sizeof out, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(out, "50% off, %zz, a+b, end%");
  assert_int_equal(decode("%4", sizeof out, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(out, "%4");
  /* the length bounds the input: no read past an escape cut at its end */
  memset(out, 'Z', sizeof out);
  assert_int_equal(ch_percent_decode("ab%41", 4, out, sizeof out, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(out, "ab%4");
}

static void test_cut_to_the_buffer(void **state) {
  (void)state;
  assert_int_equal(decode("%41%42%43%44", 3, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(out, "AB");
  assert_int_equal(out[3], 'Z'); /* nothing written past out_size */
  assert_int_equal(decode("anything", 1, CH_PCT_QUERY), 0);
  assert_string_equal(out, "");
  assert_int_equal(out[1], 'Z');
}

static void test_query(void **state) {
  (void)state;
  assert_int_equal(decode("runtime.v1.RuntimeService%2FRunPodSandbox+x", sizeof out, CH_PCT_QUERY),
                   0);
  assert_string_equal(out, "runtime.v1.RuntimeService/RunPodSandbox x");
  assert_int_equal(decode("pod%zz", sizeof out, CH_PCT_QUERY), -1);
  assert_string_equal(out, "pod"); /* what came before the bad escape */
  assert_int_equal(decode("end%4", sizeof out, CH_PCT_QUERY), -1);
  assert_int_equal(decode("end%", sizeof out, CH_PCT_QUERY), -1);
}

static void test_in_place(void **state) {
  (void)state;
  char s[] = "a%20b+c%2Bd";
  assert_int_equal(ch_percent_decode(s, strlen(s), s, sizeof s, CH_PCT_QUERY), 0);
  assert_string_equal(s, "a b c+d");
}

/* Encoding: each dialect's kept characters, '%' escaped, never an escape
 * cut at the end of the buffer, and each decoder reads its encoder's output
 * back. */
static void test_encode(void **state) {
  (void)state;
  char enc[64], dec[64];
  const char *msg = "plugin 50% \"x\"\n\xc3\xbc ok";
  assert_int_equal(ch_percent_encode(msg, enc, sizeof enc, CH_PCT_GRPC_MESSAGE), 28);
  assert_string_equal(enc, "plugin 50%25 \"x\"%0A%C3%BC ok");
  assert_int_equal(ch_percent_decode(enc, strlen(enc), dec, sizeof dec, CH_PCT_GRPC_MESSAGE), 0);
  assert_string_equal(dec, msg);
  ch_percent_encode("/runtime.v1.RuntimeService/Run Pod~x", enc, sizeof enc, CH_PCT_QUERY);
  assert_string_equal(enc, "%2Fruntime.v1.RuntimeService%2FRun%20Pod~x");
  assert_int_equal(ch_percent_decode(enc, strlen(enc), dec, sizeof dec, CH_PCT_QUERY), 0);
  assert_string_equal(dec, "/runtime.v1.RuntimeService/Run Pod~x");
  memset(enc, 'Z', sizeof enc);
  assert_int_equal(ch_percent_encode("abcdefgh", enc, 8, CH_PCT_QUERY), 4);
  assert_string_equal(enc, "abcd"); /* it stops 4 bytes short: room for an escape */
  assert_int_equal(enc[8], 'Z');    /* nothing written past out_size */
  assert_int_equal(ch_percent_encode("//////", enc, 8, CH_PCT_QUERY), 6);
  assert_string_equal(enc, "%2F%2F"); /* whole escapes only */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hex_digits),        cmocka_unit_test(test_grpc_message),
      cmocka_unit_test(test_cut_to_the_buffer), cmocka_unit_test(test_query),
      cmocka_unit_test(test_in_place),          cmocka_unit_test(test_encode),
  };
  return cmocka_run_group_tests_name("percent (grpc-message and query decoding and encoding)",
                                     tests, NULL, NULL);
}
