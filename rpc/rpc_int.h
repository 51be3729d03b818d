/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_int.h: what rpc_conn.c (the connection: socket, nghttp2 session,
 * writes) and rpc_call.c (one call: its stream, gRPC framing and status)
 * share. Not part of the API (rpc.h).
 *
 * Ownership: a conn owns its calls until each has ended; a call that has
 * ended is off the conn's list and its stream's user data is cleared, so no
 * nghttp2 callback reaches it again; it is freed when its deadline timer's
 * close callback runs. The conn is freed when its pipe and timer are closed
 * (ch_rpc_conn_close), with every call ended before. */
#pragma once

#include <nghttp2/nghttp2.h>

#include "rpc.h"

struct ch_rpc_call {
  ch_rpc_conn *conn;
  ch_rpc_call_ops ops;
  void *ud;
  int32_t stream_id; /* 0 until submitted */
  bool unary;
  bool ended;
  bool sent;    /* its HEADERS went out (on_frame_send) */
  bool refused; /* the server refused its stream: not processed */
  bool doomed;  /* ends from the conn's `later` timer (see rpc_call.c) */
  ch_rpc_result doom;
  int64_t timeout_ms;
  uv_timer_t deadline; /* also the handle whose close frees the call */
  uint8_t *body;       /* the request with its gRPC prefix */
  size_t body_len, body_sent;
  /* the answer, as read */
  int http_status; /* 0: no response headers yet */
  bool have_grpc_status;
  int grpc_status;
  char grpc_message[512];
  uint8_t prefix[5];
  size_t prefix_got;
  uint8_t *msg; /* the message being read (in_msg) */
  size_t msg_len, msg_got;
  bool in_msg;
  unsigned messages;
  ch_rpc_call *next, *prev; /* the conn's open calls */
};

struct ch_rpc_conn {
  uv_loop_t *loop;
  uv_pipe_t pipe;
  uv_connect_t connect_req;
  uv_timer_t later; /* ends doomed calls outside ch_rpc_call_start */
  nghttp2_session *session;
  char *path; /* NULL for an fd conn */
  char *user_agent;
  char *authority;
  size_t max_recv;
  ch_rpc_call *calls;
  bool connected; /* the socket is connected (writes may go) */
  bool ready;     /* and the server's SETTINGS arrived */
  bool lost;      /* failed, lost, or told GOAWAY: no new calls */
  bool closing;
  bool in_recv; /* inside nghttp2_session_mem_recv */
  int open_handles;
  char lost_reason[256];
  uint8_t rbuf[65536];
};

/* rpc_conn.c: writes whatever nghttp2 wants to send (if connected; not
 * from inside the session's callbacks: the read that called them flushes
 * when they are done). */
void rpc_conn_flush(ch_rpc_conn *c);
/* rpc_conn.c: runs rpc_conn_end_doomed on the loop's next turn. */
void rpc_conn_later(ch_rpc_conn *c);
/* rpc_conn.c: the session's callbacks (rpc_call.c fills the stream ones). */
void rpc_call_callbacks(nghttp2_session_callbacks *cb);

/* rpc_call.c: ends a call now (its on_end, then its timer closes; a stream
 * still open is reset with CANCEL). No-op for a call that has ended. */
void rpc_call_end(ch_rpc_call *call, grpc_status_code status, bool local, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* rpc_call.c: submits the call's stream (when the conn was usable). */
int rpc_call_submit(ch_rpc_call *call);
/* rpc_call.c: ends every doomed call of the conn (the `later` timer). */
void rpc_conn_end_doomed(ch_rpc_conn *c);
