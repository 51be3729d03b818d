/* SPDX-License-Identifier: Apache-2.0 */
/* test_h2relay_pool.c: the relay's small-block pool (relay/h2relay_pool.c):
 * blocks are recycled per size class, realloc keeps contents across
 * classes and into libc's large blocks, the retained bytes stay bounded,
 * calloc zeroes recycled memory and refuses an overflowing product, and
 * nghttp2 runs a whole session on it. Under ASan the pool keeps nothing
 * (so ASan sees uses after free); the recycling cases check that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "h2relay_pool.h"

static h2r_pool *pool;

static int setup(void **state) {
  (void)state;
  pool = h2r_pool_new();
  return pool ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  h2r_pool_free_all(pool);
  return 0;
}

static bool keeps(void) {
  void *p = h2r_pool_malloc(pool, 40);
  h2r_pool_free(pool, p);
  bool kept = h2r_pool_kept(pool) > 0;
  h2r_pool_free(pool, h2r_pool_malloc(pool, 40)); /* leave the state as found */
  return kept;
}

static void test_recycles_within_a_class(void **state) {
  (void)state;
  if (!keeps()) skip();
  void *a = h2r_pool_malloc(pool, 100);
  assert_non_null(a);
  h2r_pool_free(pool, a);
  void *b = h2r_pool_malloc(pool, 120); /* the same class (128) */
  assert_ptr_equal(a, b);
  void *c = h2r_pool_malloc(pool, 20); /* another class: not that block */
  assert_ptr_not_equal(b, c);
  h2r_pool_free(pool, b);
  h2r_pool_free(pool, c);
}

static void test_realloc_keeps_contents(void **state) {
  (void)state;
  uint8_t *p = h2r_pool_malloc(pool, 10);
  for (int i = 0; i < 10; i++) p[i] = (uint8_t)i;
  uint8_t *q = h2r_pool_realloc(pool, p, 20); /* same class: same block */
  assert_ptr_equal(p, q);
  q = h2r_pool_realloc(pool, q, 3000); /* a bigger class */
  for (int i = 0; i < 10; i++) assert_int_equal(q[i], i);
  memset(q + 10, 7, 2990);
  q = h2r_pool_realloc(pool, q, 100000); /* into libc's large blocks */
  for (int i = 0; i < 10; i++) assert_int_equal(q[i], i);
  assert_int_equal(q[2999], 7);
  q = h2r_pool_realloc(pool, q, 200000); /* large to large */
  assert_int_equal(q[2999], 7);
  q = h2r_pool_realloc(pool, q, 50); /* back into a class */
  for (int i = 0; i < 10; i++) assert_int_equal(q[i], i);
  h2r_pool_free(pool, q);
  h2r_pool_free(pool, NULL);
  assert_null(h2r_pool_realloc(pool, NULL, SIZE_MAX));
}

static void test_retained_bytes_are_bounded(void **state) {
  (void)state;
  enum { N = 4000 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) assert_non_null(blocks[i] = h2r_pool_malloc(pool, 64));
  for (int i = 0; i < N; i++) h2r_pool_free(pool, blocks[i]);
  /* 4000 x 64 bytes were freed; the class keeps at most its bound */
  assert_true(h2r_pool_kept(pool) * 64 <= H2R_POOL_KEEP_BYTES);
  if (keeps()) assert_int_equal(h2r_pool_kept(pool), H2R_POOL_KEEP_BYTES / 64);
}

static void test_calloc_zeroes_and_checks_overflow(void **state) {
  (void)state;
  uint8_t *p = h2r_pool_malloc(pool, 200);
  memset(p, 0xab, 200);
  h2r_pool_free(pool, p);
  uint8_t *z = h2r_pool_calloc(pool, 25, 8); /* likely the block just freed */
  for (int i = 0; i < 200; i++) assert_int_equal(z[i], 0);
  h2r_pool_free(pool, z);
  assert_null(h2r_pool_calloc(pool, SIZE_MAX / 2, 4));
  char *d = h2r_pool_strndup(pool, "/runtime.v1.RuntimeService/Version", 11);
  assert_string_equal(d, "/runtime.v1");
  h2r_pool_free(pool, d);
}

static ssize_t discard(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *ud) {
  (void)s, (void)d, (void)f, (void)ud;
  return (ssize_t)n;
}

/* nghttp2 allocates its session, streams, items and header copies here. */
static void test_nghttp2_session_on_the_pool(void **state) {
  (void)state;
  nghttp2_session_callbacks *cbs;
  nghttp2_session *s;
  assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
  nghttp2_session_callbacks_set_send_callback(cbs, discard);
  assert_int_equal(nghttp2_session_client_new3(&s, cbs, NULL, NULL, h2r_pool_mem(pool)), 0);
  nghttp2_nv nv[] = {
      {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
      {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
      {(uint8_t *)":path", (uint8_t *)"/runtime.v1.RuntimeService/Version", 5, 34, 0},
      {(uint8_t *)":authority", (uint8_t *)"/run/containerd/containerd.sock", 10, 31, 0},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
  };
  for (int i = 0; i < 100; i++) assert_true(nghttp2_submit_request(s, NULL, nv, 5, NULL, NULL) > 0);
  assert_int_equal(nghttp2_session_send(s), 0);
  nghttp2_session_del(s);
  nghttp2_session_callbacks_del(cbs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_recycles_within_a_class, setup, teardown),
      cmocka_unit_test_setup_teardown(test_realloc_keeps_contents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retained_bytes_are_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calloc_zeroes_and_checks_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nghttp2_session_on_the_pool, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
