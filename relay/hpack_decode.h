/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpack_decode.h: an HPACK (RFC 7541) header block decoder for the verbatim
 * relay engine (h2verbatim.c), which reads every header block of both
 * directions only to learn a few fields (:path, grpc-timeout, grpc-status,
 * grpc-message) and keep each direction's dynamic table in step.
 *
 * Why not nghttp2's inflater (nghttp2_hd_inflate_hd2), which the engine
 * used before: it hands out every field as reference-counted copies, one
 * call and one allocation or more per field, and was 43 % of crihookd's
 * instructions per relayed Version call (callgrind, 2026-12-03: 6,650 of
 * 15,330 with the engine's own work on each field; 3,240 with this one).
 * This decoder decodes a whole block in one call and hands out fields as
 * pointers into the block, into its table or into one scratch buffer
 * (nothing allocated but the table's own entries).
 * tests/unit/test_hpack_decode.c checks it against RFC 7541's
 * examples, and fuzz_hpack_decode checks it against nghttp2's inflater
 * field by field.
 *
 * What it enforces (each a COMPRESSION_ERROR for the caller): index 0 or
 * past the tables; integers over 2^32; strings longer than the block;
 * Huffman padding over 7 bits, padding that is not the EOS code's start,
 * and EOS inside a string; a table size update after a field, over the
 * SETTINGS limit, or missing at the start of the first block after the
 * limit went below the table's maximum (RFC 7541 4.2).
 *
 * One decoder per direction of a connection, on its loop thread only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct hd_entry hd_entry;

typedef struct hpack_decoder {
  hd_entry **ring; /* the dynamic table, newest at ring[(head + n - 1) % cap] */
  size_t cap, head, n;
  size_t size;         /* the table's size in RFC 7541 4.1 terms */
  size_t max;          /* the maximum the encoder set (starts at the limit) */
  size_t limit;        /* SETTINGS_HEADER_TABLE_SIZE of the decoding side */
  size_t update_floor; /* the smallest limit since the last block */
  int need_update;     /* the next block must start with a size update */
  uint8_t *scratch;    /* Huffman-decoded strings of the block being read */
  size_t scratch_len, scratch_cap;
} hpack_decoder;

/* A field: name and value, valid until the callback returns. */
typedef struct hpack_field {
  const uint8_t *name, *value;
  size_t namelen, valuelen;
} hpack_field;

typedef void (*hpack_field_cb)(void *ud, const hpack_field *f);

/* A decoder with the protocol's default limit (4096). */
void hpack_decoder_init(hpack_decoder *d);
void hpack_decoder_free(hpack_decoder *d);

/* The decoding side's SETTINGS_HEADER_TABLE_SIZE took effect (acked). */
void hpack_decoder_set_limit(hpack_decoder *d, size_t limit);

/* Decodes one whole header block, calling cb (when not NULL) for each
 * field in order. 0, or -1 on a compression error (the decoder is then
 * unusable: the connection ends) or when memory ran out. */
int hpack_decode_block(hpack_decoder *d, const uint8_t *in, size_t n, hpack_field_cb cb, void *ud);

/* The dynamic table's size now (RFC 7541 4.1). */
size_t hpack_decoder_table_size(const hpack_decoder *d);
