/* SPDX-License-Identifier: Apache-2.0 */
/* h2peek.c: see h2peek.h. */
#include "h2peek.h"

#include <string.h>

#define FRAME_HEADERS 0x1
#define FRAME_CONTINUATION 0x9
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20

int h2peek_init(h2peek *p, int client_side) {
  memset(p, 0, sizeof *p);
  p->skip = client_side ? 24 : 0;
  return nghttp2_hd_inflate_new(&p->inf);
}

void h2peek_free(h2peek *p) {
  if (p->inf) nghttp2_hd_inflate_del(p->inf);
  p->inf = NULL;
}

static void seen(h2peek *p, const nghttp2_nv *nv) {
  if (nv->namelen == 5 && memcmp(nv->name, ":path", 5) == 0) p->paths++;
  if (nv->namelen == 11 && memcmp(nv->name, "grpc-status", 11) == 0) p->statuses++;
}

/* Part of a header block; `final`: its last bytes. */
static void inflate(h2peek *p, const uint8_t *in, size_t n, int final) {
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t used = nghttp2_hd_inflate_hd2(p->inf, &nv, &flags, in, n, final);
    if (used < 0) {
      p->stopped = "HPACK error";
      return;
    }
    in += used;
    n -= (size_t)used;
    if (flags & NGHTTP2_HD_INFLATE_EMIT) seen(p, &nv);
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(p->inf);
      p->blocks++;
      return;
    }
    if (n == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) return;
  }
}

/* A frame header is complete. */
static void frame_begins(h2peek *p) {
  p->left = (size_t)p->hd[0] << 16 | (size_t)p->hd[1] << 8 | p->hd[2];
  p->type = p->hd[3];
  p->flags = p->hd[4];
  p->have = 0;
  p->front = 0;
  if (p->type != FRAME_HEADERS && p->type != FRAME_CONTINUATION) return;
  if (p->type == FRAME_HEADERS && (p->flags & FLAG_PADDED)) p->stopped = "padded HEADERS";
  if (p->type == FRAME_HEADERS && (p->flags & FLAG_PRIORITY)) p->front = 5;
  if (p->left == 0 && (p->flags & FLAG_END_HEADERS)) inflate(p, NULL, 0, 1);
}

void h2peek_feed(h2peek *p, const uint8_t *d, size_t n) {
  while (n && !p->stopped) {
    if (p->skip) {
      size_t m = n < p->skip ? n : p->skip;
      p->skip -= m, d += m, n -= m;
    } else if (!p->left && p->have < 9) {
      p->hd[p->have++] = *d++, n--;
      if (p->have == 9) frame_begins(p);
    } else {
      size_t m = n < p->left ? n : p->left;
      size_t front = m < p->front ? m : p->front;
      p->front -= front;
      if (p->type == FRAME_HEADERS || p->type == FRAME_CONTINUATION)
        inflate(p, d + front, m - front, m == p->left && (p->flags & FLAG_END_HEADERS));
      p->left -= m, d += m, n -= m;
    }
  }
}
