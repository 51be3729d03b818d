/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint.h: unix socket endpoints as users write them.
 *
 * Accepted spellings: "unix:///run/x.sock", "unix:/run/x.sock", "/run/x.sock".
 * The parsed form keeps the file-system path (for stat, connect, chmod) and
 * the grpc target ("unix:/run/x.sock"). */
#pragma once

#include <stdbool.h>

#include "error.h"

#define CH_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

typedef struct ch_endpoint {
  char path[CH_PATH_MAX];
  char target[CH_PATH_MAX + 8];
} ch_endpoint;

int ch_endpoint_parse(const char *text, ch_endpoint *out, ch_error *err);

/* Probes a unix socket path with a non-blocking connect(2). Returns 1 if
 * something owns it (accepts, or its accept queue is full), 0 if nothing does
 * (missing file, refused), -1 if it cannot tell (e.g. permission denied);
 * fills `why` with a short reason either way. */
int ch_socket_probe(const char *path, char *why, unsigned why_len);
