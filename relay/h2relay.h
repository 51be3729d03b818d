/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2relay.h: an HTTP/2 stream relay on libuv + nghttp2: crihookd's data
 * plane (proxy/dataplane.h runs one per loop and routes its streams).
 *
 * What it does
 *   Listens on a unix socket for HTTP/2 with prior knowledge (h2c, what grpc
 *   clients speak on unix sockets). For each client connection it opens ONE
 *   backend HTTP/2 connection to the backend unix socket (lazily, and again
 *   after a loss, on the next stream). Each client stream becomes one backend
 *   stream:
 *   - request headers go to the backend as the client sent them, in order
 *     (pseudo headers, user-agent, grpc-timeout, grpc-encoding, custom
 *     metadata); only connection-specific headers (connection, keep-alive,
 *     proxy-connection, transfer-encoding, upgrade) are dropped (nghttp2
 *     already treats a request carrying one as malformed, RFC 9113 8.2.2,
 *     and resets that stream);
 *   - DATA is relayed as it arrives, never decoded; request trailers too;
 *   - the backend's response HEADERS, DATA and trailers come back as sent; a
 *     trailers-only answer (HEADERS with END_STREAM) stays trailers-only;
 *   - RST_STREAM in either direction is propagated with its error code;
 *   - a backend connection that fails (connect error, EOF, protocol error)
 *     ends the client's open streams with gRPC UNAVAILABLE: trailers-only if
 *     no response headers were relayed yet, else as trailers after the DATA
 *     already queued.
 *
 * Flow control (the bound)
 *   nghttp2's automatic WINDOW_UPDATE is off on both sessions. Bytes received
 *   on one side are consumed (nghttp2_session_consume, which gives the peer
 *   its credit back) only when the other side's session has copied them into
 *   a DATA frame it writes, or when they are dropped (stream answered or
 *   closed). So the DATA queued in the relay is at most, per stream and
 *   direction, one stream receive window (H2R_WINDOW, advertised in SETTINGS)
 *   and, per connection and direction, one connection receive window
 *   (H2R_CONN_WINDOW, 4 MiB: a stalled stream takes only its own 64 KiB of
 *   it, so the connection's other streams keep flowing). On top of that,
 *   encoded frames wait in each socket's write queue: frames are produced
 *   only while the queue is below H2R_WRITE_HIGH, one batch of at most
 *   H2R_WRITE_HIGH + one frame at a time, so under 2 x H2R_WRITE_HIGH +
 *   1 MiB (a frame) per socket. A client that does not read its socket
 *   (whatever window it advertises) thus holds at most one connection window
 *   of answers in the relay, and a stream it does not credit one stream
 *   window; the backend stalls on flow control; the same holds for a backend
 *   that does not read.
 *   Header memory is bounded by H2R_MAX_STREAMS streams x their header
 *   blocks (at most 9 MiB each: H2R_MAX_FRAME below) per connection.
 *   An intercepted stream (below) holds its request and its answer whole
 *   instead, each up to max_held_bytes, consumed (credited) as it arrives.
 *
 * Copies and allocations (h2relay_int.h h2r_chunk, h2relay_pool.h)
 *   A DATA payload stays in the relay's read slab while the flush that ends
 *   the same read writes it: DATA frames are sent with NGHTTP2_DATA_FLAG_
 *   NO_COPY, and the payload goes out by writev from where it lies (pieces
 *   under H2R_REF_MIN are copied into the batch). Only what is still queued
 *   after that flush (a stalled reader, a closed window) is copied out of
 *   the slab. nghttp2's objects and the relay's streams, header lists and
 *   chunk records come from a per-relay pool of free lists.
 *
 * Header limits (nghttp2's)
 *   A header block up to H2R_MAX_HEADER_BLOCK is relayed; but nghttp2's HPACK
 *   decoder refuses any single header field over 64 KiB (NGHTTP2_HD_MAX_NV,
 *   fixed at build time; the verbatim engine's own decoder, hpack_decode.h,
 *   keeps the same bound) with a COMPRESSION_ERROR, which ends the whole
 *   client connection. crihookd accepts that limit (kubelet's metadata is a
 *   few hundred bytes; grpc core's data plane took 200 KiB values): the
 *   README says so and e2e-fidelity shows both sides of it.
 *
 * gRPC awareness (crihookd sets max_msg_size)
 *   The relay reads each direction's gRPC framing (5-byte prefixes) as the
 *   DATA passes, without copying: a message announced larger than
 *   max_msg_size ends the call with RESOURCE_EXHAUSTED and resets the
 *   backend's stream; a request that ends inside a message is answered
 *   INTERNAL and reset at the backend. grpc-timeout is read: an answer whose
 *   HEADERS arrive after the deadline becomes DEADLINE_EXCEEDED. grpc-status
 *   and grpc-message of the answer the client got go to on_stream_end.
 *
 * Routes
 *   route(path) picks one of H2R_ROUTES backends per stream; each client
 *   connection has at most one connection per route (crihookd: the runtime,
 *   the image runtime).
 *
 * Interception (the seam hooked calls are handled at)
 *   route() may set out->intercept for a stream. Its headers still go to the
 *   backend as the client sent them, and the backend's come back as sent
 *   (trailers-only stays trailers-only); what changes is when:
 *   - the request body is held whole (up to max_held_bytes, else
 *     RESOURCE_EXHAUSTED) and shown to on_request(ud, call, body, len); the
 *     backend stream opens only when the owner calls h2r_call_forward()
 *     with the body to send (the one held, or one of its own), or never, if
 *     it calls h2r_call_refuse() (the client gets that status,
 *     trailers-only). Either may come later, from any callback of the loop;
 *   - the answer is held whole too (headers, DATA up to max_held_bytes,
 *     trailers) and shown to on_answer(ud, call, answer) before any of it
 *     goes to the client, then relayed as the backend sent it. An answer
 *     the relay ends itself (deadline passed, backend lost, message over
 *     max_msg_size) is not shown. (The verbatim engine below differs in
 *     when: the request's headers go on at once and only its DATA waits;
 *     the answer's headers and DATA go on, copied, and its last header
 *     block waits for on_answer, so the call still ends for the client
 *     only after the owner has seen it);
 *   - on_stream_end reports the call like any stream, with its call_data;
 *     the call handle is invalid from then on (a client that resets while
 *     the owner decides ends the call there: the owner must drop what it
 *     was doing for it, and never forward it).
 *   No hook logic here: proxy/dataplane.c is the owner in crihookd,
 *   tests/bench/h2relay_main.c a scripted one for the tests.
 *
 * Ownership
 *   h2r_start() returns a relay that owns its listener, every client
 *   connection, every backend connection and every stream; all run on the
 *   caller's uv loop, single-threaded (no locks). h2r_close() closes all of
 *   them; the loop must then run until their close callbacks have freed them
 *   (uv_run until it returns 0). A stream is freed when both its client and
 *   its backend halves are closed (or the connection goes away). A backend
 *   connection detaches from its client connection when lost and frees
 *   itself in its close callback.
 *
 * Accept side (h2relay.c; bounds in h2r_config, counters in h2r_stats)
 *   - at most max_conns client connections: one more is accepted and closed
 *     at once (refused_over_cap);
 *   - a connection that has not sent the preface and its first SETTINGS
 *     within preface_timeout_ms is closed (closed_preface); one with no open
 *     stream for idle_ms gets GOAWAY(NO_ERROR) and is closed (closed_idle);
 *     one sweep timer per relay checks both (see sweep_cb for why);
 *   - the listener never stalls: a connection that cannot be served (out
 *     of memory) is accepted and closed (shed); on EMFILE/ENFILE libuv 1.44
 *     sheds the pending connections with its own reserve descriptor, and
 *     where that reserve is gone (another thread took the slot) the relay's
 *     own reserve does it instead of letting libuv spin in its accept loop.
 *
 * Drain: h2r_drain() closes the listener, sends GOAWAY on every connection
 *   and ends streaming streams with UNAVAILABLE; h2r_close() ends the rest.
 *
 * Known limits: a backend that never answers is left to the client's own
 *   deadline (the relay checks grpc-timeout only when an answer arrives).
 *
 * Verbatim (h2r_config.verbatim; h2verbatim.c)
 *   Everything above describes the terminating engine: an nghttp2 session
 *   on each side, header lists and DATA copied between them. With verbatim
 *   set (and every route leading to the same backend) a client connection
 *   gets its own backend connection at accept instead, and the frames go
 *   through as they came, HTTP/2 never ended: that costs what a byte relay
 *   costs (scripts/bench.sh), where ending HTTP/2 on both sides costs
 *   nghttp2's two sessions and a header block re-encoded per call. What the
 *   verbatim engine reads and changes:
 *   - it reads each header block through an HPACK decoder mirroring the
 *     receiver's (the request's :path, grpc-timeout, the self-probe mark;
 *     the answer's grpc-status and grpc-message), every frame header, and
 *     the gRPC framing of DATA (max_msg_size, as above);
 *   - the client's SETTINGS reach the backend with HEADER_TABLE_SIZE 0, so
 *     the backend's header blocks stand alone (no dynamic table): that is
 *     what lets the relay hold an intercepted call's trailers (or its
 *     trailers-only answer) for the owner, drop the answer of a stream it
 *     has ended, and write answers of its own
 *     (literals without indexing) without putting the client's HPACK
 *     decoder out of step. The client's own blocks keep its table and are
 *     always passed in order; the backend's SETTINGS reach the client with
 *     MAX_CONCURRENT_STREAMS at most H2R_MAX_STREAMS;
 *   - an intercepted request's DATA is held (its HEADERS have gone on) and
 *     the owner's body is sent in its place; connection-level credit is
 *     the relay's to hand out (top of h2verbatim.c), so a body a hook made
 *     larger or smaller, or a request it refused, never leaves the client
 *     and the backend disagreeing about the window;
 *   - what the relay ends itself (a refusal, an over-size message, a held
 *     request or answer over max_held_bytes, an answer after the deadline,
 *     the drain) gets trailers-only (or trailers) on the client's stream
 *     and RST_STREAM(CANCEL) on the backend's.
 *   Differences a peer can see, against the terminating engine:
 *   - a refused or over-size intercepted request has had its headers sent
 *     to the backend, followed by RST_STREAM(CANCEL): a gRPC server runs no
 *     handler for it (the message never came), but it sees the call begin;
 *   - a request that ends inside a message reaches the backend, which
 *     answers it (a gRPC server says INTERNAL, as the relay would);
 *   - a lost backend ends the open streams with UNAVAILABLE as above, and
 *     then the client connection (GOAWAY, then close): the client's next
 *     call connects again, to a fresh backend connection. A backend that
 *     cannot be reached before the client has sent a byte leaves the
 *     connection to the terminating engine (UNAVAILABLE per stream, a
 *     reconnect per stream);
 *   - the backend's PINGs, SETTINGS and WINDOW_UPDATEs reach the client
 *     (the latter recomputed at connection level), as they would directly.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

/* Advertised initial stream window, both sides (the per-stream bound). */
#define H2R_WINDOW 65535
/* The connection receive window, both sides (the per-connection bound).
 * Larger than a stream's: a stream whose reader stalls takes at most
 * H2R_WINDOW of it, so the connection's other streams (kubelet makes every
 * call over one connection) keep flowing until 64 streams stall at once. */
#define H2R_CONN_WINDOW (4 << 20)
/* Frames are produced for a socket only while its write queue is below. */
#define H2R_WRITE_HIGH 65536
/* Largest header block the relay sends (nghttp2's default is 64 KiB). */
#define H2R_MAX_HEADER_BLOCK (1 << 20)
/* A backend must connect and send its SETTINGS this fast, or its streams
 * get UNAVAILABLE (a backend that accepts and never speaks). */
#define H2R_BACKEND_HELLO_MS 1000
/* SETTINGS_MAX_FRAME_SIZE advertised both sides. nghttp2 (Debian's 1.52
 * with the CVE-2024-28182 fix) ends a connection whose header block takes
 * more than 8 CONTINUATION frames; with HTTP/2's default 16 KiB frames that
 * is any block over ~144 KiB. 1 MiB frames let a peer send header blocks
 * up to 9 MiB (DATA stays bounded by the flow-control windows, and nghttp2
 * reads frames incrementally, so nothing is buffered whole). */
#define H2R_MAX_FRAME (1 << 20)
/* Concurrent streams a client may open on one connection. */
#define H2R_MAX_STREAMS 1024
/* A client connection that has not sent the HTTP/2 preface and its first
 * SETTINGS frame within this bound is closed (a silent client, half a
 * preface), as grpc core's handshake timeout did in the data plane before. */
#define H2R_PREFACE_TIMEOUT_MS 10000
/* A client connection with no open stream for this long gets a
 * GOAWAY(NO_ERROR) and is closed (grpc core's max connection idle). */
#define H2R_IDLE_MS (5 * 60 * 1000)
/* Client connections at once; beyond, a new one is accepted and closed. */
#define H2R_MAX_CONNS 4096

/* Backends a stream can be routed to (crihookd: runtime, image). */
#define H2R_ROUTES 2

/* An intercepted stream, as its owner sees it (see Interception above);
 * either engine's (h2relay_int.h h2r_call_ops). */
typedef struct h2r_call h2r_call;

/* What the owner learns when a client stream ends (on_stream_end). */
typedef struct h2r_stream_end {
  const char *path; /* :path as the client sent it ("" if none) */
  size_t path_len;
  int route;
  int grpc_status;          /* from the answer the client got; -1: none (reset, lost) */
  const char *grpc_message; /* as on the wire (percent-encoded); NULL: none */
  size_t grpc_message_len;
  uint64_t started_ns, ended_ns; /* uv_hrtime() */
  bool self_probe;               /* the request carried cfg.self_probe_header */
  bool client_reset;             /* the client reset the stream before its answer ended */
  unsigned tag;                  /* what route() put in h2r_route_out.tag */
  void *call_data;               /* an intercepted stream's h2r_call_set_data, else NULL */
} h2r_stream_end;

/* An intercepted stream's answer, whole, before the client gets it. */
typedef struct h2r_answer {
  int grpc_status;     /* from the headers or trailers; -1: none */
  const uint8_t *body; /* every DATA byte, gRPC framing included */
  size_t len;
  const char *grpc_message; /* as on the wire (percent-encoded); NULL: none */
  size_t grpc_message_len;
} h2r_answer;

/* What route() says of a stream besides its route (zeroed before the call;
 * fields may be added at the end). */
typedef struct h2r_route_out {
  bool streaming; /* h2r_drain() ends it as a stream */
  unsigned tag;   /* the owner's own bits, handed back in h2r_stream_end */
  bool intercept; /* hold request and answer for the owner (Interception) */
} h2r_route_out;

typedef struct h2r_config {
  const char *listen_path;  /* unix socket to listen on (created) */
  const char *backend_path; /* unix socket of the HTTP/2 backend (route 0) */
  void *ud;                 /* every callback's first argument */
  /* Interception (see above): called for the streams route() intercepts.
   * NULL on_request forwards the held body as it is. */
  void (*on_request)(void *ud, h2r_call *call, const uint8_t *body, size_t len);
  void (*on_answer)(void *ud, h2r_call *call, const h2r_answer *answer);
  size_t max_held_bytes; /* an intercepted request or answer; 0: 16 MiB */
  /* Optional routing: route(ud, path, len, &out) picks one of H2R_ROUTES
   * backends for a stream once its request headers are complete (NULL:
   * route 0), and fills `out` (whether h2r_drain() should end it as a
   * stream; a tag of the owner's, so that what it learnt of the path need
   * not be learnt again at the stream's end); a route's backend is
   * route_paths[r] (route 0: backend_path). */
  int (*route)(void *ud, const char *path, size_t len, h2r_route_out *out);
  const char *route_paths[H2R_ROUTES];
  /* Optional: called once per client stream that had request headers. */
  void (*on_stream_end)(void *ud, const h2r_stream_end *end);
  /* A request header marking crihookd's own probe (h2r_stream_end). */
  const char *self_probe_header;
  /* If > 0: the largest gRPC message relayed either way; a bigger one ends
   * the stream with RESOURCE_EXHAUSTED and resets the backend's stream. */
  size_t max_msg_size;
  /* If true: listen on listen_fd (a bound, listening socket, taken: it is
   * closed with the relay's listener, also if h2r_start fails) instead of
   * binding listen_path. */
  bool have_listen_fd;
  int listen_fd;
  /* If set: the count of live client streams is kept here (an owner that
   * reads it from another thread, also after h2r_close). */
  _Atomic int *live_streams;
  /* Accept side bounds (0: the H2R_ default). */
  unsigned preface_timeout_ms; /* H2R_PREFACE_TIMEOUT_MS */
  unsigned idle_ms;            /* H2R_IDLE_MS */
  unsigned max_conns;          /* H2R_MAX_CONNS */
  /* Serve client connections with the verbatim engine (see Verbatim above)
   * when every route leads to backend_path; else this is ignored. */
  bool verbatim;
} h2r_config;

/* What the accept side did since h2r_start (h2r_stats). The owner logs or
 * exports them (rate limiting is its business: these only count). */
typedef struct h2r_counters {
  uint64_t open;             /* client connections open now */
  uint64_t refused_over_cap; /* accepted and closed at once: max_conns reached */
  uint64_t closed_preface;   /* closed: no preface + SETTINGS within the bound */
  uint64_t closed_idle;      /* closed with GOAWAY(NO_ERROR): no stream for idle_ms */
  uint64_t accept_errors;    /* accept failures reported by libuv (EMFILE, ...) */
  uint64_t shed;             /* accepted and closed at once: out of memory or
                                descriptors (the relay's own reserve fd) */
} h2r_counters;

typedef struct h2r h2r;

/* Binds and listens on cfg->listen_path (an existing socket file there is
 * replaced). Copies what it needs from cfg. */
int h2r_start(uv_loop_t *loop, const h2r_config *cfg, h2r **out, ch_error *err);

/* Closes the listener and every connection; frees r once the loop has run
 * the close callbacks. */
void h2r_close(h2r *r);

/* The first step of a drain: stops accepting, sends every connection a
 * GOAWAY (streams already open go on; newer ones are refused) and ends
 * the streaming streams (route set *streaming, or two answer messages relayed)
 * with UNAVAILABLE `msg`, resetting their backend streams. Calling it again
 * ends the streams that became streaming since. */
void h2r_drain(h2r *r, const char *msg);

/* Client streams alive now (any thread may read it). */
int h2r_live_streams(const h2r *r);

/* ---- an intercepted stream (loop thread; between route() and its
 * on_stream_end) ---- */

/* The owner's pointer, handed back in h2r_stream_end.call_data. */
void h2r_call_set_data(h2r_call *call, void *data);
void *h2r_call_data(const h2r_call *call);
/* :path as the client sent it. */
const char *h2r_call_path(const h2r_call *call);
/* The client's deadline (uv_hrtime clock) from grpc-timeout; 0: none. */
uint64_t h2r_call_deadline_ns(const h2r_call *call);
/* After on_request: opens the backend stream with `body` (copied; NULL:
 * the body held, unchanged) after the client's own headers. Returns -1
 * (and does nothing) if the call is not waiting for it, or when out of
 * memory (the client then gets RESOURCE_EXHAUSTED). */
int h2r_call_forward(h2r_call *call, const uint8_t *body, size_t len);
/* After on_request: answers the client `grpc_status` and `message`
 * (trailers-only); nothing reaches the backend. */
void h2r_call_refuse(h2r_call *call, int grpc_status, const char *message);
/* Copies the accept side's counters (loop thread only). */
void h2r_stats(const h2r *r, h2r_counters *out);
