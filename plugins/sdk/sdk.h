/* sdk.h: libcrihook's inside, shared by its files (never installed).
 *
 *   serve.c     crihook_serve(): grpc start-up, the completion-queue loop,
 *               signals and the graceful shutdown
 *   call.c      one hook call: request it, decode, run the callback, answer,
 *               log
 *   socket.c    the socket file: directory, stale or live owner, mode, removal
 *   response.c  the helpers a callback uses to read requests and build answers
 *
 * Everything runs on the thread that called crihook_serve(): the loop drains
 * one completion queue, and each tag is a pointer to an sdk_tag embedded in
 * the state it belongs to. */
#pragma once

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "crihook_plugin.h"

typedef struct sdk_tag sdk_tag;
struct sdk_tag {
  void (*fn)(sdk_tag *self, bool ok);
};

#define SDK_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The state of one crihook_serve(). */
typedef struct sdk_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  const crihook_plugin_ops *ops;
  void *user;
  bool accepting;    /* false once shutdown began: pending requests are not re-armed */
  bool log_debug;    /* CRIHOOK_PLUGIN_LOG=debug */
  size_t live_calls; /* sdk_call states allocated, requested or answering */
} sdk_server;

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
