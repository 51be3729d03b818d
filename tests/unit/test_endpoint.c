/* SPDX-License-Identifier: Apache-2.0 */
/* test_endpoint.c: unix endpoint parsing and socket probing
 * (common/endpoint.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "endpoint.h"

static void assert_contains(const char *haystack, const char *needle) {
  if (!strstr(haystack, needle)) fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void three_spellings(void **state) {
  (void)state;
  static const char *const spellings[] = {"unix:///run/containerd/containerd.sock",
                                          "unix:/run/containerd/containerd.sock",
                                          "/run/containerd/containerd.sock"};
  for (size_t i = 0; i < 3; i++) {
    ch_endpoint ep;
    memset(&ep, 0x7f, sizeof ep);
    ch_error err = {""};
    if (ch_endpoint_parse(spellings[i], &ep, &err) != 0) fail_msg("%s: %s", spellings[i], err.msg);
    assert_string_equal(ep.path, "/run/containerd/containerd.sock");
    assert_string_equal(ep.target, "unix:/run/containerd/containerd.sock");
  }
}

static void expect_error(const char *text, const char *msg) {
  ch_endpoint ep;
  ch_error err = {""};
  if (ch_endpoint_parse(text, &ep, &err) != -1) fail_msg("\"%s\" accepted", text ? text : "NULL");
  assert_contains(err.msg, msg);
}

static void errors(void **state) {
  (void)state;
  expect_error("", "empty");
  expect_error(NULL, "empty");
  expect_error("run/x.sock", "absolute");
  expect_error("./x.sock", "absolute");
  expect_error("unix:run/x.sock", "absolute");
  expect_error("unix://run/x.sock", "absolute"); /* "run" is not a host */
  expect_error("unix://", "absolute");
  expect_error("unix:", "absolute");
  expect_error("tcp://127.0.0.1:10010", "only unix sockets");
  expect_error("http:///run/x.sock", "only unix sockets");
  expect_error("unix-abstract://x", "only unix sockets");
}

/* sun_path holds 108 bytes with the NUL: 107 characters fit, 108 do not. */
static void path_length_limit(void **state) {
  (void)state;
  char path[CH_PATH_MAX + 16], text[CH_PATH_MAX + 32];
  ch_endpoint ep;
  ch_error err = {""};

  memset(path, 'p', sizeof path);
  path[0] = '/';
  path[CH_PATH_MAX - 1] = '\0'; /* 107 characters */
  assert_int_equal(ch_endpoint_parse(path, &ep, &err), 0);
  assert_string_equal(ep.path, path);
  snprintf(text, sizeof text, "unix:%s", path);
  assert_string_equal(ep.target, text);
  snprintf(text, sizeof text, "unix://%s", path);
  assert_int_equal(ch_endpoint_parse(text, &ep, &err), 0);
  assert_string_equal(ep.path, path);

  memset(path, 'p', sizeof path);
  path[0] = '/';
  path[CH_PATH_MAX] = '\0'; /* 108 characters */
  expect_error(path, "longer than");
  snprintf(text, sizeof text, "unix://%s", path);
  expect_error(text, "longer than");
  snprintf(text, sizeof text, "unix:%s", path);
  expect_error(text, "longer than");
}

/* ---- ch_socket_probe ---- */

static char tmpdir[64];

static int probe_setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-ep-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int probe_teardown(void **state) {
  (void)state;
  char path[128];
  static const char *const names[] = {"live.sock", "stale.sock", "file"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
    unlink(path);
  }
  return rmdir(tmpdir);
}

static int bind_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  return fd;
}

static void probe_kinds(void **state) {
  (void)state;
  char path[128], why[128];

  snprintf(path, sizeof path, "%s/missing.sock", tmpdir);
  assert_int_equal(ch_socket_probe(path, why, sizeof why), 0);
  assert_string_equal(why, "no such file");

  snprintf(path, sizeof path, "%s/live.sock", tmpdir);
  int fd = bind_socket(path);
  assert_int_equal(listen(fd, 4), 0);
  assert_int_equal(ch_socket_probe(path, why, sizeof why), 1);
  assert_string_equal(why, "accepts connections");
  close(fd);

  snprintf(path, sizeof path, "%s/stale.sock", tmpdir);
  close(bind_socket(path));
  assert_int_equal(ch_socket_probe(path, why, sizeof why), 0);
  assert_contains(why, "refused");

  snprintf(path, sizeof path, "%s/file", tmpdir);
  fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(ch_socket_probe(path, why, sizeof why), 0);
  assert_true(why[0] != '\0');
}

/* A live owner whose accept queue is full must count as live, at once: a
 * blocking connect would hang crihookd's start-up here. */
static void probe_full_accept_queue(void **state) {
  (void)state;
  char path[128], why[128];
  snprintf(path, sizeof path, "%s/live.sock", tmpdir);
  int fd = bind_socket(path);
  assert_int_equal(listen(fd, 0), 0);
  int fillers[8];
  for (int i = 0; i < 8; i++) { /* more than the backlog admits */
    fillers[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    (void)connect(fillers[i], (struct sockaddr *)&addr, sizeof addr);
  }
  assert_int_equal(ch_socket_probe(path, why, sizeof why), 1);
  assert_string_equal(why, "busy (accept queue full)");
  for (int i = 0; i < 8; i++) close(fillers[i]);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_spellings),
      cmocka_unit_test(errors),
      cmocka_unit_test(path_length_limit),
      cmocka_unit_test_setup_teardown(probe_kinds, probe_setup, probe_teardown),
      cmocka_unit_test_setup_teardown(probe_full_accept_queue, probe_setup, probe_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
