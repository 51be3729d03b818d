/* SPDX-License-Identifier: Apache-2.0 */
/* test_listen.c: preparing the listen socket's path (common/listen.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "listen.h"

static char tmpdir[64];
static int live_fd = -1;

static void assert_contains(const char *haystack, const char *needle) {
  if (!strstr(haystack, needle)) fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static const char *tmp_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", tmpdir, name);
  return buf;
}

static int bind_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  return fd;
}

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *path) {
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return st.st_mode;
}

static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[512];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        remove_tree(child);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int test_setup(void **state) {
  (void)state;
  umask(022);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-listen-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int test_teardown(void **state) {
  (void)state;
  if (live_fd >= 0) close(live_fd);
  live_fd = -1;
  remove_tree(tmpdir);
  return exists(tmpdir) ? -1 : 0;
}

static void missing_path_is_fine(void **state) {
  (void)state;
  char path[128];
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(tmp_path(path, sizeof path, "x.sock"), &err), 0);
  assert_false(exists(path));
}

static void creates_parent_dirs(void **state) {
  (void)state;
  char path[128], dir[128];
  ch_error err = {""};
  tmp_path(path, sizeof path, "a/b/c/crihook.sock");
  if (ch_listen_prepare(path, &err) != 0) fail_msg("%s", err.msg);
  static const char *const dirs[] = {"a", "a/b", "a/b/c"};
  for (size_t i = 0; i < 3; i++) {
    mode_t m = mode_of(tmp_path(dir, sizeof dir, dirs[i]));
    assert_true(S_ISDIR(m));
    assert_int_equal(m & 07777, 0755);
  }
  assert_false(exists(path)); /* the socket itself is grpc's to create */
  /* and again, now that they exist */
  assert_int_equal(ch_listen_prepare(path, &err), 0);
}

static void parent_is_a_file(void **state) {
  (void)state;
  char file[128], path[128];
  int fd = open(tmp_path(file, sizeof file, "plain"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  close(fd);
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(tmp_path(path, sizeof path, "plain/sub/x.sock"), &err), -1);
  assert_true(err.msg[0] != '\0');
}

static void stale_socket_removed(void **state) {
  (void)state;
  char path[128];
  close(bind_socket(tmp_path(path, sizeof path, "stale.sock")));
  assert_true(S_ISSOCK(mode_of(path)));
  ch_error err = {""};
  if (ch_listen_prepare(path, &err) != 0) fail_msg("%s", err.msg);
  assert_false(exists(path));
}

static void stale_socket_bound_not_listening_removed(void **state) {
  (void)state;
  char path[128];
  /* bound but not listening: connect is refused, so nobody serves it */
  live_fd = bind_socket(tmp_path(path, sizeof path, "bound.sock"));
  ch_error err = {""};
  if (ch_listen_prepare(path, &err) != 0) fail_msg("%s", err.msg);
  assert_false(exists(path));
}

static void live_socket_refused(void **state) {
  (void)state;
  char path[128];
  live_fd = bind_socket(tmp_path(path, sizeof path, "live.sock"));
  assert_int_equal(listen(live_fd, 8), 0);
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(path, &err), -1);
  assert_contains(err.msg, "another process is serving");
  assert_contains(err.msg, path);
  assert_true(S_ISSOCK(mode_of(path))); /* left alone */
}

static void regular_file_refused(void **state) {
  (void)state;
  char path[128];
  int fd = open(tmp_path(path, sizeof path, "file.sock"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "keep", 4), 4);
  close(fd);
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(path, &err), -1);
  assert_contains(err.msg, "not a socket");
  assert_contains(err.msg, path);
  assert_true(S_ISREG(mode_of(path)));
}

static void directory_refused(void **state) {
  (void)state;
  char path[128];
  assert_int_equal(mkdir(tmp_path(path, sizeof path, "dir.sock"), 0755), 0);
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(path, &err), -1);
  assert_contains(err.msg, "not a socket");
  assert_true(S_ISDIR(mode_of(path)));
}

/* A symlink is not replaced, even one that points at a socket. */
static void symlink_refused(void **state) {
  (void)state;
  char target[128], path[128];
  live_fd = bind_socket(tmp_path(target, sizeof target, "real.sock"));
  assert_int_equal(symlink(target, tmp_path(path, sizeof path, "link.sock")), 0);
  ch_error err = {""};
  assert_int_equal(ch_listen_prepare(path, &err), -1);
  assert_contains(err.msg, "not a socket");
  assert_true(S_ISLNK(mode_of(path)));
  assert_true(S_ISSOCK(mode_of(target)));
}

static void finish_sets_0660(void **state) {
  (void)state;
  char path[128];
  live_fd = bind_socket(tmp_path(path, sizeof path, "mode.sock"));
  assert_int_equal(chmod(path, 0777), 0);
  ch_error err = {""};
  if (ch_listen_finish(path, &err) != 0) fail_msg("%s", err.msg);
  mode_t m = mode_of(path);
  assert_true(S_ISSOCK(m));
  assert_int_equal(m & 07777, 0660);
}

static void finish_missing_fails(void **state) {
  (void)state;
  char path[128];
  ch_error err = {""};
  assert_int_equal(ch_listen_finish(tmp_path(path, sizeof path, "gone.sock"), &err), -1);
  assert_contains(err.msg, "chmod");
  assert_contains(err.msg, path);
}

/* ---- who may change the path (ch_listen_check_path) ---- */

#define NOBODY 65534

static const char *make_dir(char *buf, size_t len, const char *name, mode_t mode) {
  tmp_path(buf, len, name);
  assert_int_equal(mkdir(buf, 0700), 0);
  assert_int_equal(chmod(buf, mode), 0);
  return buf;
}

static void skip_unless_root(void) {
  if (geteuid() != 0) skip();
}

/* Refused by both the check and prepare, naming `dir`, and nothing made. */
static void assert_refused(const char *sock, const char *dir, const char *why) {
  ch_error err = {""};
  assert_int_equal(ch_listen_check_path(sock, &err), -1);
  assert_contains(err.msg, dir);
  assert_contains(err.msg, why);
  err.msg[0] = '\0';
  assert_int_equal(ch_listen_prepare(sock, &err), -1);
  assert_contains(err.msg, why);
}

static void safe_path_accepted(void **state) {
  (void)state;
  char dir[128], sock[160];
  make_dir(dir, sizeof dir, "run", 0755);
  snprintf(sock, sizeof sock, "%s/crihook.sock", dir);
  ch_error err = {""};
  if (ch_listen_check_path(sock, &err) != 0) fail_msg("%s", err.msg);
  snprintf(sock, sizeof sock, "%s/not/yet/there.sock", dir); /* created by us later */
  if (ch_listen_check_path(sock, &err) != 0) fail_msg("%s", err.msg);
}

static void world_writable_parent_refused(void **state) {
  (void)state;
  char dir[128], sock[160];
  make_dir(dir, sizeof dir, "open", 0777);
  snprintf(sock, sizeof sock, "%s/crihook.sock", dir);
  assert_refused(sock, dir, "writable by group or others");
  snprintf(sock, sizeof sock, "%s/sub/crihook.sock", dir); /* an ancestor, too */
  assert_refused(sock, dir, "writable by group or others");
}

static void group_writable_parent_refused(void **state) {
  (void)state;
  char dir[128], sock[160];
  make_dir(dir, sizeof dir, "group", 0775);
  snprintf(sock, sizeof sock, "%s/crihook.sock", dir);
  assert_refused(sock, dir, "mode 0775");
}

static void sticky_parent_accepted(void **state) {
  (void)state;
  char dir[128], sock[160];
  make_dir(dir, sizeof dir, "sticky", 01777); /* like /tmp */
  snprintf(sock, sizeof sock, "%s/crihook.sock", dir);
  ch_error err = {""};
  if (ch_listen_check_path(sock, &err) != 0) fail_msg("%s", err.msg);
}

static void parent_owned_by_another_user_refused(void **state) {
  (void)state;
  skip_unless_root();
  char dir[128], sock[160];
  make_dir(dir, sizeof dir, "theirs", 0755);
  assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
  snprintf(sock, sizeof sock, "%s/crihook.sock", dir);
  assert_refused(sock, dir, "owned by uid 65534");
}

/* /tmp/x -> a directory of ours, but the link is another user's: in a
 * sticky directory its owner can replace it at will. */
static void symlinked_parent_owned_by_another_user_refused(void **state) {
  (void)state;
  skip_unless_root();
  char sticky[128], target[128], link[160], sock[192];
  make_dir(sticky, sizeof sticky, "sticky", 01777);
  make_dir(target, sizeof target, "target", 0755);
  snprintf(link, sizeof link, "%s/run", sticky);
  assert_int_equal(symlink(target, link), 0);
  assert_int_equal(lchown(link, NOBODY, NOBODY), 0);
  snprintf(sock, sizeof sock, "%s/crihook.sock", link);
  assert_refused(sock, link, "owned by uid 65534");
}

static void symlinked_parent_to_unsafe_dir_refused(void **state) {
  (void)state;
  char target[128], link[128], sock[160];
  make_dir(target, sizeof target, "open", 0777);
  assert_int_equal(symlink(target, tmp_path(link, sizeof link, "run")), 0);
  snprintf(sock, sizeof sock, "%s/crihook.sock", link);
  assert_refused(sock, target, "writable by group or others");
}

static void symlinked_parent_to_safe_dir_accepted(void **state) {
  (void)state;
  char target[128], link[128], sock[160];
  make_dir(target, sizeof target, "real", 0755); /* as /var/run -> /run */
  assert_int_equal(symlink(target, tmp_path(link, sizeof link, "run")), 0);
  snprintf(sock, sizeof sock, "%s/crihook.sock", link);
  ch_error err = {""};
  if (ch_listen_check_path(sock, &err) != 0) fail_msg("%s", err.msg);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(missing_path_is_fine),
      T(creates_parent_dirs),
      T(parent_is_a_file),
      T(stale_socket_removed),
      T(stale_socket_bound_not_listening_removed),
      T(live_socket_refused),
      T(regular_file_refused),
      T(directory_refused),
      T(symlink_refused),
      T(finish_sets_0660),
      T(finish_missing_fails),
      T(safe_path_accepted),
      T(world_writable_parent_refused),
      T(group_writable_parent_refused),
      T(sticky_parent_accepted),
      T(parent_owned_by_another_user_refused),
      T(symlinked_parent_owned_by_another_user_refused),
      T(symlinked_parent_to_unsafe_dir_refused),
      T(symlinked_parent_to_safe_dir_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
