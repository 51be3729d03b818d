/* SPDX-License-Identifier: Apache-2.0 */
/* h2peek.h: what a verbatim HTTP/2 relay must read of the bytes it passes
 * on, and nothing more: the frame headers, and each header block through
 * an HPACK decoder that mirrors the receiving peer's table (nghttp2's
 * inflater), to learn a request's :path (its route) and an answer's
 * grpc-status (its metrics). crihook-l4relay --h2-peek runs it on both
 * directions, so scripts/bench.sh can measure the floor of the verbatim
 * 1:1 relay of issue 11 (target 2) before anyone builds one.
 *
 * Bench-only: it observes and never changes a byte. It assumes the default
 * header table size (gRPC peers do not change it), and stops reading (and
 * says so) at what a verbatim relay would have to handle but this does not:
 * a padded HEADERS frame, an inflater error. */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

typedef struct h2peek {
  nghttp2_hd_inflater *inf;
  size_t skip;   /* preface bytes still to pass (24 on the client's side) */
  uint8_t hd[9]; /* the frame header being read */
  size_t have;   /* of hd */
  size_t left;   /* payload bytes of the current frame still to come */
  size_t front;  /* of them, priority bytes before the header block */
  uint8_t type, flags;
  unsigned long blocks, paths, statuses; /* seen so far */
  const char *stopped;                   /* why it stopped reading, or NULL */
} h2peek;

/* client_side: the bytes start with the connection preface. */
int h2peek_init(h2peek *p, int client_side);
void h2peek_free(h2peek *p);

/* Reads the next n bytes of the direction. */
void h2peek_feed(h2peek *p, const uint8_t *d, size_t n);
