/* SPDX-License-Identifier: Apache-2.0 */
/* admin_http.c: the admin endpoints' request line (admin_http.h). */
#include "admin_http.h"

#include <stdio.h>
#include <string.h>

int ch_admin_http_parse(char *buf, size_t len, ch_admin_request *out) {
  char *eol = memchr(buf, '\n', len);
  if (!eol) return 0;
  *eol = '\0';
  if (sscanf(buf, "%7s %255s", out->method, out->path) != 2 || strcmp(out->method, "GET") != 0)
    return -1;
  return 1;
}
