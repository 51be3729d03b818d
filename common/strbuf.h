/* SPDX-License-Identifier: Apache-2.0 */
/* strbuf.h: the one growable text buffer of crihookd, for text built piece
 * by piece and handed over whole: the metrics exposition (observe/
 * metrics.c), a trace event's JSON line (observe/trace_event.c) and a log
 * line (common/log_json.c).
 *
 * Two kinds, one interface:
 *   growable  ch_strbuf b = CH_STRBUF_INIT;   realloc'd as needed; the
 *             caller takes the text with ch_strbuf_take (or frees it with
 *             ch_strbuf_free).
 *   bounded   ch_strbuf_fixed(&b, buf, size); never allocates: what does
 *             not fit is cut (the log sizes its buffer so nothing is cut).
 * A growable buffer that cannot grow remembers it (`failed`): later writes
 * are ignored and ch_strbuf_take returns NULL, so a caller checks once at
 * the end instead of after every write. The text is always NUL-terminated
 * (when any memory is there). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ch_strbuf {
  char *buf;
  size_t len, cap;
  bool fixed;  /* caller's memory: never realloc'd, overflow is cut */
  bool failed; /* a growable buffer could not grow */
} ch_strbuf;

#define CH_STRBUF_INIT \
  { 0 }

/* A bounded buffer over buf[0..size) (size >= 1). */
void ch_strbuf_fixed(ch_strbuf *b, char *buf, size_t size);

void ch_strbuf_put(ch_strbuf *b, const char *s, size_t n);
void ch_strbuf_puts(ch_strbuf *b, const char *s);
void ch_strbuf_printf(ch_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) escaped as the body of a JSON string (no quotes): '"',
 * '\\' and control characters escaped, bytes that are not UTF-8 written as
 * \ufffd, so any JSON parser reads the result. */
void ch_strbuf_put_json(ch_strbuf *b, const char *s, size_t n);

#define CH_STRBUF_LITERAL(b, s) ch_strbuf_put(b, s, sizeof s - 1)

/* The growable buffer's text (the caller frees it); NULL if it failed to
 * grow (its memory is freed then). */
char *ch_strbuf_take(ch_strbuf *b);
void ch_strbuf_free(ch_strbuf *b);
