/* SPDX-License-Identifier: Apache-2.0 */
/* percent.h: the one percent-decoder (and encoder) of crihookd, for the
 * two dialects it reads and writes:
 *   CH_PCT_GRPC_MESSAGE  a grpc-message trailer (gRPC's HTTP/2 mapping):
 *                        "%XX" is a byte; anything else, a '%' not followed
 *                        by two hex digits included, is kept as it is (the
 *                        spec asks a receiver to pass such text on rather
 *                        than fail the call). The relay's trace (proxy/
 *                        dataplane.c).
 *   CH_PCT_QUERY         a URL query value (the admin socket's /trace
 *                        filter, admin/admin_trace.c): '+' is a space, and
 *                        a bad escape is an error the client is told of.
 * One function, so both agree on what a hex digit is and neither writes past
 * its buffer. */
#pragma once

#include <stddef.h>

typedef enum { CH_PCT_GRPC_MESSAGE, CH_PCT_QUERY } ch_pct_dialect;

/* The value of hex digit c (either case), or -1. */
int ch_hex_digit(int c);

/* Decodes in[0..len) into out (out_size > 0 bytes, always NUL-terminated;
 * output that does not fit is cut). out may be in (decoding in place:
 * the output is never longer than the input). Returns 0, or -1 for a bad
 * escape in the QUERY dialect (out then holds what came before it). */
int ch_percent_decode(const char *in, size_t len, char *out, size_t out_size, ch_pct_dialect d);

/* Encodes the NUL-terminated `in` into out (out_size > 0 bytes, always
 * NUL-terminated; the output stops 4 bytes short of out_size, so no escape
 * is ever cut).
 * GRPC_MESSAGE keeps printable ASCII but '%' (gRPC's HTTP/2 mapping, the
 * relay's own answers); QUERY keeps only RFC 3986's unreserved characters
 * (crihookctl trace's filter). Returns the output's length. */
size_t ch_percent_encode(const char *in, char *out, size_t out_size, ch_pct_dialect d);
