/* SPDX-License-Identifier: Apache-2.0 */
/* grpc_frame.h: gRPC's length prefix on HTTP/2 DATA (a flag byte, then the
 * message's length, 32 bits big-endian), read and written in one place for
 * everything that handles messages itself: the relay's framing scan
 * (relay/h2relay_stream.c), crihook's gRPC client (rpc/rpc_call.c), the
 * hooked calls (proxy/hooked.c) and the standalone relay's scripted owner.
 * Header-only: no library, grpc core's least of all. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CH_GRPC_PREFIX 5

/* The message length a prefix announces. */
static inline uint32_t ch_grpc_frame_len(const uint8_t prefix[CH_GRPC_PREFIX]) {
  return (uint32_t)prefix[1] << 24 | (uint32_t)prefix[2] << 16 | (uint32_t)prefix[3] << 8 |
         prefix[4];
}

/* Writes the prefix of an uncompressed message of `len` bytes. */
static inline void ch_grpc_frame_put(uint8_t prefix[CH_GRPC_PREFIX], uint32_t len) {
  prefix[0] = 0;
  for (int i = 0; i < 4; i++) prefix[1 + i] = (uint8_t)(len >> (24 - 8 * i));
}

/* The message of a body that is exactly one message (its flag byte is not
 * looked at), *msg_len its length; NULL otherwise. */
static inline const uint8_t *ch_grpc_one_message(const uint8_t *body, size_t len, size_t *msg_len) {
  if (len < CH_GRPC_PREFIX || ch_grpc_frame_len(body) != len - CH_GRPC_PREFIX) return NULL;
  *msg_len = len - CH_GRPC_PREFIX;
  return body + CH_GRPC_PREFIX;
}
