/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_pool.c: one loop's rpc connections, one per unix socket path
 * (rpc_pool.h).
 *
 * A pool is a short list of entries (crihookd calls a few hook servers and
 * one runtime), each a path, the connection in use for it and when it was
 * last handed out (the loop's clock, uv_now).
 *
 * Retired connections: a connection that is no longer usable is replaced
 * at the next get. One that failed or was lost has no call left (rpc ends
 * them all), so it is closed at once; one that got GOAWAY may still carry
 * calls the server promised to finish, so it moves to the retired list
 * and is closed by the sweep (or the pool's free) once those have ended:
 * closing it earlier would cancel them. Nothing but the free closes a
 * connection with a call open, so no caller's on_end runs from inside get
 * or sweep.
 *
 * Ownership: the pool owns every connection in it and closes them all in
 * ch_rpc_pool_free; a caller only borrows the one get returns, for calls it
 * starts at once. Everything runs on the loop's thread: no lock. */
#include "rpc_pool.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_entry {
  char *path;
  ch_rpc_conn *conn;
  uint64_t used_ms; /* uv_now when last handed out */
  struct pool_entry *next;
} pool_entry;

struct ch_rpc_pool {
  uv_loop_t *loop;
  pool_entry *entries; /* one per path, its conn the one get hands out */
  pool_entry *retired; /* replaced while calls were still open on them */
  bool closing;        /* in ch_rpc_pool_free: no new connection */
};

ch_rpc_pool *ch_rpc_pool_new(uv_loop_t *loop) {
  ch_rpc_pool *pool = calloc(1, sizeof *pool);
  if (pool) pool->loop = loop;
  return pool;
}

static pool_entry **find(ch_rpc_pool *pool, const char *path) {
  pool_entry **at = &pool->entries;
  while (*at && strcmp((*at)->path, path) != 0) at = &(*at)->next;
  return at;
}

static void entry_free(pool_entry *e) {
  if (e->conn) ch_rpc_conn_close(e->conn);
  free(e->path);
  free(e);
}

/* A new entry with a connection opening to `path`, not linked yet. */
static pool_entry *entry_open(ch_rpc_pool *pool, const char *path, const ch_rpc_opts *opts,
                              ch_error *err) {
  pool_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->path = strdup(path))) {
    free(e);
    ch_fail(err, "out of memory");
    return NULL;
  }
  if (ch_rpc_conn_open(pool->loop, path, opts, &e->conn, err) < 0) {
    e->conn = NULL;
    entry_free(e);
    return NULL;
  }
  return e;
}

/* Replaces the entry at *at (whose conn is not usable) by `fresh`: the old
 * conn is closed now when no call is open on it (closing ends no call),
 * else retired until the sweep finds it idle. */
static void replace(ch_rpc_pool *pool, pool_entry **at, pool_entry *fresh) {
  pool_entry *old = *at;
  fresh->next = old->next;
  *at = fresh;
  if (ch_rpc_conn_idle(old->conn)) {
    entry_free(old);
    return;
  }
  old->next = pool->retired;
  pool->retired = old;
}

ch_rpc_conn *ch_rpc_pool_get(ch_rpc_pool *pool, const char *path, const ch_rpc_opts *opts,
                             ch_error *err) {
  if (pool->closing) {
    ch_fail(err, "connection to %s: the loop's connections are closing", path);
    return NULL;
  }
  pool_entry **at = find(pool, path);
  if (!*at || !ch_rpc_conn_usable((*at)->conn)) {
    pool_entry *fresh = entry_open(pool, path, opts, err);
    if (!fresh) {
      ch_wrap(err, "connection to %s", path);
      return NULL;
    }
    if (*at)
      replace(pool, at, fresh);
    else
      *at = fresh;
  }
  (*at)->used_ms = uv_now(pool->loop);
  return (*at)->conn;
}

/* ---- closing ---- */

/* Closes the entries of *list with no call open and not handed out for
 * idle_ms; closing them ends no call. Returns how many. */
static int close_idle(ch_rpc_pool *pool, pool_entry **list, uint64_t idle_ms) {
  int n = 0;
  uint64_t now = uv_now(pool->loop);
  for (pool_entry **at = list; *at;) {
    pool_entry *e = *at;
    if (!ch_rpc_conn_idle(e->conn) || now - e->used_ms < idle_ms) {
      at = &e->next;
      continue;
    }
    *at = e->next;
    entry_free(e);
    n++;
  }
  return n;
}

int ch_rpc_pool_sweep(ch_rpc_pool *pool, uint64_t idle_ms) {
  return close_idle(pool, &pool->retired, 0) + close_idle(pool, &pool->entries, idle_ms);
}

/* Unlinks and closes entries one by one: a call's on_end (CANCELLED) may
 * run a caller that asks for a connection, which is refused (closing). */
static void close_all(pool_entry **list) {
  while (*list) {
    pool_entry *e = *list;
    *list = e->next;
    entry_free(e);
  }
}

void ch_rpc_pool_free(ch_rpc_pool *pool) {
  if (!pool) return;
  pool->closing = true;
  close_all(&pool->retired);
  close_all(&pool->entries);
  free(pool);
}
