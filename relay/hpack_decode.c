/* SPDX-License-Identifier: Apache-2.0 */
/* hpack_decode.c: an HPACK header block decoder (why, and what it enforces:
 * hpack_decode.h). The Huffman code is RFC 7541 Appendix B's; it is
 * canonical (codes of one length are consecutive, in symbol order), so it
 * is kept as the symbols ordered by code length and, per length, the first
 * code and how many there are. A symbol whose code has 8 bits or fewer
 * (every letter, digit and the usual punctuation) is found by one lookup
 * of the next byte (huff_byte); a longer one by trying lengths from 9 up. */
#include "hpack_decode.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 4096
#define ENTRY_OVERHEAD 32  /* RFC 7541 4.1 */
#define MAX_STRING 65536   /* a name or value as sent (nghttp2's NGHTTP2_HD_MAX_NV too) */
#define SCRATCH_KEEP 65536 /* scratch kept between blocks */

struct hd_entry {
  size_t nlen, vlen;
  uint8_t data[]; /* name, then value */
};

static const uint16_t huff_sym[257] = {
    48,  49,  50,  97,  99,  101, 105, 111, 115, 116, 32,  37,  45,  46,  47,  51,  52,  53,  54,
    55,  56,  57,  61,  65,  95,  98,  100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58,  66,
    67,  68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  83,  84,  85,
    86,  87,  89,  106, 107, 113, 118, 119, 120, 121, 122, 38,  42,  44,  59,  88,  90,  33,  34,
    40,  41,  63,  39,  43,  124, 35,  62,  0,   36,  64,  91,  93,  126, 94,  125, 60,  96,  123,
    92,  195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161, 167, 172, 176, 177, 179, 209,
    216, 217, 227, 229, 230, 129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173,
    178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1,   135, 137, 138, 139, 140, 141,
    143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183, 188, 191,
    197, 231, 239, 9,   142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237, 199, 207, 234, 235,
    192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255, 203, 204, 211, 212,
    214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254, 2,   3,   4,   5,
    6,   7,   8,   11,  12,  14,  15,  16,  17,  18,  19,  20,  21,  23,  24,  25,  26,  27,  28,
    29,  30,  31,  127, 220, 249, 10,  13,  22,  256,
};

static const uint16_t huff_count[31] = {
    0, 0, 0, 0, 0, 10, 26, 32, 6,  0, 5,  3,  2,  6, 2, 3,
    0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19, 29, 0, 4,
};

static const uint32_t huff_first[31] = {
    0,        0,        0,        0,         0,         0,         20,         92,
    248,      508,      1016,     2042,      4090,      8184,      16380,      32764,
    65534,    131068,   262136,   524272,    1048550,   2097116,   4194258,    8388568,
    16777194, 33554412, 67108832, 134217694, 268435426, 536870910, 1073741820,
};

static const uint16_t huff_offset[31] = {
    0,  0,  0,  0,  0,  0,   10,  36,  68,  74,  74,  79,  82,  84,  90,  92,
    95, 95, 95, 95, 98, 106, 119, 145, 174, 186, 190, 205, 224, 253, 253,
};

typedef struct static_entry {
  const char *name, *value;
  uint8_t nlen, vlen;
} static_entry;

/* An entry and its lengths, taken from the literals. */
#define S(name, value) \
  { name, value, sizeof(name) - 1, sizeof(value) - 1 }

/* RFC 7541 Appendix A; index 1 is static_table[0]. */
static const static_entry static_table[61] = {
    S(":authority", ""),
    S(":method", "GET"),
    S(":method", "POST"),
    S(":path", "/"),
    S(":path", "/index.html"),
    S(":scheme", "http"),
    S(":scheme", "https"),
    S(":status", "200"),
    S(":status", "204"),
    S(":status", "206"),
    S(":status", "304"),
    S(":status", "400"),
    S(":status", "404"),
    S(":status", "500"),
    S("accept-charset", ""),
    S("accept-encoding", "gzip, deflate"),
    S("accept-language", ""),
    S("accept-ranges", ""),
    S("accept", ""),
    S("access-control-allow-origin", ""),
    S("age", ""),
    S("allow", ""),
    S("authorization", ""),
    S("cache-control", ""),
    S("content-disposition", ""),
    S("content-encoding", ""),
    S("content-language", ""),
    S("content-length", ""),
    S("content-location", ""),
    S("content-range", ""),
    S("content-type", ""),
    S("cookie", ""),
    S("date", ""),
    S("etag", ""),
    S("expect", ""),
    S("expires", ""),
    S("from", ""),
    S("host", ""),
    S("if-match", ""),
    S("if-modified-since", ""),
    S("if-none-match", ""),
    S("if-range", ""),
    S("if-unmodified-since", ""),
    S("last-modified", ""),
    S("link", ""),
    S("location", ""),
    S("max-forwards", ""),
    S("proxy-authenticate", ""),
    S("proxy-authorization", ""),
    S("range", ""),
    S("referer", ""),
    S("refresh", ""),
    S("retry-after", ""),
    S("server", ""),
    S("set-cookie", ""),
    S("strict-transport-security", ""),
    S("transfer-encoding", ""),
    S("user-agent", ""),
    S("vary", ""),
    S("via", ""),
    S("www-authenticate", ""),
};

/* The symbol (low byte) and code length (high byte) of a code of 8 bits
 * or fewer that starts the byte; 0 when the code is longer. */
static const uint16_t huff_byte[256] = {
    1328, 1328, 1328, 1328, 1328, 1328, 1328, 1328, 1329, 1329, 1329, 1329, 1329, 1329, 1329, 1329,
    1330, 1330, 1330, 1330, 1330, 1330, 1330, 1330, 1377, 1377, 1377, 1377, 1377, 1377, 1377, 1377,
    1379, 1379, 1379, 1379, 1379, 1379, 1379, 1379, 1381, 1381, 1381, 1381, 1381, 1381, 1381, 1381,
    1385, 1385, 1385, 1385, 1385, 1385, 1385, 1385, 1391, 1391, 1391, 1391, 1391, 1391, 1391, 1391,
    1395, 1395, 1395, 1395, 1395, 1395, 1395, 1395, 1396, 1396, 1396, 1396, 1396, 1396, 1396, 1396,
    1568, 1568, 1568, 1568, 1573, 1573, 1573, 1573, 1581, 1581, 1581, 1581, 1582, 1582, 1582, 1582,
    1583, 1583, 1583, 1583, 1587, 1587, 1587, 1587, 1588, 1588, 1588, 1588, 1589, 1589, 1589, 1589,
    1590, 1590, 1590, 1590, 1591, 1591, 1591, 1591, 1592, 1592, 1592, 1592, 1593, 1593, 1593, 1593,
    1597, 1597, 1597, 1597, 1601, 1601, 1601, 1601, 1631, 1631, 1631, 1631, 1634, 1634, 1634, 1634,
    1636, 1636, 1636, 1636, 1638, 1638, 1638, 1638, 1639, 1639, 1639, 1639, 1640, 1640, 1640, 1640,
    1644, 1644, 1644, 1644, 1645, 1645, 1645, 1645, 1646, 1646, 1646, 1646, 1648, 1648, 1648, 1648,
    1650, 1650, 1650, 1650, 1653, 1653, 1653, 1653, 1850, 1850, 1858, 1858, 1859, 1859, 1860, 1860,
    1861, 1861, 1862, 1862, 1863, 1863, 1864, 1864, 1865, 1865, 1866, 1866, 1867, 1867, 1868, 1868,
    1869, 1869, 1870, 1870, 1871, 1871, 1872, 1872, 1873, 1873, 1874, 1874, 1875, 1875, 1876, 1876,
    1877, 1877, 1878, 1878, 1879, 1879, 1881, 1881, 1898, 1898, 1899, 1899, 1905, 1905, 1910, 1910,
    1911, 1911, 1912, 1912, 1913, 1913, 1914, 1914, 2086, 2090, 2092, 2107, 2136, 2138, 0,    0,
};

/* ---- the dynamic table ---- */

static hd_entry *entry_at(const hpack_decoder *d, size_t k) { /* k = 0: the newest */
  return d->ring[(d->head + d->n - 1 - k) % d->cap];
}

static void evict_oldest(hpack_decoder *d) {
  hd_entry *e = d->ring[d->head];
  d->size -= e->nlen + e->vlen + ENTRY_OVERHEAD;
  free(e);
  d->head = (d->head + 1) % d->cap;
  d->n--;
}

static void shrink_to(hpack_decoder *d, size_t max) {
  while (d->n && d->size > max) evict_oldest(d);
}

static int ring_grow(hpack_decoder *d) {
  size_t cap = d->cap ? d->cap * 2 : 16;
  hd_entry **ring = malloc(cap * sizeof *ring);
  if (!ring) return -1;
  for (size_t i = 0; i < d->n; i++) ring[i] = d->ring[(d->head + i) % d->cap];
  free(d->ring);
  d->ring = ring;
  d->cap = cap;
  d->head = 0;
  return 0;
}

/* RFC 7541 4.4: an entry larger than the maximum empties the table. */
static int table_add(hpack_decoder *d, const hpack_field *f) {
  size_t size = f->namelen + f->valuelen + ENTRY_OVERHEAD;
  if (size > d->max) {
    shrink_to(d, 0);
    return 0;
  }
  hd_entry *e =
      malloc(sizeof *e + f->namelen + f->valuelen); /* before evicting: f may point into an entry */
  if (!e) return -1;
  e->nlen = f->namelen;
  e->vlen = f->valuelen;
  if (f->namelen) memcpy(e->data, f->name, f->namelen);
  if (f->valuelen) memcpy(e->data + f->namelen, f->value, f->valuelen);
  shrink_to(d, d->max - size);
  if (d->n == d->cap && ring_grow(d) != 0) {
    free(e);
    return -1;
  }
  d->ring[(d->head + d->n) % d->cap] = e;
  d->n++;
  d->size += size;
  return 0;
}

/* The name (and value) at index i (1-based: static, then dynamic). */
static int lookup(const hpack_decoder *d, uint32_t i, hpack_field *f) {
  if (i == 0) return -1;
  if (i <= 61) {
    const static_entry *s = &static_table[i - 1];
    *f = (hpack_field){(const uint8_t *)s->name, (const uint8_t *)s->value, s->nlen, s->vlen};
    return 0;
  }
  if (i - 62 >= d->n) return -1;
  const hd_entry *e = entry_at(d, i - 62);
  *f = (hpack_field){e->data, e->data + e->nlen, e->nlen, e->vlen};
  return 0;
}

/* ---- primitives ---- */

/* RFC 7541 5.1, with a prefix of `prefix` bits; at most 2^32 - 1. */
static int get_int(const uint8_t **p, const uint8_t *end, int prefix, uint32_t *out) {
  uint32_t max = (1u << prefix) - 1;
  uint64_t v = **p & max;
  (*p)++;
  if (v < max) {
    *out = (uint32_t)v;
    return 0;
  }
  for (int shift = 0;; shift += 7) {
    if (*p == end || shift > 28) return -1;
    uint8_t b = *(*p)++;
    v += (uint64_t)(b & 0x7f) << shift;
    if (v > UINT32_MAX) return -1;
    if (!(b & 0x80)) break;
  }
  *out = (uint32_t)v;
  return 0;
}

static int huff_decode(const uint8_t *in, size_t n, uint8_t *out, size_t *outlen) {
  uint64_t acc = 0; /* bits not yet decoded, from bit 63 down */
  int bits = 0;
  size_t i = 0, o = 0;
  for (;;) {
    while (bits <= 56 && i < n) {
      acc |= (uint64_t)in[i++] << (56 - bits);
      bits += 8;
    }
    if (bits == 0) break;
    uint16_t e = huff_byte[acc >> 56];
    int len = e >> 8;
    uint16_t sym = e & 0xff;
    if (!e) { /* longer than a byte */
      len = 9;
      uint32_t code = (uint32_t)(acc >> 55);
      while (code - huff_first[len] >= huff_count[len]) { /* the code is complete: len <= 30 */
        len++;
        code = (uint32_t)(acc >> (64 - len));
      }
      sym = huff_sym[huff_offset[len] + (code - huff_first[len])];
    }
    if (len > bits) { /* past the input: what is left is padding */
      if (bits > 7 || acc >> (64 - bits) != (1u << bits) - 1) return -1;
      break;
    }
    if (sym == 256) return -1; /* EOS */
    out[o++] = (uint8_t)sym;
    acc <<= len;
    bits -= len;
  }
  *outlen = o;
  return 0;
}

/* RFC 7541 5.2: raw bytes stay in the block; Huffman ones go to scratch
 * (sized for the whole block before it is read: it never moves). */
static int get_string(hpack_decoder *d, const uint8_t **p, const uint8_t *end, const uint8_t **s,
                      size_t *len) {
  if (*p == end) return -1;
  bool huff = **p & 0x80;
  uint32_t n;
  if (get_int(p, end, 7, &n) != 0 || n > MAX_STRING || (size_t)(end - *p) < n) return -1;
  if (!huff) {
    *s = *p;
    *len = n;
  } else {
    uint8_t *out = d->scratch + d->scratch_len;
    if (huff_decode(*p, n, out, len) != 0) return -1;
    *s = out;
    d->scratch_len += *len;
  }
  *p += n;
  return 0;
}

/* ---- representations ---- */

static int size_update(hpack_decoder *d, const uint8_t **p, const uint8_t *end) {
  uint32_t v;
  if (get_int(p, end, 5, &v) != 0 || v > d->limit) return -1;
  if (d->need_update) { /* the first after a lower limit: at most the lowest (RFC 7541 4.2) */
    if (v > d->update_floor) return -1;
    d->need_update = 0;
  }
  d->max = v;
  shrink_to(d, v);
  return 0;
}

static int literal(hpack_decoder *d, const uint8_t **p, const uint8_t *end, hpack_field_cb cb,
                   void *ud) {
  bool indexing = (**p & 0xc0) == 0x40;
  uint32_t i;
  hpack_field f = {0};
  if (get_int(p, end, indexing ? 6 : 4, &i) != 0) return -1;
  if (i == 0) {
    if (get_string(d, p, end, &f.name, &f.namelen) != 0) return -1;
  } else if (lookup(d, i, &f) != 0) {
    return -1;
  }
  if (get_string(d, p, end, &f.value, &f.valuelen) != 0) return -1;
  if (cb) cb(ud, &f);
  return indexing ? table_add(d, &f) : 0;
}

static int reserve_scratch(hpack_decoder *d, size_t n) {
  size_t need = n / 5 * 8 + 8; /* a Huffman symbol has 5 bits or more */
  d->scratch_len = 0;
  if (need <= d->scratch_cap) return 0;
  uint8_t *s = realloc(d->scratch, need);
  if (!s) return -1;
  d->scratch = s;
  d->scratch_cap = need;
  return 0;
}

int hpack_decode_block(hpack_decoder *d, const uint8_t *in, size_t n, hpack_field_cb cb, void *ud) {
  if (reserve_scratch(d, n) != 0) return -1;
  const uint8_t *p = in, *end = in + n;
  bool fields = false;
  int rc = 0;
  if (d->need_update && (n == 0 || (*p & 0xe0) != 0x20)) rc = -1;
  while (rc == 0 && p < end) {
    if (*p & 0x80) { /* indexed */
      uint32_t i;
      hpack_field f;
      rc = get_int(&p, end, 7, &i) != 0 || lookup(d, i, &f) != 0 ? -1 : 0;
      if (rc == 0 && cb) cb(ud, &f);
      fields = true;
    } else if ((*p & 0xe0) == 0x20) { /* a table size update: only before the fields */
      rc = fields ? -1 : size_update(d, &p, end);
    } else {
      rc = literal(d, &p, end, cb, ud);
      fields = true;
    }
  }
  if (d->scratch_cap > SCRATCH_KEEP) { /* a large block's scratch does not stay */
    free(d->scratch);
    d->scratch = NULL;
    d->scratch_cap = 0;
  }
  return rc;
}

/* ---- the decoder ---- */

void hpack_decoder_init(hpack_decoder *d) {
  *d = (hpack_decoder){.max = DEFAULT_LIMIT, .limit = DEFAULT_LIMIT};
}

void hpack_decoder_free(hpack_decoder *d) {
  while (d->n) evict_oldest(d);
  free(d->ring);
  free(d->scratch);
  *d = (hpack_decoder){0};
}

void hpack_decoder_set_limit(hpack_decoder *d, size_t limit) {
  d->limit = limit;
  if (d->max > limit) { /* the encoder must say so first thing in its next block */
    d->max = limit;
    d->update_floor = limit;
    d->need_update = 1;
    shrink_to(d, limit);
  }
}

size_t hpack_decoder_table_size(const hpack_decoder *d) { return d->size; }
