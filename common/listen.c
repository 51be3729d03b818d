/* SPDX-License-Identifier: Apache-2.0 */
/* listen.c: preparing and finishing the listen socket's file (listen.h). */
#include "listen.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "endpoint.h"

#define MAX_LINK_DEPTH 8

/* ---- who may change the path (listen.h: the rule) ---- */

static int check_entry(const char *p, const struct stat *st, ch_error *err) {
  uid_t me = geteuid();
  if (st->st_uid != 0 && st->st_uid != me)
    return ch_fail(err,
                   "%s is owned by uid %u, who could swap the socket; only root or crihookd's "
                   "uid (%u) may own the directories (and symlinks) on the socket's path",
                   p, (unsigned)st->st_uid, (unsigned)me);
  if (S_ISDIR(st->st_mode) && (st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX))
    return ch_fail(err,
                   "%s is writable by group or others (mode %04o, no sticky bit), who could swap "
                   "the socket; use a directory only root or crihookd's uid can write",
                   p, (unsigned)(st->st_mode & 07777));
  return 0;
}

static int check_dir_chain(const char *dir, int depth, ch_error *err);

/* A symlink on the way: its target and everything above it obey the rule
 * too. */
static int check_link(const char *p, int depth, ch_error *err) {
  if (depth >= MAX_LINK_DEPTH) return ch_fail(err, "%s: too many symlinks", p);
  char target[PATH_MAX];
  if (!realpath(p, target)) {
    if (errno == ENOENT) return 0; /* dangling: mkdir fails on it later */
    return ch_fail_errno(err, errno, "resolve %s", p);
  }
  return check_dir_chain(target, depth + 1, err);
}

/* Checks "/", then each prefix of the absolute `dir`, `dir` included; stops
 * quietly at the first one that does not exist (crihookd creates the rest). */
static int check_dir_chain(const char *dir, int depth, ch_error *err) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return ch_fail(err, "%s: too long", dir);
  for (char *end = p;; end++) {
    if (*end != '/' && *end != '\0') continue;
    char saved = *end;
    if (end != p) *end = '\0';
    const char *here = end == p ? "/" : p;
    struct stat st;
    if (lstat(here, &st) != 0) {
      if (errno == ENOENT) return 0;
      return ch_fail_errno(err, errno, "stat %s", here);
    }
    if (check_entry(here, &st, err) != 0) return -1;
    if (S_ISLNK(st.st_mode) && check_link(here, depth, err) != 0) return -1;
    if (!S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode))
      return ch_fail(err, "%s is not a directory", here);
    *end = saved;
    if (saved == '\0') return 0;
  }
}

int ch_listen_check_path(const char *path, ch_error *err) {
  if (path[0] != '/') return ch_fail(err, "%s: the socket path must be absolute", path);
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
    return ch_fail(err, "%s: too long", path);
  char *slash = strrchr(dir, '/');
  slash[slash == dir ? 1 : 0] = '\0';
  return check_dir_chain(dir, 0, err);
}

/* ---- preparing and finishing ---- */

/* 0755 whatever the umask (main.c sets a strict one for the sockets). */
static int make_dir(const char *dir, ch_error *err) {
  if (mkdir(dir, 0700) != 0)
    return errno == EEXIST ? 0 : ch_fail_errno(err, errno, "mkdir %s", dir);
  if (chmod(dir, 0755) != 0) return ch_fail_errno(err, errno, "chmod 0755 %s", dir);
  return 0;
}

static int make_dirs(const char *path, ch_error *err) {
  char dir[CH_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (make_dir(dir, err) != 0) return -1;
    *p = '/';
  }
  return make_dir(dir, err);
}

int ch_listen_prepare(const char *path, ch_error *err) {
  if (ch_listen_check_path(path, err) != 0) return -1;
  if (make_dirs(path, err) != 0) return -1;
  if (ch_listen_check_path(path, err) != 0) return -1; /* what now exists */
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
