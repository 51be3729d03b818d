/* SPDX-License-Identifier: Apache-2.0 */
/* utf8.c: the UTF-8 check of utf8.h (RFC 3629's table of well-formed
 * sequences). */
#include "utf8.h"

#include <stdbool.h>

static bool continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

/* The allowed range of the second byte after lead byte c (RFC 3629, 4). */
static void second_range(unsigned char c, unsigned char *lo, unsigned char *hi) {
  *lo = 0x80;
  *hi = 0xbf;
  if (c == 0xe0)
    *lo = 0xa0; /* no overlong 3-byte forms */
  else if (c == 0xed)
    *hi = 0x9f; /* no surrogates */
  else if (c == 0xf0)
    *lo = 0x90; /* no overlong 4-byte forms */
  else if (c == 0xf4)
    *hi = 0x8f; /* nothing above U+10FFFF */
}

size_t ch_utf8_sequence(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned char c = s[0];
  size_t len = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
  if (len <= 1 || len > n) return len > n ? 0 : len;
  unsigned char lo, hi;
  second_range(c, &lo, &hi);
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (!continuation(s[i])) return 0;
  return len;
}
