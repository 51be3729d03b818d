/* SPDX-License-Identifier: Apache-2.0 */
/* h2verbatim_int.h: the verbatim engine's types and the calls between its
 * two files: h2verbatim.c (the connection: sockets, writes, connection
 * credit, the backend connection, the accept side's calls) and
 * h2verbatim_frame.c (each direction's frames, the streams, the hooked
 * calls). Not a public API: see h2verbatim.c's top comment for how the
 * engine works and h2relay.h "Verbatim" for what a peer sees. */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "h2relay_int.h"
#include "h2verbatim.h"
#include "hpack_decode.h"

enum { UP, DOWN }; /* client -> backend, backend -> client */
enum { A_PASS, A_DROP, A_HOLD, A_EAT, A_CTL, A_STALL, A_ERROR };
enum { T_DATA = 0, T_HEADERS = 1, T_RST = 3, T_SETTINGS = 4, T_GOAWAY = 7, T_WU = 8, T_CONT = 9 };
#define F_END_STREAM 0x1
#define F_ACK 0x1
#define F_END_HEADERS 0x4
#define F_PADDED 0x8
#define F_PRIORITY 0x20
#define S_HEADER_TABLE_SIZE 1
#define S_MAX_CONCURRENT_STREAMS 3
#define S_INITIAL_WINDOW_SIZE 4
#define CTL_MAX 16384         /* a control frame's payload the relay reads */
#define OWN_FRAME 16384       /* DATA frames the relay writes (the minimum max) */
#define MAX_MESSAGE_TEXT 1024 /* of a grpc-message the relay writes */
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define OUT_REF_SEGS 24 /* read pieces a write refers to before copying (h2v_out_slab) */

typedef struct vbuf {
  uint8_t *p;
  size_t len, cap;
} vbuf;

typedef struct h2v_stream {
  h2r_call call; /* first: the owner's handle */
  UT_hash_handle hh;
  h2v_conn *v;
  int32_t sid;
  h2r_record rec; /* path, route, status: the report's */
  bool routed, intercept, streaming;
  bool up_end, down_end, resp_started;
  bool waiting, forwarded, sent_end, held_failed;
  bool early;    /* intercepted: the answer came whole before the owner decided */
  int doom_code; /* > 0: the relay ends the stream at this frame's end */
  char doom_msg[128];
  h2r_frames fup, fdown; /* gRPC framing of each direction's DATA */
  vbuf body;             /* intercepted: the request, held */
  vbuf held;             /* intercepted: the answer's ending header block */
  vbuf adata;            /* intercepted: a copy of the answer's DATA */
  vbuf pend;             /* a forwarded body still to be sent */
  size_t pend_off;
  int64_t bwin; /* intercepted: the backend's stream window for it */
} h2v_stream;

typedef struct vdir {
  uint8_t hd[9];
  uint8_t have;
  bool decided;
  uint32_t len, pos;
  uint8_t type, flags, act;
  int32_t sid;
  uint32_t front, pad; /* the data (or block fragment) is [front, len - pad) */
  bool pad_known;
  h2v_stream *s; /* the frame's stream (NULL: none, or freed meanwhile) */
  vbuf ctl;      /* a CTL frame's payload */
  vbuf block;    /* the header block being read */
  bool in_block, block_new, block_refuse, block_end_stream;
  uint8_t block_act;
  int32_t block_sid;
  h2v_stream *block_s;
  hpack_decoder hpack; /* the header blocks of this direction */
  size_t magic;        /* preface bytes still to check (client side) */
  uint32_t err;        /* why h2v_feed() failed: an HTTP/2 error code (0: PROTOCOL_ERROR) */
} vdir;

typedef struct vout {
  uv_stream_t *h;
  h2r_seg *segs;
  size_t nsegs, cap;
  vbuf own;   /* bytes the segments without p point into */
  vbuf later; /* the relay's frames waiting for a frame boundary */
  bool mid;   /* inside a frame or header block being passed */
} vout;

struct h2v_conn {
  h2r_conn *c; /* NULL once the client side is closed */
  h2r *r;
  int refs; /* the client pipe, the backend pipe, the hello timer */
  uv_pipe_t bpipe;
  uv_connect_t creq;
  uv_timer_t hello;
  bool bconnected, greeted, lost, closing, close_after_write;
  bool reading_client, reading_backend;
  vdir dir[2];
  vout out[2]; /* out[UP] goes to the backend, out[DOWN] to the client */
  h2v_stream *streams;
  h2v_stream *hot; /* the last stream found (stream_find) */
  int nstreams;
  int32_t last_sid;
  int64_t ab, cv, reserve; /* connection credit (top of the file) */
  uint64_t owe_backend;    /* credit for backend DATA the client never got */
  uint32_t binit;          /* the backend's SETTINGS_INITIAL_WINDOW_SIZE */
  uint32_t table_pending;  /* the backend's HEADER_TABLE_SIZE, applied at the client's ACK */
  bool has_table_pending, settings_seen, in_read, draining;
  vbuf stall; /* client bytes read, not yet fed (the backend's window is shut) */
  bool stalled;
};

/* ---- small buffers ---- */

static inline int vbuf_add(vbuf *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static inline void vbuf_free(vbuf *b) {
  free(b->p);
  *b = (vbuf){0};
}

static inline void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void frame_head(uint8_t *hd, size_t len, uint8_t type, uint8_t flags, int32_t sid) {
  hd[0] = (uint8_t)(len >> 16), hd[1] = (uint8_t)(len >> 8), hd[2] = (uint8_t)len;
  hd[3] = type, hd[4] = flags;
  put32(hd + 5, (uint32_t)sid & 0x7fffffffu);
}

/* ---- h2verbatim.c: output (frames of the relay's own go in only between
 * frames: h2v_out_emit, h2v_emit_frame) ---- */

int h2v_out_copy(vout *o, const uint8_t *p, size_t n);
/* Bytes that stay where they are until the flush (the read slab): a piece
 * right after the last one referenced joins it; else a small one is copied
 * (many small pieces become one write buffer), a large one referenced. */
int h2v_out_ref(vout *o, const uint8_t *p, size_t n);
/* The same for the start of a run of passed frames (a frame header read
 * whole): referenced even when small, so the run's frames, each joining
 * it, reach the socket without a copy; copied once a write has
 * OUT_REF_SEGS pieces, which bounds the write's buffers. */
int h2v_out_slab(vout *o, const uint8_t *p, size_t n);
/* A frame of the relay's own: now, or at the next frame boundary. */
void h2v_out_emit(vout *o, const uint8_t *p, size_t n);
/* The direction reached a frame boundary: what waited goes in. */
void h2v_out_boundary(vout *o);
void h2v_emit_frame(vout *o, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *payload,
                    size_t len);
void h2v_emit_u32(vout *o, uint8_t type, int32_t sid, uint32_t value);
/* After a read or an owner's call: credit, the stalled client, the writes. */
void h2v_finish(h2v_conn *v);
/* Direction d broke HTTP/2 (code: the RFC 9113 error code). The client's
 * error: it gets GOAWAY(code), the close once that is written, and the
 * backend connection goes (a client that never finished the preface magic
 * is not speaking HTTP/2: closed without a word). The backend's: as if it
 * were lost, UNAVAILABLE to every open stream. */
void h2v_protocol_error(h2v_conn *v, int d, uint32_t code);

/* ---- h2verbatim_frame.c ---- */

/* Reads n bytes of direction d; returns how many it took (fewer: the
 * client is stalled on the backend's window), -1 on a protocol error. */
ssize_t h2v_feed(h2v_conn *v, int d, const uint8_t *p, size_t n);
/* Ends the client's stream with a status of the relay's own, resets the
 * backend's, and forgets the stream. */
void h2v_self_answer(h2v_stream *s, int code, const char *msg);
/* Reports the stream to the owner and forgets it. */
void h2v_stream_free(h2v_stream *s);
