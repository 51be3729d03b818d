/* listen.c: preparing and finishing the listen socket's file (listen.h). */
#include "listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "endpoint.h"

static int make_dirs(const char *path, ch_error *err) {
  char dir[CH_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ch_fail_errno(err, errno, "mkdir %s", dir);
    *p = '/';
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ch_fail_errno(err, errno, "mkdir %s", dir);
  return 0;
}

int ch_listen_prepare(const char *path, ch_error *err) {
  if (make_dirs(path, err) != 0) return -1;
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    return ch_fail_errno(err, errno, "stat %s", path);
  }
  if (!S_ISSOCK(st.st_mode))
    return ch_fail(err, "%s exists and is not a socket; refusing to replace it", path);
  char why[128];
  int owned = ch_socket_probe(path, why, sizeof why);
  if (owned > 0)
    return ch_fail(err, "%s: another process is serving on this socket; refusing to start", path);
  if (owned < 0)
    return ch_fail(err,
                   "%s: cannot tell whether a process serves on it (%s); refusing to replace it",
                   path, why);
  if (unlink(path) != 0) return ch_fail_errno(err, errno, "remove stale socket %s", path);
  return 0;
}

int ch_listen_finish(const char *path, ch_error *err) {
  if (chmod(path, 0660) != 0) return ch_fail_errno(err, errno, "chmod 0660 %s", path);
  return 0;
}
