/* SPDX-License-Identifier: Apache-2.0 */
/* socket.c: the hook server's socket file, before and after grpc binds it.
 *
 * Before: the parent directories are created (0755), a stale socket file
 * (nobody accepts on it, by common/endpoint.c's probe) is removed, a live
 * one (a connect succeeds) or a file that is not a socket is refused, and a trial bind tells why
 * the path cannot be listened on (read-only file system, permissions, a path too long) in words
 * rather than in grpc's log. After: mode 0660, and the file's inode, so that at exit only our own
 * file is removed. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "endpoint.h"
#include "sdk.h"

static int socket_fail(crihook_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int socket_fail(crihook_error *err, const char *path, const char *fmt, ...) {
  int n = snprintf(err->message, sizeof err->message, "cannot listen on %s: ", path);
  if (n < 0 || (size_t)n >= sizeof err->message) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

static int fill_address(const char *path, struct sockaddr_un *addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr->sun_path) return -1;
  memcpy(addr->sun_path, path, strlen(path) + 1);
  return 0;
}

static int make_parent_dirs(const char *path, crihook_error *err) {
  char dir[sizeof((struct sockaddr_un *)0)->sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  for (char *p = dir + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      return socket_fail(err, path, "cannot create directory %s: %s", dir, strerror(errno));
    if (saved == '\0') return 0;
    *p = saved;
  }
}

/* The owner is probed as crihookd probes its listen socket
 * (ch_socket_probe, common/endpoint.c). */
static int replace_stale(const char *path, crihook_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    return socket_fail(err, path, "%s", strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode))
    return socket_fail(err, path, "the file exists and is not a socket; refusing to replace it");
  char why[128];
  int owner = ch_socket_probe(path, why, sizeof why);
  if (owner > 0)
    return socket_fail(err, path,
                       "another process is serving on this socket; refusing to start "
                       "(stop it first, or choose another --socket)");
  if (owner < 0)
    return socket_fail(err, path, "cannot tell whether a process serves on it (%s)", why);
  if (unlink(path) != 0)
    return socket_fail(err, path, "cannot remove the stale socket file: %s", strerror(errno));
  return 0;
}

/* A bind of our own, undone at once: grpc's failure would only say that the
 * port could not be added. */
static int trial_bind(const char *path, const struct sockaddr_un *addr, crihook_error *err) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return socket_fail(err, path, "socket: %s", strerror(errno));
  int rc = bind(fd, (const struct sockaddr *)addr, sizeof *addr);
  int saved = errno;
  close(fd);
  if (rc != 0) return socket_fail(err, path, "%s", strerror(saved));
  unlink(path);
  return 0;
}

int sdk_socket_prepare(const char *path, crihook_error *err) {
  struct sockaddr_un addr;
  if (path[0] == '\0') return socket_fail(err, path, "empty socket path");
  if (fill_address(path, &addr) != 0)
    return socket_fail(err, path, "the path is longer than the %zu bytes a unix socket allows",
                       sizeof addr.sun_path - 1);
  if (make_parent_dirs(path, err) != 0) return -1;
  if (replace_stale(path, err) != 0) return -1;
  return trial_bind(path, &addr, err);
}

int sdk_socket_finish(const char *path, ino_t *ino, crihook_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return socket_fail(err, path, "the socket file is missing after bind: %s", strerror(errno));
  if (chmod(path, 0660) != 0) return socket_fail(err, path, "chmod 0660: %s", strerror(errno));
  *ino = st.st_ino;
  return 0;
}

void sdk_socket_remove(const char *path, ino_t ino) {
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino) unlink(path);
}
