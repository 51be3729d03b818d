/* SPDX-License-Identifier: Apache-2.0 */
/* notify.c: one datagram to $NOTIFY_SOCKET (notify.h). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ch_sd_notify(const char *state, ch_error *err) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path)
    return ch_fail(err, "NOTIFY_SOCKET=%s is not a unix socket address", path);
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ch_fail(err, "notify socket: %s", strerror(errno));
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
  int saved = errno;
  close(fd);
  if (n < 0) return ch_fail(err, "notify %s: %s", path, strerror(saved));
  return 0;
}
