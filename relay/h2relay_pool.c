/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_pool.c: per-relay free lists of small blocks (why, and the bound:
 * h2relay_pool.h). Owned by its relay; used on the relay's loop thread only. */
#include "h2relay_pool.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Usable sizes of the classes (header not included); a request takes the
 * smallest that fits. Chosen from what a call allocates: nghttp2's items
 * and stream records (100-300 bytes), header copies, the relay's header
 * lists (grow by doubling from 16 entries / 1 KiB). */
static const size_t class_size[] = {32,  64,  96,   128,  192,  256, 384,
                                    512, 768, 1024, 1536, 2048, 4096};
#define CLASSES (sizeof class_size / sizeof class_size[0])

/* Under AddressSanitizer every freed block goes back to libc, so a use
 * after free in the relay or in nghttp2 is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_KEEPS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_KEEPS 0
#endif
#endif
#ifndef POOL_KEEPS
#define POOL_KEEPS 1
#endif
#define LARGE UINT32_MAX

typedef struct header {
  alignas(max_align_t) uint32_t cls; /* index in class_size, or LARGE */
} header;

typedef struct free_block {
  struct free_block *next;
} free_block;

struct h2r_pool {
  free_block *free[CLASSES];
  size_t kept[CLASSES]; /* free blocks held per class */
  nghttp2_mem mem;
};

static uint32_t class_of(size_t size) {
  for (uint32_t i = 0; i < CLASSES; i++)
    if (size <= class_size[i]) return i;
  return LARGE;
}

static header *header_of(void *ptr) { return (header *)ptr - 1; }

void *h2r_pool_malloc(h2r_pool *p, size_t size) {
  uint32_t c = class_of(size);
  header *h;
  if (c != LARGE && p->free[c]) {
    h = (header *)p->free[c];
    p->free[c] = p->free[c]->next;
    p->kept[c]--;
  } else {
    size_t usable = c == LARGE ? size : class_size[c];
    if (usable > SIZE_MAX - sizeof *h) return NULL;
    h = malloc(sizeof *h + usable);
    if (!h) return NULL;
  }
  h->cls = c;
  return h + 1;
}

/* Whether a freed block of class c goes on its free list (else to libc). */
static bool keeps_block(const h2r_pool *p, uint32_t c) {
  return POOL_KEEPS && c != LARGE && (p->kept[c] + 1) * class_size[c] <= H2R_POOL_KEEP_BYTES;
}

void h2r_pool_free(h2r_pool *p, void *ptr) {
  if (!ptr) return;
  header *h = header_of(ptr);
  if (!keeps_block(p, h->cls)) {
    free(h);
    return;
  }
  free_block *b = (free_block *)h;
  uint32_t c = h->cls;
  b->next = p->free[c];
  p->free[c] = b;
  p->kept[c]++;
}

void *h2r_pool_calloc(h2r_pool *p, size_t nmemb, size_t size) {
  if (size && nmemb > SIZE_MAX / size) return NULL;
  void *ptr = h2r_pool_malloc(p, nmemb * size);
  if (ptr) memset(ptr, 0, nmemb * size);
  return ptr;
}

void *h2r_pool_realloc(h2r_pool *p, void *ptr, size_t size) {
  if (!ptr) return h2r_pool_malloc(p, size);
  uint32_t c = header_of(ptr)->cls;
  if (c == LARGE) {
    if (size > SIZE_MAX - sizeof(header)) return NULL;
    if (class_of(size) == LARGE) {
      header *h = realloc(header_of(ptr), sizeof(header) + size);
      return h ? h + 1 : NULL;
    }
  } else if (size <= class_size[c]) {
    return ptr;
  }
  void *n = h2r_pool_malloc(p, size);
  if (!n) return NULL;
  /* a LARGE block's old size is unknown here, but it only shrinks into a
   * class when size < its old size: copying size bytes is in bounds */
  size_t old = c == LARGE ? size : class_size[c];
  memcpy(n, ptr, old < size ? old : size);
  h2r_pool_free(p, ptr);
  return n;
}

char *h2r_pool_strndup(h2r_pool *p, const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = h2r_pool_malloc(p, len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

static void *mem_malloc(size_t size, void *ud) { return h2r_pool_malloc(ud, size); }
static void mem_free(void *ptr, void *ud) { h2r_pool_free(ud, ptr); }
static void *mem_calloc(size_t n, size_t size, void *ud) { return h2r_pool_calloc(ud, n, size); }
static void *mem_realloc(void *ptr, size_t size, void *ud) {
  return h2r_pool_realloc(ud, ptr, size);
}

h2r_pool *h2r_pool_new(void) {
  h2r_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->mem = (nghttp2_mem){p, mem_malloc, mem_free, mem_calloc, mem_realloc};
  return p;
}

nghttp2_mem *h2r_pool_mem(h2r_pool *p) { return &p->mem; }

size_t h2r_pool_kept(const h2r_pool *p) {
  size_t n = 0;
  for (size_t c = 0; c < CLASSES; c++) n += p->kept[c];
  return n;
}

void h2r_pool_free_all(h2r_pool *p) {
  if (!p) return;
  for (size_t c = 0; c < CLASSES; c++)
    for (free_block *b = p->free[c], *n; b; b = n) {
      n = b->next;
      free(b);
    }
  free(p);
}
