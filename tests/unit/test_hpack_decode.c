/* SPDX-License-Identifier: Apache-2.0 */
/* test_hpack_decode.c: the verbatim relay's HPACK decoder
 * (relay/hpack_decode.c): RFC 7541 Appendix C's request and response
 * sequences, raw and Huffman-coded, field by field with the table's size
 * after each block; eviction, an entry larger than the table, a lowered
 * limit and the size update it requires; and each malformed block the
 * decoder must refuse (hpack_decode.h lists them). fuzz_hpack_decode
 * compares it with nghttp2's decoder on arbitrary input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "hpack_decode.h"

typedef struct seen {
  char text[2048]; /* "name: value\n" per field */
  size_t len;
} seen;

static void on_field(void *ud, const hpack_field *f) {
  seen *s = ud;
  int n = snprintf(s->text + s->len, sizeof s->text - s->len, "%.*s: %.*s\n", (int)f->namelen,
                   (const char *)f->name, (int)f->valuelen, (const char *)f->value);
  assert_true(n > 0 && (size_t)n < sizeof s->text - s->len);
  s->len += (size_t)n;
}

static size_t unhex(const char *hex, uint8_t *out) {
  size_t n = 0;
  for (; hex[0] && hex[1]; hex += 2) {
    unsigned v;
    assert_int_equal(sscanf(hex, "%2x", &v), 1);
    out[n++] = (uint8_t)v;
  }
  return n;
}

/* Decodes a block given in hex; returns the decoder's answer. */
static int decode(hpack_decoder *d, const char *hex, seen *s) {
  static uint8_t buf[1024];
  size_t n = unhex(hex, buf);
  if (s) *s = (seen){0};
  return hpack_decode_block(d, buf, n, on_field, s ? s : &(seen){0});
}

static void expect(hpack_decoder *d, const char *hex, const char *fields, size_t table) {
  seen s;
  assert_int_equal(decode(d, hex, &s), 0);
  assert_string_equal(s.text, fields);
  assert_int_equal(hpack_decoder_table_size(d), table);
}

#define REQ1 ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n"
#define REQ2 REQ1 "cache-control: no-cache\n"
#define REQ3                                                                        \
  ":method: GET\n:scheme: https\n:path: /index.html\n:authority: www.example.com\n" \
  "custom-key: custom-value\n"

/* RFC 7541 C.3 (raw) and C.4 (Huffman-coded): the same three requests. */
static const char *const rfc_requests[2][3] = {
    {"828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
     "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"},
    {"828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
     "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"},
};

static void test_rfc_requests_raw_and_huffman(void **state) {
  (void)state;
  static const char *const fields[3] = {REQ1, REQ2, REQ3};
  static const size_t table[3] = {57, 110, 164};
  for (int coding = 0; coding < 2; coding++) {
    hpack_decoder d;
    hpack_decoder_init(&d);
    for (int i = 0; i < 3; i++) expect(&d, rfc_requests[coding][i], fields[i], table[i]);
    hpack_decoder_free(&d);
  }
}

#define LOC "location: https://www.example.com\n"
#define RESP1 ":status: 302\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n" LOC
#define RESP2 ":status: 307\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n" LOC
#define RESP3                                                                                    \
  ":status: 200\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:22 GMT\n" LOC              \
  "content-encoding: gzip\nset-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1" \
  "\n"

/* RFC 7541 C.6: a 256-byte table, so the later blocks evict. */
static void test_rfc_responses_evict(void **state) {
  (void)state;
  hpack_decoder d;
  hpack_decoder_init(&d);
  hpack_decoder_set_limit(&d, 256); /* the encoder says so first: 0x3f e1 01 */
  expect(
      &d,
      "3fe101488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
      "63c78f0b97c8e9ae82ae43d3",
      RESP1, 222);
  expect(&d, "4883640effc1c0bf", RESP2, 222);
  expect(
      &d,
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335df"
      "dfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
      RESP3, 215);
  hpack_decoder_free(&d);
}

/* A lowered limit: the next block must start with an update to it or
 * below; then literals with indexing do not stay in a table of 0. */
static void test_lowered_limit_needs_an_update(void **state) {
  (void)state;
  hpack_decoder d;
  hpack_decoder_init(&d);
  expect(&d, "400a637573746f6d2d6b65790d637573746f6d2d686561646572", "custom-key: custom-header\n",
         55);
  hpack_decoder_set_limit(&d, 0);
  assert_int_equal(hpack_decoder_table_size(&d), 0); /* evicted at once */
  assert_int_equal(decode(&d, "82", NULL), -1);      /* no update first */
  hpack_decoder_free(&d);

  hpack_decoder_init(&d);
  hpack_decoder_set_limit(&d, 0);
  assert_int_equal(decode(&d, "3f01", NULL), -1); /* an update above the limit */
  hpack_decoder_free(&d);

  hpack_decoder_init(&d);
  hpack_decoder_set_limit(&d, 0);
  expect(&d, "20400a637573746f6d2d6b65790d637573746f6d2d686561646572",
         "custom-key: custom-header\n", 0);
  expect(&d, "82", ":method: GET\n", 0); /* once said, not again */
  hpack_decoder_free(&d);
}

/* An entry larger than the table empties it and is not added. */
static void test_entry_larger_than_the_table(void **state) {
  (void)state;
  hpack_decoder d;
  hpack_decoder_init(&d);
  hpack_decoder_set_limit(&d, 64);
  expect(&d, "3f21400a637573746f6d2d6b65790d637573746f6d2d686561646572",
         "custom-key: custom-header\n", 55);
  /* 10 + 30 + 32 = 72 > 64 */
  expect(&d,
         "400a637573746f6d2d6b65791e"
         "616161616161616161616161616161616161616161616161616161616161",
         "custom-key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 0);
  assert_int_equal(decode(&d, "be", NULL), -1); /* index 62: gone */
  hpack_decoder_free(&d);
}

static void refused(const char *hex) {
  hpack_decoder d;
  hpack_decoder_init(&d);
  if (decode(&d, hex, NULL) != -1) fail_msg("block %s was accepted", hex);
  hpack_decoder_free(&d);
}

static void test_malformed_blocks_are_refused(void **state) {
  (void)state;
  refused("80");                   /* index 0 */
  refused("be");                   /* index 62 of an empty table */
  refused("ff80808080808001");     /* an integer over 2^32 */
  refused("ff");                   /* an integer cut short */
  refused("0003616263");           /* a value missing */
  refused("0003616263036162");     /* name "abc", value of 3 bytes cut to 2 */
  refused("000361626384ffffffff"); /* a Huffman value with EOS in it */
  refused(
      "0003616263"
      "81ff"); /* Huffman padding of 8 bits */
  refused(
      "0003616263"
      "8100");       /* '0' (00000) then padding of zeros */
  refused("823f01"); /* a size update after a field */
  refused("3fe21f"); /* a size update to 4097, over the limit */
  /* a value announced at 65665 bytes: over 64 KiB (and past the block) */
  refused(
      "0003616263"
      "7f828004");
}

/* Padding that is the EOS code's start, up to 7 bits, is fine; a string
 * is decoded from raw and Huffman forms alike. */
static void test_huffman_padding_and_raw(void **state) {
  (void)state;
  hpack_decoder d;
  hpack_decoder_init(&d);
  expect(&d,
         "0003616263"
         "8107",
         "abc: 0\n", 0); /* '0' = 00000, then 111 */
  expect(&d,
         "00821c64"
         "0130",
         "abc: 0\n", 0); /* the name "abc" Huffman-coded */
  hpack_decoder_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_requests_raw_and_huffman),
      cmocka_unit_test(test_rfc_responses_evict),
      cmocka_unit_test(test_lowered_limit_needs_an_update),
      cmocka_unit_test(test_entry_larger_than_the_table),
      cmocka_unit_test(test_malformed_blocks_are_refused),
      cmocka_unit_test(test_huffman_padding_and_raw),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
