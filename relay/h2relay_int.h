/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_int.h: the relay's internal types, shared by h2relay.c (listener,
 * connections, socket I/O), h2relay_stream.c (nghttp2 callbacks, streams,
 * flow control), h2relay_record.c (what both engines report of a stream)
 * and the verbatim engine (h2verbatim_int.h). Not a public API: see
 * h2relay.h for the rules. */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "h2relay.h"
#include "h2relay_pool.h"

#define H2R_READ_SLAB (64 * 1024)

typedef struct h2r_conn h2r_conn;

/* What an intercepted stream does, per engine: the terminating relay's
 * streams (h2relay_stream.c) and the verbatim relay's (h2verbatim.c). The
 * public h2r_call_* functions (h2relay_call.c) go through it. */
typedef struct h2r_call_ops {
  int (*forward)(h2r_call *call, const uint8_t *body, size_t len);
  void (*refuse)(h2r_call *call, int grpc_status, const char *message);
} h2r_call_ops;

/* The part of a stream its owner holds: first in either engine's stream. */
struct h2r_call {
  const h2r_call_ops *ops;
  void *data;       /* h2r_call_set_data */
  const char *path; /* :path, NUL-terminated (NULL: none yet) */
  uint64_t deadline_ns;
};

/* What both engines learn of a stream for its report and its answer: kept
 * in each stream (h2r_stream.rec, h2v_stream.rec), filled and read by the
 * h2r_record_* functions below (h2relay_record.c) only. Strings are the
 * relay pool's. */
typedef struct h2r_record {
  char *path; /* :path, NUL-terminated (call.path points here); NULL: none yet */
  size_t path_len;
  int route;
  unsigned tag; /* h2r_route_out.tag */
  bool self_probe, client_reset;
  int grpc_status;    /* of the answer the client gets; -1 until known */
  char *grpc_message; /* as on the wire (percent-encoded); NULL: none */
  size_t grpc_message_len;
  uint64_t started_ns; /* uv_hrtime() when the stream began */
} h2r_record;

typedef struct h2r_backend h2r_backend;
typedef struct h2r_stream h2r_stream;

/* A received DATA chunk waiting for the other side's session. It first
 * borrows its bytes from the relay's read slab (p points there): most DATA
 * leaves in the flush that ends the same read, so it is copied once, from
 * the slab into the outgoing batch. What is still queued when that read's
 * flush is over is copied into data[] (h2r_chunks_keep), because the next
 * read reuses the slab. */
typedef struct h2r_chunk {
  struct h2r_chunk *next;
  size_t len, off;
  const uint8_t *p; /* the bytes: the slab while borrowed, else data */
  bool borrowed;
  uint64_t batch; /* the batch whose write refers to its bytes (0: none) */
  uint8_t data[];
} h2r_chunk;

/* One piece of the write being gathered (h2relay.c gather): bytes in the
 * relay's scratch buffer at `off`, or (p set) DATA payload still in a
 * chunk, written from there with writev instead of being copied. */
typedef struct h2r_seg {
  const uint8_t *p;
  size_t off, len;
} h2r_seg;

/* DATA pieces at least this long are written from their chunk; shorter
 * ones are copied into the scratch (an iovec costs more than the copy). */
#define H2R_REF_MIN 512

/* A header list copied from the wire: names and values live NUL-terminated
 * in one buffer (off[i]: where header i's name starts; its value follows
 * the name's NUL), so a list costs three allocations whatever its length.
 * nv[i] holds lengths and flags; hdrs_nv() points it into buf. */
typedef struct h2r_hdrs {
  nghttp2_nv *nv;
  size_t *off;
  size_t n, cap;
  uint8_t *buf;
  size_t blen, bcap;
} h2r_hdrs;

/* Where a direction's byte stream is in its gRPC framing (a 5-byte prefix:
 * flag, 32-bit length; then the message), read as the DATA passes. */
typedef struct h2r_frames {
  uint32_t left;  /* message bytes still to come */
  uint8_t hdr[5]; /* the prefix being read */
  uint8_t have;   /* prefix bytes seen */
  unsigned count; /* messages begun */
} h2r_frames;

/* One direction of a stream: what the source side received, queued for
 * the sink side's data provider. */
typedef struct h2r_half {
  h2r_frames frames;
  h2r_chunk *head, *tail;
  size_t queued;     /* bytes in the queue, not yet consumed at the source */
  bool end;          /* the source ended this direction */
  bool deferred;     /* the sink's data provider returned DEFERRED */
  bool credited;     /* queued bytes were consumed at arrival (held body) */
  h2r_hdrs trailers; /* sent after the DATA, if any */
} h2r_half;

struct h2r_stream {
  h2r_call call; /* first: the owner's handle (path, deadline, data) */
  h2r_conn *c;
  h2r_stream *prev, *next;
  int32_t csid, bsid; /* client and backend stream ids (bsid 0: not opened) */
  h2r_backend *b;     /* the backend the stream was opened on */
  h2r_record rec;     /* path, route, status: the report's */
  h2r_hdrs req, resp;
  h2r_half up, down; /* client -> backend, backend -> client */
  bool ready;        /* request headers complete: waiting for a backend */
  bool bopen;        /* the backend stream is open */
  bool client_closed;
  bool answered;          /* the response to the client has ended or is ending */
  bool resp_sent;         /* response HEADERS submitted to the client */
  bool held, held_failed; /* the request is held whole (intercept) */
  uint8_t *hbuf;
  size_t hlen, hcap;
  bool intercept;    /* h2r_route_out.intercept: request and answer held */
  bool waiting;      /* the request is whole: the owner decides (h2r_call_forward) */
  bool answer_held;  /* response HEADERS arrived and are held with the answer */
  bool answer_ended; /* the response HEADERS carried END_STREAM (trailers-only) */
  uint8_t *abuf;     /* the held answer's DATA */
  size_t alen, acap;
  bool streaming, ended_by_drain;
};

struct h2r_backend {
  uv_pipe_t pipe;
  uv_timer_t timer; /* the connect and handshake bound (H2R_BACKEND_HELLO_MS) */
  int handles;      /* of pipe and timer, not closed yet */
  bool greeted;     /* the backend's SETTINGS arrived */
  bool retired;     /* it sent GOAWAY: on c->retired, finishing its streams */
  h2r_backend *rnext;
  int route;
  uv_connect_t creq;
  nghttp2_session *s;
  h2r_conn *c; /* NULL once detached (lost or its connection closed) */
  bool up;
};

struct h2r_conn {
  h2r *r;
  struct h2v_conn *v; /* the verbatim engine's state, if it serves this one */
  h2r_conn *prev, *next;
  uv_pipe_t pipe;
  nghttp2_session *s;
  h2r_backend *b[H2R_ROUTES]; /* where each route's new streams go */
  h2r_backend *retired;       /* backends that said GOAWAY, still finishing streams */
  h2r_stream *streams;
  size_t borrowed; /* chunks of its streams still pointing into the slab */
  bool closing;
  /* accept side (h2relay.c): the preface and idle bounds */
  uint64_t born;     /* uv_now at accept */
  uint64_t busy_at;  /* uv_now when last seen with an open stream */
  uint64_t seen;     /* preface bytes read so far (up to its end) */
  uint8_t fhd[9];    /* the first frame's header, after the 24-byte magic */
  bool preface_done; /* magic + the whole first SETTINGS frame read */
  bool idle_goaway;  /* GOAWAY(NO_ERROR) submitted for idleness */
};

struct h2r {
  uv_loop_t *loop;
  uv_pipe_t listener;
  h2r_config cfg; /* paths below are owned copies */
  char *listen_path, *backend_path;
  char *route_paths[H2R_ROUTES]; /* owned copies; [0] is backend_path */
  atomic_int own_live;           /* live client streams, unless cfg.live_streams */
  atomic_int *live_streams;      /* &own_live or cfg.live_streams */
  bool draining, listener_gone;
  size_t probe_len; /* strlen(cfg.self_probe_header), 0 if none */
  h2r_pool *pool;   /* streams, header lists, chunks, nghttp2's objects */
  uint8_t *slab;    /* every socket read lands here (H2R_READ_SLAB) */
  uint8_t *scratch; /* frames gathered for one write (h2relay.c send_batch) */
  size_t scratch_len, scratch_cap;
  h2r_seg *segs; /* the write being gathered, in order */
  size_t nsegs, segs_cap, batch_len;
  uv_buf_t *bufs;   /* segs resolved for writev (segs_cap of them) */
  uint64_t batch;   /* the number of the batch being gathered or the last */
  bool in_batch;    /* a batch is being gathered and written */
  h2r_chunk *spent; /* chunks freed while the batch refers to them */
  h2r_conn *conns;
  nghttp2_session_callbacks *server_cbs, *client_cbs;
  nghttp2_option *opt;  /* the backend sessions' */
  nghttp2_option *sopt; /* the client sessions': opt without HTTP messaging checks */
  bool closing;
  bool in_recv;  /* inside a session's mem_recv: its read flushes after */
  bool verbatim; /* new connections go to the verbatim engine (h2verbatim.c) */
  /* accept side (h2relay.c) */
  uv_timer_t *sweep;  /* preface and idle bounds (own allocation: freed by its close) */
  uint64_t sweep_ms;  /* its period */
  int reserve_fd;     /* spare descriptor for EMFILE (-1: none) */
  bool shed_pending;  /* a pending connection could not be shed: retry */
  h2r_counters stats; /* .open counts r->conns */
};

/* h2relay_record.c */
void h2r_record_start(h2r_record *rec); /* grpc_status -1, started now */
/* A field of the request's first header block: :path (the first one;
 * call->path then points at it), grpc-timeout (call->deadline_ns), the
 * self-probe mark. */
void h2r_record_request_field(const h2r *r, h2r_record *rec, h2r_call *call, const uint8_t *name,
                              size_t nlen, const uint8_t *value, size_t vlen);
/* A field of an answer's header block: grpc-status, grpc-message. */
void h2r_record_answer_field(h2r_pool *p, h2r_record *rec, const uint8_t *name, size_t nlen,
                             const uint8_t *value, size_t vlen);
void h2r_record_message(h2r_pool *p, h2r_record *rec, const uint8_t *m, size_t n);
/* cfg->route() on the path: sets rec's route (out of range: 0) and tag. */
h2r_route_out h2r_record_route(const h2r_config *cfg, h2r_record *rec);
h2r_answer h2r_record_answer(const h2r_record *rec, const uint8_t *body, size_t len);
/* cfg->on_stream_end(), if set, with the end time now. */
void h2r_record_report(const h2r_config *cfg, const h2r_record *rec, void *call_data);
void h2r_record_free(h2r_pool *p, h2r_record *rec);

/* h2relay.c */
void h2r_flush(h2r_conn *c);
/* After a backend read: the client's frames (the answer) are written first,
 * the backend's own (PING ACK, WINDOW_UPDATE) after them. */
void h2r_flush_client_first(h2r_conn *c);
/* The batch being gathered: bytes copied in, or referred to (they must stay
 * as they are until the batch is written: h2relay_stream.c chunk_free). */
int h2r_batch_copy(h2r *r, const uint8_t *d, size_t n);
int h2r_batch_ref(h2r *r, const uint8_t *p, size_t n);
void h2r_conn_close(h2r_conn *c);
/* The verbatim engine hands a connection it has not read from to the
 * terminating engine (h2relay.c). */
void h2r_conn_fallback(h2r_conn *c);
/* Starts or stops reading the client (the verbatim engine's backpressure). */
void h2r_conn_reading(h2r_conn *c, bool on);
h2r_backend *h2r_backend_get(h2r_conn *c, int route); /* connects if needed */
void h2r_backend_lost(h2r_backend *b);
void h2r_backend_greeted(h2r_backend *b);
void h2r_backend_retire(h2r_backend *b);

/* h2relay_stream.c */
/* Reads n bytes of a direction's DATA into its gRPC framing state; -1 if a
 * message announces more than max bytes (0: no bound), *at set to where its
 * prefix began relative to d (negative: in earlier DATA), *announced to its
 * length. */
int h2r_frames_scan(h2r_frames *f, const uint8_t *d, size_t n, size_t max, long *at,
                    uint32_t *announced);
/* grpc-status's value: its leading digits (at most 4), 0 if none. */
int h2r_grpc_status_value(const uint8_t *v, size_t len);
/* grpc-timeout's value in ns (uv_hrtime units); 0 if malformed. */
uint64_t h2r_grpc_timeout_ns(const uint8_t *v, size_t len);
int h2r_callbacks_new(h2r *r);
void h2r_stream_open_backend(h2r_stream *s);
void h2r_stream_answer(h2r_stream *s, int grpc_code, const char *msg);
void h2r_stream_free(h2r_stream *s);       /* unconditionally, no credit returned */
void h2r_stream_maybe_free(h2r_stream *s); /* once both halves are closed */
void h2r_stream_end_for_drain(h2r_stream *s, const char *msg);
/* Copies every chunk of c's streams that still borrows the read slab; called
 * once a read's flush is over, before the slab is read into again. */
void h2r_chunks_keep(h2r_conn *c);
