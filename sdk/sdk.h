/* SPDX-License-Identifier: Apache-2.0 */
/* sdk.h: libcrihook's inside, shared by its files (never installed).
 *
 *   serve.c     crihook_serve(): grpc start-up, the completion-queue loop,
 *               signals and the graceful shutdown
 *   ops.c       the ABI: the plugin's crihook_plugin_ops read as far as its
 *               size says, and crihook_serve@CRIHOOK_0.1 for older plugins
 *   call.c      one hook call: request it, decode, run the callback, answer,
 *               log
 *   socket.c    the socket file: directory, stale or live owner, mode, removal
 *   response.c  the helpers a callback uses to read requests and build answers
 *
 * Everything runs on the thread that called crihook_serve(): the loop drains
 * one completion queue, and each tag is a pointer to a ch_tag (common/tag.h)
 * embedded in the state it belongs to. common/'s sources the SDK uses are
 * compiled into the library (see meson.build) and kept private by
 * libcrihook.map. */
#pragma once

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "crihook_plugin.h"
#include "tag.h"

/* The state of one crihook_serve(). */
typedef struct sdk_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  crihook_plugin_ops ops; /* the plugin's, as far as its size says (ops.c) */
  void *user;
  bool accepting;    /* false once shutdown began: pending requests are not re-armed */
  bool log_debug;    /* CRIHOOK_PLUGIN_LOG=debug */
  size_t live_calls; /* sdk_call states allocated, requested or answering */
} sdk_server;

/* crihook_serve() for ops already read by sdk_ops_adopt. */
int sdk_serve(const char *path, const crihook_plugin_ops *ops, void *user, crihook_error *err);

/* Copies the plugin's `ops` into `out` as far as ops->size covers, the
 * callbacks it lacks NULL. Returns -1 with `err` filled if ops->size is not
 * a crihook_plugin_ops size, or if it is larger than this library's and
 * sets callbacks the library does not know. */
int sdk_ops_adopt(const crihook_plugin_ops *ops, crihook_plugin_ops *out, crihook_error *err);

/* Arms one grpc_server_request_call; the call it brings is answered by
 * call.c. Returns 0, or -1 if out of memory or grpc refused. */
int sdk_call_request(sdk_server *s);

/* Writes one "crihook-plugin" log line to stderr (time, level, message). */
void sdk_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The socket file, around grpc's bind (grpc would silently replace a live
 * owner's socket, so the check is ours). Both fill `err` with a message that
 * starts "cannot listen on PATH: ". */
int sdk_socket_prepare(const char *path, crihook_error *err);
/* After the bind: mode 0660; *ino identifies our file for sdk_socket_remove. */
int sdk_socket_finish(const char *path, ino_t *ino, crihook_error *err);
/* Removes the socket file if it is still ours (same inode). */
void sdk_socket_remove(const char *path, ino_t ino);
