/* SPDX-License-Identifier: Apache-2.0 */
/* rpc.h: crihook's own gRPC client: unary and server-streaming calls over
 * HTTP/2 (nghttp2) on a unix socket, driven by a libuv loop.
 *
 * Why not grpc core: crihookd's data plane already speaks HTTP/2 through
 * nghttp2 on libuv (relay/h2relay.h); what still needs grpc core are a few
 * control-path calls (backend detection, the store's rebuild, the health
 * probe, crihookctl) and the hook calls. grpc core brings its call layer,
 * its own threads and about 9 MiB of resident libraries (issue 11: a C
 * program that only links libgrpc has VmRSS 9.0 MiB). A client for what
 * crihook calls (unary and server-streaming, no compression, no TLS, unix
 * sockets only) is a few hundred lines on the library the relay uses, and
 * it runs on the caller's loop, so a relay loop can make hook calls without
 * a second thread or a bridge.
 *
 * Two layers:
 *  - the asynchronous one (ch_rpc_conn, ch_rpc_call): one HTTP/2 connection
 *    per conn, any number of calls on it, every callback on the loop's
 *    thread; nothing here blocks;
 *  - the blocking one (ch_rpc_client): a private loop and one connection,
 *    reopened on the next call after a loss; one call at a time.
 *
 * What a call sends: POST, the path, te: trailers, content-type
 * application/grpc, the user-agent, grpc-timeout when the call has a
 * deadline, the caller's metadata, then the request message with its
 * 5-byte gRPC prefix and END_STREAM.
 *
 * How a call ends (ch_rpc_result, exactly one on_end per started call):
 *  - the server's grpc-status and grpc-message (percent-decoded), from the
 *    trailers or a trailers-only answer;
 *  - or a status the client decides (`local` set), never a hang:
 *      UNAVAILABLE        connect failure, connection lost, GOAWAY or
 *                         REFUSED_STREAM before an answer, HTTP 429/502/
 *                         503/504;
 *      DEADLINE_EXCEEDED  the call's timeout passed (the stream is reset);
 *      CANCELLED          ch_rpc_call_cancel, on_message asked to stop, a
 *                         CANCEL reset from the server, the conn closed;
 *      RESOURCE_EXHAUSTED an answer message over max_recv (the stream is
 *                         reset as soon as its prefix announces it, so no
 *                         more than one frame of it is ever read);
 *      INTERNAL           an answer that breaks gRPC's framing: a stream
 *                         that ends inside a message or without grpc-status,
 *                         a compressed message (nothing was negotiated), a
 *                         second message to a unary call, an unary call
 *                         answered OK without a message, another reset;
 *      UNIMPLEMENTED etc. HTTP statuses as gRPC's HTTP mapping says.
 *
 * Memory: a call holds at most one answer message (bounded by max_recv)
 * plus what nghttp2 buffers; the connection's receive window is nghttp2's
 * default, its automatic WINDOW_UPDATE on, so a caller that is slow to take
 * messages does not stall the others. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"
#include "status.h" /* ch_status_name for the codes below */

/* Largest answer message accepted unless the caller says otherwise. */
#define CH_RPC_MAX_RECV (16u << 20)

typedef struct ch_rpc_header {
  const char *name; /* lower case, as HTTP/2 wants */
  const char *value;
} ch_rpc_header;

typedef struct ch_rpc_opts {
  const char *user_agent; /* NULL: "crihook/<version>" */
  const char *authority;  /* NULL: "localhost" */
  size_t max_recv;        /* 0: CH_RPC_MAX_RECV */
} ch_rpc_opts;

typedef struct ch_rpc_request {
  const char *path;       /* "/runtime.v1.RuntimeService/Version" */
  const uint8_t *message; /* the packed request (copied); NULL: empty */
  size_t len;
  const ch_rpc_header *md; /* extra request headers (copied); may be NULL */
  size_t n_md;
  int64_t timeout_ms; /* <= 0: no deadline */
  bool unary;         /* exactly one answer message is expected */
} ch_rpc_request;

typedef struct ch_rpc_result {
  grpc_status_code status;
  char message[512]; /* grpc-message, decoded; or the client's reason */
  bool local;        /* the client decided the status (see above) */
  /* UNAVAILABLE, and the server cannot have processed the call: it was
   * never sent (the connection failed or was lost first) or the server
   * refused its stream (REFUSED_STREAM, or past a GOAWAY's last stream).
   * Such a call may be sent again on a new connection, as grpc core's
   * transparent retry would (dispatch.c does, once). */
  bool unprocessed;
} ch_rpc_result;

/* ---- asynchronous: on a libuv loop ---------------------------------------- */

typedef struct ch_rpc_conn ch_rpc_conn;
typedef struct ch_rpc_call ch_rpc_call;

typedef struct ch_rpc_call_ops {
  /* One answer message, complete and without its prefix (valid during the
   * call). Returns non-zero to cancel the call (on_end then says
   * CANCELLED). May be NULL. */
  int (*on_message)(void *ud, const uint8_t *msg, size_t len);
  /* Exactly once per started call, never from inside ch_rpc_call_start;
   * the call is freed when it returns. */
  void (*on_end)(void *ud, const ch_rpc_result *res);
} ch_rpc_call_ops;

/* Starts connecting to the unix socket `path` (a file-system path). Calls
 * may be started at once: they wait for the connection. Copies opts. */
int ch_rpc_conn_open(uv_loop_t *loop, const char *path, const ch_rpc_opts *opts, ch_rpc_conn **out,
                     ch_error *err);

/* The same on a connected stream socket (taken; closed with the conn). */
int ch_rpc_conn_open_fd(uv_loop_t *loop, int fd, const ch_rpc_opts *opts, ch_rpc_conn **out,
                        ch_error *err);

/* Ends every call still open (on_end: CANCELLED, "connection closed"),
 * then closes the socket; the conn is freed once the loop has run its close
 * callback. */
void ch_rpc_conn_close(ch_rpc_conn *c);

/* False once the connection failed, was lost or got GOAWAY: start no new
 * calls on it (they would end UNAVAILABLE); open another. */
bool ch_rpc_conn_usable(const ch_rpc_conn *c);

/* True once connected and the server's SETTINGS have arrived, until lost. */
bool ch_rpc_conn_ready(const ch_rpc_conn *c);

/* True when no call is open on the conn (closing it would end none). */
bool ch_rpc_conn_idle(const ch_rpc_conn *c);

/* Starts a call. Returns NULL only when out of memory (err filled);
 * otherwise on_end will be called from the loop, also for a conn that is
 * not usable (UNAVAILABLE). */
ch_rpc_call *ch_rpc_call_start(ch_rpc_conn *c, const ch_rpc_request *req,
                               const ch_rpc_call_ops *ops, void *ud, ch_error *err);

/* Resets the call's stream and calls on_end (CANCELLED, `why`) before
 * returning. The call must not have ended yet. */
void ch_rpc_call_cancel(ch_rpc_call *call, const char *why);

/* ---- blocking: a private loop ----------------------------------------------- */

typedef struct ch_rpc_client ch_rpc_client;

/* A client for the unix socket `path`; connects on the first call. */
ch_rpc_client *ch_rpc_client_new(const char *path, const ch_rpc_opts *opts, ch_error *err);

void ch_rpc_client_free(ch_rpc_client *c);

/* One unary call. Returns 0 when the call ended, whatever its status (see
 * res), with *answer the malloc'd answer message when the status is OK
 * (the caller frees it); -1 only when it could not be made (out of
 * memory). */
int ch_rpc_unary(ch_rpc_client *c, const ch_rpc_request *req, uint8_t **answer, size_t *len,
                 ch_rpc_result *res, ch_error *err);

typedef struct ch_rpc_stream_handler {
  int (*on_message)(void *ud, const uint8_t *msg, size_t len); /* non-zero: stop */
  int (*should_stop)(void *ud); /* polled about every 100 ms; non-zero: stop; may be NULL */
  void *ud;
} ch_rpc_stream_handler;

/* A server-streaming call: each answer message to on_message as it comes.
 * Returns as ch_rpc_unary; a call the handler stopped ends CANCELLED with
 * `local` set. */
int ch_rpc_stream(ch_rpc_client *c, const ch_rpc_request *req, const ch_rpc_stream_handler *h,
                  ch_rpc_result *res, ch_error *err);

/* True if the client's connection is up and the server has spoken
 * HTTP/2 (after a call; the self-probe's "connected"). */
bool ch_rpc_client_ready(ch_rpc_client *c);
