/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_pool.h: one loop's connections of crihook's gRPC client (rpc.h), one
 * per unix socket path: the hook servers its hooked calls call, and the
 * runtime it asks for a status.
 *
 * Why a pool per loop: an rpc connection lives on one loop (its callbacks
 * run there, nothing is locked), and every relay loop of crihookd makes
 * hook calls. The registry (registry.h) only names the plugins' endpoints;
 * each loop keeps its own connection to each, opened on first use and
 * opened again on the next use after it failed, was lost or got GOAWAY (a
 * restarted hook server is reached again without anything else noticing).
 * A connection nobody used for idle_ms is closed by ch_rpc_pool_sweep, so
 * a plugin that was unregistered costs nothing for long.
 *
 * Everything on the loop's thread. */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "error.h"
#include "rpc.h"

typedef struct ch_rpc_pool ch_rpc_pool;

/* A pool on `loop`; NULL when out of memory. */
ch_rpc_pool *ch_rpc_pool_new(uv_loop_t *loop);

/* The usable connection to `path`, opening one (with `opts`, copied; used
 * only when a connection is opened) if there is none or the last one is not
 * usable; NULL with err filled when one cannot even be started (out of
 * memory). */
ch_rpc_conn *ch_rpc_pool_get(ch_rpc_pool *pool, const char *path, const ch_rpc_opts *opts,
                             ch_error *err);

/* Closes the connections not used (ch_rpc_pool_get) for idle_ms and with no
 * call open; returns how many. */
int ch_rpc_pool_sweep(ch_rpc_pool *pool, uint64_t idle_ms);

/* Closes every connection (their open calls end CANCELLED) and frees the
 * pool; the loop must run afterwards for the connections' close callbacks. */
void ch_rpc_pool_free(ch_rpc_pool *pool);
