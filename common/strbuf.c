/* SPDX-License-Identifier: Apache-2.0 */
/* strbuf.c: the buffer of strbuf.h. Growth doubles, so appending is
 * amortised O(1); printf formats in place and retries once after growing. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void ch_strbuf_fixed(ch_strbuf *b, char *buf, size_t size) {
  *b = (ch_strbuf){.buf = buf, .cap = size, .fixed = true};
  buf[0] = '\0';
}

/* Room for `n` more bytes and the NUL; false if there is none (a bounded
 * buffer then takes what fits). */
static bool reserve(ch_strbuf *b, size_t n) {
  if (b->failed) return false;
  if (b->len + n + 1 <= b->cap) return true;
  if (b->fixed) return false;
  size_t cap = (b->len + n + 1) * 2;
  char *grown = realloc(b->buf, cap);
  if (!grown) {
    b->failed = true;
    return false;
  }
  b->buf = grown;
  b->cap = cap;
  return true;
}

void ch_strbuf_put(ch_strbuf *b, const char *s, size_t n) {
  if (!reserve(b, n)) {
    if (!b->fixed || b->len + 1 >= b->cap) return;
    n = b->cap - b->len - 1; /* bounded: cut */
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

void ch_strbuf_puts(ch_strbuf *b, const char *s) { ch_strbuf_put(b, s, strlen(s)); }

void ch_strbuf_printf(ch_strbuf *b, const char *fmt, ...) {
  for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    if (b->fixed) { /* vsnprintf wrote what fits */
      if (room) b->len = b->cap - 1;
      return;
    }
    if (!reserve(b, (size_t)n)) return;
  }
}

void ch_strbuf_put_json(ch_strbuf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  while (n) {
    size_t run = 0; /* plain ASCII needing no escape, copied in one go */
    while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\') run++;
    ch_strbuf_put(b, (const char *)p, run);
    p += run;
    n -= run;
    if (!n) break;
    size_t seq = *p >= 0x80 ? ch_utf8_sequence(p, n) : 1;
    if (*p == '"' || *p == '\\')
      ch_strbuf_printf(b, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      ch_strbuf_printf(b, "\\u%04x", *p);
    else if (seq > 1)
      ch_strbuf_put(b, (const char *)p, seq);
    else
      CH_STRBUF_LITERAL(b, "\\ufffd");
    p += seq ? seq : 1;
    n -= seq ? seq : 1;
  }
}

char *ch_strbuf_take(ch_strbuf *b) {
  if (b->failed) {
    ch_strbuf_free(b);
    return NULL;
  }
  if (!b->buf && !reserve(b, 0)) return NULL;
  char *text = b->buf;
  *b = (ch_strbuf){0};
  return text;
}

void ch_strbuf_free(ch_strbuf *b) {
  if (!b->fixed) free(b->buf);
  *b = (ch_strbuf){0};
}
