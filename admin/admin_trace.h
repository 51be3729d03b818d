/* SPDX-License-Identifier: Apache-2.0 */
/* admin_trace.h: GET /trace on the admin socket, the server side of
 * `crihookctl trace`.
 *
 *   GET /trace?method=RE&pod=NAME HTTP/1.0
 *   -> HTTP/1.0 200 OK, Content-Type: application/x-ndjson, no length,
 *      then one JSON object per line, one per CRI call that matches
 *      (observe/trace.h says what is in it and how the filters match),
 *      and {"dropped":N} after the events of a batch when N events were
 *      dropped because this client read too slowly; until the client
 *      closes or crihookd stops.
 * Both parameters are optional and URL-encoded.
 *
 * The admin socket (admin.c) reads the request line and hands the
 * connection over: ch_trace_serve() keeps its own duplicate of the socket,
 * so the caller closes its handle as usual either way. Everything runs on
 * the control loop; the data plane only ever wakes it (uv_async_send). */
#pragma once

#include <uv.h>

#include "error.h"

/* Starts streaming the trace to `client` (a connected pipe of the loop the
 * admin socket runs on), filtered by `query` (what follows "/trace" in the
 * request path: "" or "?method=...&pod=..."). The caller stops reading and
 * closes `client` afterwards in both cases. Returns -1 with `err` set for a
 * query that does not parse, a bad regex, or out of resources; nothing was
 * written to the client then (answer it 400 with err->msg). */
int ch_trace_serve(uv_stream_t *client, const char *query, ch_error *err);

/* Ends every trace stream (the daemon is stopping); their handles are freed
 * as the loop runs on. */
void ch_trace_shutdown(void);
