/* SPDX-License-Identifier: Apache-2.0 */
/* test_detect.c: backend auto-detection (backend/detect.c) against fake
 * sockets: missing paths, regular files, sockets that never speak HTTP/2,
 * and fake CRI servers on grpc core (fake_cri_server.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "detect.h"
#include "fake_cri_server.h"
#include "test_clock.h"

#define PROBE_TIMEOUT_MS 300
#define SLOW_LIMIT_MS 3000

static char tmpdir[64];

#define MAX_FAKES 8
static fake_cri_server *fakes[MAX_FAKES];
static int silent_fds[MAX_FAKES];

static const char *tmp_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", tmpdir, name);
  return buf;
}

/* A unix socket that accepts connections (the kernel queues them) but never
 * says a word: listen() without accept(). The teardown closes it. */
static void silent_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(fd, 64), 0);
  for (int i = 0; i < MAX_FAKES; i++) {
    if (silent_fds[i] < 0) {
      silent_fds[i] = fd;
      return;
    }
  }
  fail_msg("too many silent sockets");
}

/* A socket file nobody listens on: bound, then closed. */
static void stale_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  close(fd);
}

static void regular_file(const char *path) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "x", 1), 1);
  close(fd);
}

/* What a test started (fakes, silent_fds): the per-test teardown stops
 * whatever is left and empties the temp dir, so a failed assertion does not
 * leave servers running into the next test. */
static fake_cri_server *start_fake(const char *path, fake_cri_mode mode, const char *name,
                                   const char *version) {
  fake_cri_server *s = fake_cri_start(path, mode, name, version);
  assert_non_null(s);
  for (int i = 0; i < MAX_FAKES; i++) {
    if (!fakes[i]) {
      fakes[i] = s;
      return s;
    }
  }
  fail_msg("too many fakes");
  return NULL;
}

static int test_teardown(void **state) {
  (void)state;
  for (int i = 0; i < MAX_FAKES; i++) {
    if (fakes[i]) fake_cri_stop(fakes[i]);
    fakes[i] = NULL;
    if (silent_fds[i] >= 0) close(silent_fds[i]);
    silent_fds[i] = -1;
  }
  DIR *d = opendir(tmpdir);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    if (unlink(path) != 0 && errno == EISDIR) rmdir(path);
  }
  closedir(d);
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  grpc_init();
  for (int i = 0; i < MAX_FAKES; i++) silent_fds[i] = -1;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/crihook-detect-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  rmdir(tmpdir); /* fails loudly below if a test left something behind */
  struct stat st;
  int left = stat(tmpdir, &st) == 0;
  grpc_shutdown();
  if (left) fprintf(stderr, "test_detect: %s not empty after the tests\n", tmpdir);
  return left ? -1 : 0;
}

/* ---- ch_probe_backend, one socket at a time ---- */

static void probe_missing_path(void **state) {
  (void)state;
  char path[128];
  ch_probe_result r;
  ch_probe_backend(tmp_path(path, sizeof path, "nothing-here.sock"), PROBE_TIMEOUT_MS, &r);
  assert_int_equal(r.answered, 0);
  assert_string_equal(r.why, "no such file");
  assert_string_equal(r.api, "");
}

static void probe_regular_file(void **state) {
  (void)state;
  char path[128];
  regular_file(tmp_path(path, sizeof path, "file.sock"));
  ch_probe_result r;
  ch_probe_backend(path, PROBE_TIMEOUT_MS, &r);
  assert_int_equal(r.answered, 0);
  assert_string_equal(r.why, "not a socket");
}

static void probe_directory(void **state) {
  (void)state;
  char path[128];
  assert_int_equal(mkdir(tmp_path(path, sizeof path, "dir.sock"), 0755), 0);
  ch_probe_result r;
  ch_probe_backend(path, PROBE_TIMEOUT_MS, &r);
  assert_int_equal(r.answered, 0);
  assert_string_equal(r.why, "not a socket");
}

static void probe_silent_socket_is_bounded_by_timeout(void **state) {
  (void)state;
  char path[128];
  silent_socket(tmp_path(path, sizeof path, "silent.sock"));
  ch_probe_result r;
  int64_t start = now_ms();
  ch_probe_backend(path, PROBE_TIMEOUT_MS, &r);
  int64_t took = now_ms() - start;
  print_message("silent socket: %lld ms, why: %s\n", (long long)took, r.why);
  assert_int_equal(r.answered, 0);
  assert_true(took < SLOW_LIMIT_MS);
  assert_true(r.why[0] != '\0');
  assert_string_equal(r.api, "");
}

static void probe_stale_socket(void **state) {
  (void)state;
  char path[128];
  stale_socket(tmp_path(path, sizeof path, "stale.sock"));
  ch_probe_result r;
  int64_t start = now_ms();
  ch_probe_backend(path, PROBE_TIMEOUT_MS, &r);
  int64_t took = now_ms() - start;
  assert_int_equal(r.answered, 0);
  assert_true(took < SLOW_LIMIT_MS);
  assert_true(r.why[0] != '\0');
}

static void probe_fake_v1(void **state) {
  (void)state;
  char path[128], method[128];
  fake_cri_server *s =
      start_fake(tmp_path(path, sizeof path, "v1.sock"), FAKE_CRI_OK, "fakeruntime", "9.9");
  ch_probe_result r;
  ch_probe_backend(path, 5000, &r);
  assert_int_equal(r.answered, 1);
  assert_string_equal(r.api, "v1");
  assert_string_equal(r.runtime_name, "fakeruntime");
  assert_string_equal(r.runtime_version, "9.9");
  assert_ptr_equal(r.kind, &ch_backend_generic); /* none of the known kinds */
  assert_non_null(strstr(r.why, "fakeruntime"));
  /* v1 answered: no v1alpha2 call */
  assert_int_equal(fake_cri_call_count(s), 1);
  fake_cri_call_method(s, 0, method, sizeof method);
  assert_string_equal(method, "/runtime.v1.RuntimeService/Version");
}

static void probe_fake_v1alpha2_after_unimplemented(void **state) {
  (void)state;
  char path[128], method[128];
  fake_cri_server *s = start_fake(tmp_path(path, sizeof path, "v1a2.sock"),
                                  FAKE_CRI_V1_UNIMPLEMENTED, "oldruntime", "1.2.3");
  ch_probe_result r;
  ch_probe_backend(path, 5000, &r);
  assert_int_equal(r.answered, 1);
  assert_string_equal(r.api, "v1alpha2");
  assert_string_equal(r.runtime_name, "oldruntime");
  assert_string_equal(r.runtime_version, "1.2.3");
  assert_int_equal(fake_cri_call_count(s), 2);
  fake_cri_call_method(s, 0, method, sizeof method);
  assert_string_equal(method, "/runtime.v1.RuntimeService/Version");
  fake_cri_call_method(s, 1, method, sizeof method);
  assert_string_equal(method, "/runtime.v1alpha2.RuntimeService/Version");
}

static void probe_fake_unavailable(void **state) {
  (void)state;
  char path[128];
  fake_cri_server *s =
      start_fake(tmp_path(path, sizeof path, "down.sock"), FAKE_CRI_UNAVAILABLE, "x", "x");
  ch_probe_result r;
  ch_probe_backend(path, 5000, &r);
  assert_int_equal(r.answered, 0);
  assert_non_null(strstr(r.why, "UNAVAILABLE"));
  assert_non_null(strstr(r.why, FAKE_CRI_UNAVAILABLE_TEXT));
  /* only UNIMPLEMENTED falls back to v1alpha2 */
  assert_int_equal(fake_cri_call_count(s), 1);
}

static void probe_fake_all_unimplemented(void **state) {
  (void)state;
  char path[128], method[128];
  fake_cri_server *s =
      start_fake(tmp_path(path, sizeof path, "unimpl.sock"), FAKE_CRI_ALL_UNIMPLEMENTED, "x", "x");
  ch_probe_result r;
  ch_probe_backend(path, 5000, &r);
  assert_int_equal(r.answered, 0);
  assert_non_null(strstr(r.why, "UNIMPLEMENTED"));
  assert_int_equal(fake_cri_call_count(s), 2);
  fake_cri_call_method(s, 1, method, sizeof method);
  assert_string_equal(method, "/runtime.v1alpha2.RuntimeService/Version");
}

/* A runtime that takes the connection and the call but never answers: the
 * call's deadline is what bounds the probe. */
static void probe_hung_runtime_is_bounded_by_timeout(void **state) {
  (void)state;
  char path[128];
  fake_cri_server *s =
      start_fake(tmp_path(path, sizeof path, "hang.sock"), FAKE_CRI_HANG, "x", "x");
  ch_probe_result r;
  int64_t start = now_ms();
  ch_probe_backend(path, PROBE_TIMEOUT_MS, &r);
  int64_t took = now_ms() - start;
  print_message("hung runtime: %lld ms, why: %s\n", (long long)took, r.why);
  assert_int_equal(r.answered, 0);
  assert_true(took >= PROBE_TIMEOUT_MS - 50);
  assert_true(took < SLOW_LIMIT_MS);
  assert_non_null(strstr(r.why, "DEADLINE_EXCEEDED"));
  assert_int_equal(fake_cri_call_count(s), 1); /* no v1alpha2 retry on a timeout */
}

/* ---- ch_detect_backend, lists of candidates ---- */

static void detect_first_answering_wins(void **state) {
  (void)state;
  char pa[128], pb[128];
  fake_cri_server *a =
      start_fake(tmp_path(pa, sizeof pa, "a.sock"), FAKE_CRI_OK, "fakeruntime", "9.9");
  fake_cri_server *b =
      start_fake(tmp_path(pb, sizeof pb, "b.sock"), FAKE_CRI_OK, "otherruntime", "1.0");
  ch_probe_result chosen;
  ch_error err = {""};

  const ch_backend_candidate ab[] = {{"a", pa}, {"b", pb}};
  assert_int_equal(ch_detect_backend(ab, 2, 5000, &chosen, &err), 0);
  assert_string_equal(chosen.runtime_name, "fakeruntime");
  assert_string_equal(chosen.runtime_version, "9.9");
  assert_string_equal(chosen.api, "v1");
  assert_int_equal(fake_cri_call_count(b), 0); /* stops at the first answer */

  const ch_backend_candidate ba[] = {{"b", pb}, {"a", pa}};
  assert_int_equal(ch_detect_backend(ba, 2, 5000, &chosen, &err), 0);
  assert_string_equal(chosen.runtime_name, "otherruntime");
  assert_string_equal(chosen.runtime_version, "1.0");
  assert_int_equal(fake_cri_call_count(a), 1);
}

static void detect_skips_what_does_not_answer(void **state) {
  (void)state;
  char missing[128], file[128], silent[128], down[128], good[128];
  tmp_path(missing, sizeof missing, "missing.sock");
  regular_file(tmp_path(file, sizeof file, "file.sock"));
  silent_socket(tmp_path(silent, sizeof silent, "silent.sock"));
  fake_cri_server *d =
      start_fake(tmp_path(down, sizeof down, "down.sock"), FAKE_CRI_UNAVAILABLE, "x", "x");
  start_fake(tmp_path(good, sizeof good, "good.sock"), FAKE_CRI_OK, "fakeruntime", "9.9");
  const ch_backend_candidate list[] = {
      {"missing", missing}, {"file", file}, {"silent", silent}, {"down", down}, {"good", good},
  };
  ch_probe_result chosen;
  ch_error err = {""};
  int64_t start = now_ms();
  int idx = ch_detect_backend(list, 5, PROBE_TIMEOUT_MS, &chosen, &err);
  int64_t took = now_ms() - start;
  print_message("detect over 4 dead candidates: %lld ms\n", (long long)took);
  assert_int_equal(idx, 4);
  assert_int_equal(chosen.answered, 1);
  assert_string_equal(chosen.api, "v1");
  assert_string_equal(chosen.runtime_name, "fakeruntime");
  assert_string_equal(chosen.runtime_version, "9.9");
  assert_int_equal(fake_cri_call_count(d), 1);
  assert_true(took < SLOW_LIMIT_MS);
}

static void detect_hung_first_then_good(void **state) {
  (void)state;
  char hang[128], good[128];
  start_fake(tmp_path(hang, sizeof hang, "hang.sock"), FAKE_CRI_HANG, "x", "x");
  start_fake(tmp_path(good, sizeof good, "good.sock"), FAKE_CRI_OK, "fakeruntime", "9.9");
  const ch_backend_candidate list[] = {{"hang", hang}, {"good", good}};
  ch_probe_result chosen;
  ch_error err = {""};
  int64_t start = now_ms();
  assert_int_equal(ch_detect_backend(list, 2, PROBE_TIMEOUT_MS, &chosen, &err), 1);
  int64_t took = now_ms() - start;
  assert_true(took < SLOW_LIMIT_MS);
  assert_string_equal(chosen.runtime_name, "fakeruntime");
}

static void detect_v1alpha2_runtime_after_unimplemented_one(void **state) {
  (void)state;
  char p1[128], p2[128];
  start_fake(tmp_path(p1, sizeof p1, "unimpl.sock"), FAKE_CRI_ALL_UNIMPLEMENTED, "x", "x");
  start_fake(tmp_path(p2, sizeof p2, "old.sock"), FAKE_CRI_V1_UNIMPLEMENTED, "oldrt", "0.1");
  const ch_backend_candidate list[] = {{"unimpl", p1}, {"old", p2}};
  ch_probe_result chosen;
  ch_error err = {""};
  assert_int_equal(ch_detect_backend(list, 2, 5000, &chosen, &err), 1);
  assert_string_equal(chosen.api, "v1alpha2");
  assert_string_equal(chosen.runtime_name, "oldrt");
  assert_string_equal(chosen.runtime_version, "0.1");
}

static void detect_nothing_answers_lists_every_path(void **state) {
  (void)state;
  char missing[128], file[128], silent[128], down[128], unimpl[128];
  tmp_path(missing, sizeof missing, "missing.sock");
  regular_file(tmp_path(file, sizeof file, "file.sock"));
  silent_socket(tmp_path(silent, sizeof silent, "silent.sock"));
  fake_cri_server *d =
      start_fake(tmp_path(down, sizeof down, "down.sock"), FAKE_CRI_UNAVAILABLE, "x", "x");
  fake_cri_server *u = start_fake(tmp_path(unimpl, sizeof unimpl, "unimpl.sock"),
                                  FAKE_CRI_ALL_UNIMPLEMENTED, "x", "x");
  const ch_backend_candidate list[] = {
      {"cand-missing", missing}, {"cand-file", file},     {"cand-silent", silent},
      {"cand-down", down},       {"cand-unimpl", unimpl},
  };
  ch_probe_result chosen;
  memset(&chosen, 0x5a, sizeof chosen);
  ch_error err = {""};
  int64_t start = now_ms();
  int idx = ch_detect_backend(list, 5, PROBE_TIMEOUT_MS, &chosen, &err);
  int64_t took = now_ms() - start;
  print_message("error: %s\n", err.msg);
  assert_int_equal(idx, -1);
  assert_true(took < SLOW_LIMIT_MS);
  assert_non_null(strstr(err.msg, "no CRI runtime answered"));
  for (size_t i = 0; i < 5; i++) {
    assert_non_null(strstr(err.msg, list[i].name));
    assert_non_null(strstr(err.msg, list[i].path));
  }
  assert_non_null(strstr(err.msg, "no such file"));
  assert_non_null(strstr(err.msg, "not a socket"));
  assert_non_null(strstr(err.msg, "UNAVAILABLE"));
  assert_non_null(strstr(err.msg, FAKE_CRI_UNAVAILABLE_TEXT));
  assert_non_null(strstr(err.msg, "UNIMPLEMENTED"));
  /* in the order tried */
  assert_true(strstr(err.msg, "cand-missing") < strstr(err.msg, "cand-file"));
  assert_true(strstr(err.msg, "cand-file") < strstr(err.msg, "cand-silent"));
  assert_true(strstr(err.msg, "cand-silent") < strstr(err.msg, "cand-down"));
  assert_true(strstr(err.msg, "cand-down") < strstr(err.msg, "cand-unimpl"));
  /* the reason follows its own path */
  assert_true(strstr(err.msg, "no such file") < strstr(err.msg, "cand-file"));
  assert_true(strstr(err.msg, "not a socket") > strstr(err.msg, "cand-file"));
  assert_true(strstr(err.msg, "not a socket") < strstr(err.msg, "cand-silent"));
  assert_int_equal(fake_cri_call_count(d), 1); /* v1 only */
  assert_int_equal(fake_cri_call_count(u), 2); /* v1, then v1alpha2 */
  /* the chosen result is left alone on failure */
  assert_int_equal(((unsigned char *)&chosen)[0], 0x5a);
}

static void detect_empty_list(void **state) {
  (void)state;
  ch_probe_result chosen;
  ch_error err = {""};
  assert_int_equal(ch_detect_backend(NULL, 0, PROBE_TIMEOUT_MS, &chosen, &err), -1);
  assert_non_null(strstr(err.msg, "no CRI runtime answered"));
  assert_non_null(strstr(err.msg, "nothing"));
}

/* Many long paths overflow the error buffer: the message is cut, not the
 * stack. */
static void detect_long_error_is_truncated_safely(void **state) {
  (void)state;
  enum { N = 40 };
  static char paths[N][128];
  static char names[N][32];
  ch_backend_candidate list[N];
  for (int i = 0; i < N; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/%0*d.sock", tmpdir, 80, i);
    snprintf(names[i], sizeof names[i], "candidate-%02d", i);
    list[i] = (ch_backend_candidate){names[i], paths[i]};
  }
  ch_probe_result chosen;
  ch_error err;
  memset(&err, 'Z', sizeof err);
  assert_int_equal(ch_detect_backend(list, N, PROBE_TIMEOUT_MS, &chosen, &err), -1);
  size_t len = strnlen(err.msg, sizeof err.msg);
  assert_true(len < sizeof err.msg);
  assert_true(len > 512);
  assert_non_null(strstr(err.msg, "candidate-00"));
  assert_null(strstr(err.msg, "candidate-39"));
}

static void default_candidates_order(void **state) {
  (void)state;
  ch_backend_candidate list[CH_MAX_DEFAULT_CANDIDATES];
  size_t n = ch_default_candidates(list, CH_MAX_DEFAULT_CANDIDATES);
  assert_int_equal(n, 4);
  assert_string_equal(list[0].name, "containerd");
  assert_string_equal(list[0].path, "/run/containerd/containerd.sock");
  assert_string_equal(list[1].name, "k3s");
  assert_string_equal(list[1].path, "/run/k3s/containerd/containerd.sock");
  assert_string_equal(list[2].name, "cri-o");
  assert_string_equal(list[3].name, "cri-dockerd");
  for (size_t i = 0; i < n; i++) assert_int_equal(list[i].path[0], '/');
  /* a short buffer gets the first ones, never more */
  assert_int_equal(ch_default_candidates(list, 1), 1);
  assert_string_equal(list[0].name, "containerd");
}

/* The kind comes from Version's runtime_name; the generic kind otherwise. */
static void kind_of_runtime_name(void **state) {
  (void)state;
  assert_ptr_equal(ch_backend_kind_of("containerd"), &ch_backend_containerd);
  assert_ptr_equal(ch_backend_kind_of("cri-o"), &ch_backend_crio);
  assert_ptr_equal(ch_backend_kind_of("docker"), &ch_backend_cri_dockerd);
  assert_ptr_equal(ch_backend_kind_of("fakeruntime"), &ch_backend_generic);
  assert_ptr_equal(ch_backend_kind_of(""), &ch_backend_generic);
  assert_ptr_equal(ch_backend_kind_of(NULL), &ch_backend_generic);
  /* every kind in the table has a name, a runtime_name and a socket */
  for (size_t i = 0; i < ch_backend_kind_count; i++) {
    assert_non_null(ch_backend_kinds[i]->name);
    assert_non_null(ch_backend_kinds[i]->runtime_name);
    assert_true(ch_backend_kinds[i]->n_sockets > 0);
  }
}

/* A runtime that speaks only v1alpha2 and says it is containerd is the
 * containerd kind, spoken to in v1alpha2. */
static void probe_v1alpha2_containerd_kind(void **state) {
  (void)state;
  char path[128];
  start_fake(tmp_path(path, sizeof path, "old-ctd.sock"), FAKE_CRI_V1_UNIMPLEMENTED, "containerd",
             "1.5.0");
  ch_probe_result r;
  ch_probe_backend(path, 5000, &r);
  assert_int_equal(r.answered, 1);
  assert_string_equal(r.api, "v1alpha2");
  assert_ptr_equal(r.kind, &ch_backend_containerd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(probe_missing_path, test_teardown),
      cmocka_unit_test_teardown(probe_regular_file, test_teardown),
      cmocka_unit_test_teardown(probe_directory, test_teardown),
      cmocka_unit_test_teardown(probe_silent_socket_is_bounded_by_timeout, test_teardown),
      cmocka_unit_test_teardown(probe_stale_socket, test_teardown),
      cmocka_unit_test_teardown(probe_fake_v1, test_teardown),
      cmocka_unit_test_teardown(probe_fake_v1alpha2_after_unimplemented, test_teardown),
      cmocka_unit_test_teardown(probe_fake_unavailable, test_teardown),
      cmocka_unit_test_teardown(probe_fake_all_unimplemented, test_teardown),
      cmocka_unit_test_teardown(probe_hung_runtime_is_bounded_by_timeout, test_teardown),
      cmocka_unit_test_teardown(detect_first_answering_wins, test_teardown),
      cmocka_unit_test_teardown(detect_hung_first_then_good, test_teardown),
      cmocka_unit_test_teardown(detect_skips_what_does_not_answer, test_teardown),
      cmocka_unit_test_teardown(detect_v1alpha2_runtime_after_unimplemented_one, test_teardown),
      cmocka_unit_test_teardown(detect_nothing_answers_lists_every_path, test_teardown),
      cmocka_unit_test_teardown(detect_empty_list, test_teardown),
      cmocka_unit_test_teardown(detect_long_error_is_truncated_safely, test_teardown),
      cmocka_unit_test_teardown(default_candidates_order, test_teardown),
      cmocka_unit_test_teardown(kind_of_runtime_name, test_teardown),
      cmocka_unit_test_teardown(probe_v1alpha2_containerd_kind, test_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
