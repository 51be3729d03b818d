/* SPDX-License-Identifier: Apache-2.0 */
/* admin_client.c: talking to crihookd's admin socket (admin/admin.h):
 * connect, one GET over HTTP/1.0, read the whole answer, parse its JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "endpoint.h"

#define MAX_ANSWER (64 * 1024 * 1024)

static int read_all(int fd, char **out, size_t *len, ch_error *err) {
  size_t cap = 65536, used = 0;
  char *buf = malloc(cap + 1);
  for (ssize_t n; buf; used += (size_t)n) {
    if (used == cap) {
      char *grown = cap < MAX_ANSWER ? realloc(buf, cap * 2 + 1) : NULL;
      if (!grown) break;
      buf = grown;
      cap *= 2;
    }
    n = read(fd, buf + used, cap - used);
    if (n < 0 && errno == EINTR)
      n = 0;
    else if (n <= 0) {
      if (n < 0) break;
      buf[used] = '\0';
      *out = buf;
      *len = used;
      return 0;
    }
  }
  free(buf);
  return ch_fail_errno(err, errno ? errno : ENOMEM, "reading the admin answer");
}

int ctl_admin_connect(const char *endpoint, ch_error *err) {
  ch_endpoint ep;
  if (ch_endpoint_parse(endpoint, &ep, err) != 0) return -1;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", ep.path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
  ch_fail_errno(err, errno, "admin socket %s (is crihookd running?)", ep.path);
  if (fd >= 0) close(fd);
  return -1;
}

int ctl_admin_get(const char *endpoint, const char *path, json_t **out, ch_error *err) {
  int fd = ctl_admin_connect(endpoint, err);
  if (fd < 0) return -1;
  char request[512];
  int n = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);
  char *answer = NULL;
  size_t len = 0;
  int rc = write(fd, request, (size_t)n) == n
               ? read_all(fd, &answer, &len, err)
               : ch_fail_errno(err, errno, "writing to admin socket");
  close(fd);
  if (rc != 0) return -1;
  char *body = strstr(answer, "\r\n\r\n");
  int code = 0;
  sscanf(answer, "HTTP/1.%*d %d", &code);
  json_error_t jerr;
  *out = body ? json_loads(body + 4, 0, &jerr) : NULL;
  free(answer);
  if (code != 200 || !*out) {
    json_decref(*out);
    return ch_fail(err, "admin %s: HTTP %d", path, code);
  }
  return 0;
}
