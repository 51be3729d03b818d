/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2relay_pool.h: the relay's small-block allocator, one per relay (so per
 * loop thread, no locking), for what a relayed call allocates and frees
 * within microseconds: nghttp2's own objects (streams, outbound items,
 * header copies: its nghttp2_mem points here) and the relay's streams,
 * header lists and chunk records.
 *
 * Why: a unary call through the relay used to make about 33 malloc-family
 * calls and as many frees (about 20 of them inside nghttp2), and under load
 * malloc and free took 8-12 % of the relay's CPU (perf, ListContainers at
 * concurrency 32). Blocks here are recycled through per-size free lists:
 * a pop or a push, no lock, no bin search, no consolidation.
 *
 * Bound: each size class keeps at most H2R_POOL_KEEP_BYTES of free blocks;
 * beyond that a freed block goes back to libc, so what the pool retains
 * after a burst is at most classes x H2R_POOL_KEEP_BYTES (about 0.8 MiB).
 * Blocks larger than the largest class come from libc directly.
 *
 * Every block carries a 16-byte header (its class), so h2r_pool_free and
 * h2r_pool_realloc need no size. Built with AddressSanitizer, the pool
 * keeps no free block (each goes back to libc), so ASan still sees every
 * use after free; h2r_pool_kept() tells a test which build it runs in. Not thread safe by design: a
 * pool, its relay and all its sessions live on one loop thread.
 */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#define H2R_POOL_KEEP_BYTES (64 * 1024)

typedef struct h2r_pool h2r_pool;

h2r_pool *h2r_pool_new(void);
/* Frees the pool and its free blocks; blocks still handed out must have
 * been freed before (their memory would otherwise leak). */
void h2r_pool_free_all(h2r_pool *p);

void *h2r_pool_malloc(h2r_pool *p, size_t size);
void *h2r_pool_calloc(h2r_pool *p, size_t nmemb, size_t size);
void *h2r_pool_realloc(h2r_pool *p, void *ptr, size_t size);
void h2r_pool_free(h2r_pool *p, void *ptr);
char *h2r_pool_strndup(h2r_pool *p, const char *s, size_t n);

/* Free blocks the pool holds now, over all classes. */
size_t h2r_pool_kept(const h2r_pool *p);

/* The pool as nghttp2's allocator (for nghttp2_session_*_new3). */
nghttp2_mem *h2r_pool_mem(h2r_pool *p);
