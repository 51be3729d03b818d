/* SPDX-License-Identifier: Apache-2.0 */
/* fake_cri_server.h: a tiny CRI server for unit tests (on fake_grpc_server.h).
 *
 * It serves one unix socket and answers every call according to its mode.
 * Its completion queue runs in its own thread. The caller owns grpc_init()
 * and grpc_shutdown(). */
#pragma once

#include <stddef.h>

typedef enum fake_cri_mode {
  FAKE_CRI_OK,                /* Version answers OK on v1 and v1alpha2 */
  FAKE_CRI_V1_UNIMPLEMENTED,  /* v1 -> UNIMPLEMENTED, v1alpha2 Version -> OK */
  FAKE_CRI_ALL_UNIMPLEMENTED, /* every call -> UNIMPLEMENTED */
  FAKE_CRI_UNAVAILABLE,       /* every call -> UNAVAILABLE */
  FAKE_CRI_HANG,              /* speaks HTTP/2 but never answers a call */
} fake_cri_mode;

#define FAKE_CRI_UNAVAILABLE_TEXT "fake runtime is down"

typedef struct fake_cri_server fake_cri_server;

/* Starts serving `path`; NULL if grpc would not bind it. */
fake_cri_server *fake_cri_start(const char *path, fake_cri_mode mode, const char *runtime_name,
                                const char *runtime_version);

/* Stops the server, joins its thread and frees everything. */
void fake_cri_stop(fake_cri_server *s);

/* How many calls the server has answered so far. */
int fake_cri_call_count(fake_cri_server *s);

/* Copies the method path of the i-th answered call into buf ("" if none). */
void fake_cri_call_method(fake_cri_server *s, int i, char *buf, size_t len);
