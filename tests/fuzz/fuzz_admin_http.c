/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_admin_http.c: libFuzzer target for the admin endpoints' request
 * parser (admin/admin_http.c), which reads what any client of the admin
 * socket or of --metrics-address sends.
 *
 * Input: the bytes a client sent so far, handed over as admin.c does: in a
 * buffer of exactly that size (so a read past them is seen). A parsed GET
 * must have a NUL-terminated method "GET" and path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  ch_admin_request req;
  int rc = ch_admin_http_parse(buf, size, &req);
  if (rc == 1 && (strcmp(req.method, "GET") != 0 || strlen(req.path) >= sizeof req.path)) {
    fprintf(stderr, "parsed a request that is not a GET with a bounded path\n");
    abort();
  }
  free(buf);
  return 0;
}
