/* SPDX-License-Identifier: Apache-2.0 */
/* admin_http.h: the request line of the admin endpoints' HTTP (admin.h).
 *
 * Split out of admin.c so that it can be fuzzed on its own
 * (tests/fuzz/fuzz_admin_http.c): it is the first code to read what any
 * client of the admin socket or of --metrics-address sends. */
#pragma once

#include <stddef.h>

typedef struct ch_admin_request {
  char method[8]; /* "GET" when parsed */
  char path[256]; /* the request target, truncated to 255 bytes */
} ch_admin_request;

/* Reads the request line ("GET /path HTTP/1.x") at the start of the `len`
 * bytes of `buf`. Returns 0 while no line is complete (no '\n' yet); once it
 * is, replaces that '\n' with '\0' and returns 1 for a GET with `out`
 * filled, -1 for anything else (answer 400). */
int ch_admin_http_parse(char *buf, size_t len, ch_admin_request *out);
