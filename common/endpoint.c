/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint.c: parsing unix endpoints and probing socket files (endpoint.h). */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *strip_scheme(const char *text) {
  if (strncmp(text, "unix://", 7) == 0) return text + 7;
  if (strncmp(text, "unix:", 5) == 0) return text + 5;
  return text;
}

int ch_endpoint_parse(const char *text, ch_endpoint *out, ch_error *err) {
  if (text == NULL || *text == '\0') return ch_fail(err, "empty endpoint");
  if (strstr(text, "://") != NULL && strncmp(text, "unix://", 7) != 0)
    return ch_fail(err, "endpoint %s: only unix sockets are supported", text);
  const char *path = strip_scheme(text);
  if (path[0] != '/') return ch_fail(err, "endpoint %s: the socket path must be absolute", text);
  if (strlen(path) >= sizeof out->path)
    return ch_fail(err, "endpoint %s: socket path longer than %zu bytes", text,
                   sizeof out->path - 1);
  snprintf(out->path, sizeof out->path, "%s", path);
  snprintf(out->target, sizeof out->target, "unix:%s", path);
  return 0;
}

int ch_socket_probe(const char *path, char *why, unsigned why_len) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  /* non-blocking: a live owner whose accept queue is full must not hang us */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(why, why_len, "socket: %s", strerror(errno));
    return -1;
  }
  int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  int saved = errno;
  close(fd);
  if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS) {
    snprintf(why, why_len, rc == 0 ? "accepts connections" : "busy (accept queue full)");
    return 1;
  }
  if (saved == ENOENT || saved == ECONNREFUSED) {
    snprintf(why, why_len, "%s", saved == ENOENT ? "no such file" : strerror(saved));
    return 0;
  }
  snprintf(why, why_len, "%s", strerror(saved));
  return -1;
}
