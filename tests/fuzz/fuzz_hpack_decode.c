/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_hpack_decode.c: libFuzzer target for relay/hpack_decode.c, checked
 * against nghttp2's HPACK inflater as the reference: both decode the same
 * header blocks, with the same SETTINGS limits in between, and must agree
 * on whether each block decodes, on every field (name and value bytes, in
 * order) and on the dynamic table's size after it. Any disagreement
 * aborts. Once a block fails in both, the connection would end: the run
 * stops there.
 *
 * Input: records of [op][len hi][len lo][len bytes]. op & 0x80: first the
 * decoding side's limit changes to one of 0, 64, 256, 4096, 65536 (op &
 * 7, modulo 5). Then the block of len bytes (cut at the input's end) is
 * decoded. The seeds (corpus/hpack_decode/, make_seeds.py) are RFC 7541
 * Appendix C's blocks and blocks nghttp2's deflater made of gRPC headers. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpack_decode.h"

typedef struct fields {
  uint8_t *buf; /* each field: nlen (4 bytes), vlen (4 bytes), name, value */
  size_t len, cap;
} fields;

static void add(fields *f, const uint8_t *p, size_t n) {
  if (f->len + n > f->cap) {
    f->cap = (f->len + n) * 2 + 64;
    f->buf = realloc(f->buf, f->cap);
    if (!f->buf) abort();
  }
  if (n) memcpy(f->buf + f->len, p, n);
  f->len += n;
}

static void add_field(fields *f, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen) {
  uint32_t l[2] = {(uint32_t)nlen, (uint32_t)vlen};
  add(f, (const uint8_t *)l, sizeof l);
  add(f, name, nlen);
  add(f, value, vlen);
}

static void ours_cb(void *ud, const hpack_field *f) {
  add_field(ud, f->name, f->namelen, f->value, f->valuelen);
}

static int reference(nghttp2_hd_inflater *inf, const uint8_t *in, size_t n, fields *out) {
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t used = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, n, 1);
    if (used < 0) return -1;
    in += used;
    n -= (size_t)used;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) add_field(out, nv.name, nv.namelen, nv.value, nv.valuelen);
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf);
      return 0;
    }
    if (n == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) return -1;
  }
}

static void disagree(const char *what, size_t block) {
  fprintf(stderr, "hpack_decode and nghttp2 disagree on block %zu: %s\n", block, what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t limits[] = {0, 64, 256, 4096, 65536};
  hpack_decoder d;
  hpack_decoder_init(&d);
  nghttp2_hd_inflater *inf;
  if (nghttp2_hd_inflate_new(&inf) != 0) abort();
  fields a = {0}, b = {0};
  for (size_t block = 0; size >= 3; block++) {
    uint8_t op = data[0];
    size_t n = (size_t)data[1] << 8 | data[2];
    data += 3, size -= 3;
    if (n > size) n = size;
    if (op & 0x80) {
      size_t limit = limits[(op & 7) % 5];
      hpack_decoder_set_limit(&d, limit);
      if (nghttp2_hd_inflate_change_table_size(inf, limit) != 0) abort();
    }
    a.len = b.len = 0;
    int ra = hpack_decode_block(&d, data, n, ours_cb, &a);
    int rb = reference(inf, data, n, &b);
    data += n, size -= n;
    if (ra != rb) disagree(ra ? "only nghttp2 decodes it" : "only hpack_decode decodes it", block);
    if (ra) break;
    if (a.len != b.len || (a.len && memcmp(a.buf, b.buf, a.len) != 0)) disagree("fields", block);
    if (hpack_decoder_table_size(&d) != nghttp2_hd_inflate_get_dynamic_table_size(inf))
      disagree("table size", block);
  }
  free(a.buf);
  free(b.buf);
  nghttp2_hd_inflate_del(inf);
  hpack_decoder_free(&d);
  return 0;
}
