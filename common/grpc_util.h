/* SPDX-License-Identifier: Apache-2.0 */
/* grpc_util.h: small helpers on top of grpc core for the code that still
 * uses it: the plugin SDK (libcrihook's hook server), the unit tests' fake
 * servers and clients, and the benchmark's client. crihookd and crihookctl
 * do not (their gRPC calls go through rpc/rpc.h).
 *
 * - ch_channel_open(): an insecure channel to a unix endpoint with the
 *   arguments every such client wants (16 MiB messages, 1 MiB metadata,
 *   fast reconnect, no retries).
 * - ch_unary_call(): a blocking unary call with raw request/response bytes,
 *   on its own pluck completion queue; for control paths, never for the
 *   data plane. */
#pragma once

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "status.h"

#define CH_DEFAULT_MAX_MSG (16 * 1024 * 1024)
#define CH_MAX_METADATA (1024 * 1024)

/* A channel/server argument (grpc core has no public constructor). The key
 * must outlive the grpc_channel_args it goes into. */
grpc_arg ch_arg_int(const char *key, int value);

/* Returns a channel (never NULL: grpc reports connection errors per call). */
grpc_channel *ch_channel_open(const char *target);

typedef struct ch_unary_result {
  grpc_status_code status;
  char details[512];
  uint8_t *response; /* malloc'd, owned by the caller (free); NULL if none */
  size_t response_len;
} ch_unary_result;

/* Makes one unary call. Returns 0 when the call completed (whatever its
 * status: see result->status) or -1 when it could not be made at all. */
int ch_unary_call(grpc_channel *channel, const char *method, const void *request,
                  size_t request_len, int timeout_ms, const grpc_metadata *md, size_t md_count,
                  ch_unary_result *result, ch_error *err);

void ch_unary_result_clear(ch_unary_result *result);

/* Fills ops[0..3] with a unary server's whole answer: initial metadata (in
 * the same batch as the status, so an error is a valid trailers-only
 * answer), `message` if not NULL, the status, and the wait for the close.
 * Returns the number of ops (3 or 4). */
size_t ch_unary_server_ops(grpc_op ops[4], grpc_byte_buffer *message, grpc_status_code status,
                           grpc_slice *details, int *cancelled);

/* Flattens a (possibly compressed-free) byte buffer into one malloc'd block. */
uint8_t *ch_byte_buffer_flatten(grpc_byte_buffer *bb, size_t *len);

/* A gpr_timespec `ms` milliseconds from now on the monotonic clock. */
gpr_timespec ch_deadline_ms(int64_t ms);

/* Shuts down a completion queue, drains it until GRPC_QUEUE_SHUTDOWN and
 * destroys it (a next-type queue; everything queued must be harmless to
 * drop, its owners already gone). */
void ch_queue_destroy(grpc_completion_queue *cq);
