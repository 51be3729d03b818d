/* SPDX-License-Identifier: Apache-2.0 */
/* percent.c: see percent.h. */
#include "percent.h"

#include <stdbool.h>

int ch_hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The byte of the escape at in[i] ('%'), or -1 if it is not "%XX". */
static int escape_at(const char *in, size_t len, size_t i) {
  if (i + 2 >= len) return -1;
  int hi = ch_hex_digit((unsigned char)in[i + 1]), lo = ch_hex_digit((unsigned char)in[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

int ch_percent_decode(const char *in, size_t len, char *out, size_t out_size, ch_pct_dialect d) {
  size_t o = 0;
  int rc = 0;
  for (size_t i = 0; i < len && o + 1 < out_size; i++) {
    int byte = in[i] == '%' ? escape_at(in, len, i) : -1;
    if (byte >= 0) {
      out[o++] = (char)byte;
      i += 2;
    } else if (in[i] == '%' && d == CH_PCT_QUERY) {
      rc = -1;
      break;
    } else {
      out[o++] = d == CH_PCT_QUERY && in[i] == '+' ? ' ' : in[i];
    }
  }
  out[o] = '\0';
  return rc;
}

static bool kept(unsigned char c, ch_pct_dialect d) {
  if (d == CH_PCT_GRPC_MESSAGE) return c >= 0x20 && c < 0x7f && c != '%';
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

size_t ch_percent_encode(const char *in, char *out, size_t out_size, ch_pct_dialect d) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < out_size; p++) {
    if (kept(*p, d)) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%', out[o++] = hex[*p >> 4], out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  return o;
}
