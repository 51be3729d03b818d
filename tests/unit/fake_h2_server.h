/* SPDX-License-Identifier: Apache-2.0 */
/* fake_h2_server.h: a scriptable, misbehaving gRPC server on raw nghttp2 for
 * the unit tests of crihook's own gRPC client (rpc/rpc.h, test_rpc.c).
 *
 * grpc core's server (fake_grpc_server.h) only ever answers correctly; a
 * client must also survive a server that hangs, closes mid-call, answers
 * garbage, a message bigger than it allows, two messages to a unary call,
 * no grpc-status, an HTTP error, a reset or a GOAWAY. This server speaks
 * HTTP/2 through nghttp2's server session on a unix socket, in its own
 * thread (poll), and answers every stream by the mode set when the stream's
 * request ended (modes may be changed between calls).
 *
 * It records what it received, so a test can check what the client sent:
 * the last request's header fields in order, the last request's DATA bytes
 * (the gRPC framing included) and how many streams the clients reset. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fh2_mode {
  FH2_OK,           /* 200, content-type application/grpc, one message (the
                       request's message echoed), trailers grpc-status 0 */
  FH2_STATUS,       /* trailers-only: grpc-status and grpc-message as set by
                       fh2_set_status (the message sent as given) */
  FH2_HANG,         /* never answers (until the client resets or fh2_stop) */
  FH2_CLOSE,        /* closes the connection once the request has ended */
  FH2_GARBAGE,      /* on accept, writes bytes that are not HTTP/2, closes */
  FH2_BIG,          /* one message of fh2_set_size bytes (all sent), then OK */
  FH2_TWO_MESSAGES, /* the echo twice, then OK */
  FH2_NO_STATUS,    /* headers, the echo, END_STREAM on the DATA: no trailers */
  FH2_HTTP_503,     /* :status 503 with END_STREAM, no gRPC fields */
  FH2_STREAM,       /* fh2_set_stream: n echoes, one every interval_ms, then OK */
  FH2_RST,          /* RST_STREAM(INTERNAL_ERROR) once the request has ended */
  FH2_GOAWAY,       /* GOAWAY(last stream 0, NO_ERROR) once the request ended */
  FH2_GOAWAY_ONCE,  /* FH2_GOAWAY for the first request, then FH2_OK (a hook
                       server that restarted gracefully) */
  FH2_BAD_FRAMING,  /* headers, DATA ending inside a message (3 of a 5-byte
                       prefix), then trailers grpc-status 0 */
  FH2_COMPRESSED,   /* headers (no grpc-encoding), a message whose prefix has
                       the compressed flag set, trailers grpc-status 0 */
} fh2_mode;

typedef struct fake_h2 fake_h2;

/* Listens on unix socket `path` (replacing a file there); NULL on failure. */
fake_h2 *fh2_start(const char *path, fh2_mode mode);

/* Closes every connection, joins the thread, removes the socket, frees. */
void fh2_stop(fake_h2 *s);

void fh2_set_mode(fake_h2 *s, fh2_mode mode);
/* FH2_STATUS: the status and grpc-message (sent verbatim; NULL: none). */
void fh2_set_status(fake_h2 *s, int grpc_status, const char *message);
/* FH2_BIG: the message's length in bytes (its content is 'x's; the prefix
 * announces the length). */
void fh2_set_size(fake_h2 *s, size_t bytes);
/* FH2_STREAM: how many messages and the pause before each. */
void fh2_set_stream(fake_h2 *s, int n, int interval_ms);

/* Streams whose request ended (answered or not). */
int fh2_requests(fake_h2 *s);
/* RST_STREAM frames received from clients. */
int fh2_resets(fake_h2 *s);
/* Connections accepted. */
int fh2_connections(fake_h2 *s);
/* The value of header `name` in the last request ("" if absent), copied. */
void fh2_last_header(fake_h2 *s, const char *name, char *out, size_t len);
/* The last request's DATA, copied (at most len bytes); returns its length. */
size_t fh2_last_body(fake_h2 *s, uint8_t *out, size_t len);
