/* SPDX-License-Identifier: Apache-2.0 */
/* test_registry.c: unit tests for registry/registry.h: parsing one
 * registration file (every field, defaults, every error reason), loading a
 * real directory (order, filtering, symlinks, bad files, endpoints named
 * and nothing connected, a reload leaving the registry it replaces whole),
 * ch_registry_equal, and the slot (generations, readers keeping an old
 * registry alive, concurrent readers). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "registry.h"

/* ---- helpers ---- */

static char tmp[PATH_MAX]; /* a fresh directory per test */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int make_tmp(void **state) {
  (void)state;
  snprintf(tmp, sizeof tmp, "/tmp/crihook-registry-XXXXXX");
  assert_non_null(mkdtemp(tmp));
  return 0;
}

static int remove_tmp(void **state) {
  (void)state;
  nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

static const char *at(const char *name) {
  static char path[4][PATH_MAX];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, PATH_MAX, "%s/%s", tmp, name);
  return p;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void write_plugin(const char *name, const char *endpoint, const char *hooks, int timeout) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"remote-endpoint\": \"%s\", \"failure-policy\": \"Fail\", "
           "\"runtime-hooks\": [%s], \"timeout-ms\": %d}",
           endpoint, hooks, timeout);
  write_text(at(name), text);
}

static int parse(const char *name, const char *text, ch_plugin *p, ch_error *err) {
  return ch_plugin_parse(name, text, strlen(text), p, err);
}

static void assert_rejected(const char *text, const char *reason) {
  ch_plugin p;
  ch_error err = {{0}};
  if (parse("x.json", text, &p, &err) == 0) fail_msg("accepted: %s", text);
  if (!strstr(err.msg, reason)) fail_msg("for %s\n  got: %s\n  want: %s", text, err.msg, reason);
}

static ch_registry *load(const char *dir, const ch_registry *previous) {
  ch_registry *r = NULL;
  ch_error err;
  if (ch_registry_load(dir, previous, &r, &err) != 0) fail_msg("load: %s", err.msg);
  assert_non_null(r);
  return r;
}

#define PRE_RUN "\"PreRunPodSandbox\""
#define PRE_CREATE "\"PreCreateContainer\""
#define POST_STOP "\"PostStopContainer\""

/* ---- parse ---- */

static void parse_every_field(void **state) {
  (void)state;
  ch_plugin p;
  ch_error err;
  const char *text =
      "{\"remote-endpoint\": \"unix:///run/qos.sock\", \"failure-policy\": \"Fail\",\n"
      " \"runtime-hooks\": [\"PreRunPodSandbox\", \"PreCreateContainer\", "
      "\"PostStopContainer\"],\n \"timeout-ms\": 750}";
  assert_int_equal(parse("10-qos.json", text, &p, &err), 0);
  assert_string_equal(p.name, "10-qos");
  assert_string_equal(p.endpoint.path, "/run/qos.sock");
  assert_string_equal(p.endpoint.target, "unix:/run/qos.sock");
  assert_true(p.fail_closed);
  assert_int_equal(p.timeout_ms, 750);
  assert_int_equal(p.hooks, (1u << CH_HOOK_PRE_RUN_POD_SANDBOX) |
                                (1u << CH_HOOK_PRE_CREATE_CONTAINER) |
                                (1u << CH_HOOK_POST_STOP_CONTAINER));
}

static void parse_defaults_and_plain_path(void **state) {
  (void)state;
  ch_plugin p;
  ch_error err;
  assert_int_equal(parse("a.json",
                         "{\"remote-endpoint\": \"/var/run/a.sock\", "
                         "\"runtime-hooks\": [\"PreStartContainer\"]}",
                         &p, &err),
                   0);
  assert_string_equal(p.name, "a");
  assert_string_equal(p.endpoint.path, "/var/run/a.sock");
  assert_string_equal(p.endpoint.target, "unix:/var/run/a.sock");
  assert_false(p.fail_closed); /* missing failure-policy means Ignore */
  assert_int_equal(p.timeout_ms, CH_PLUGIN_DEFAULT_TIMEOUT_MS);
  assert_int_equal(p.hooks, 1u << CH_HOOK_PRE_START_CONTAINER);
}

static void parse_ignore_policy_and_timeout_bounds(void **state) {
  (void)state;
  ch_plugin p;
  ch_error err;
  assert_int_equal(parse("b.json",
                         "{\"remote-endpoint\": \"unix:/b.sock\", \"failure-policy\": \"Ignore\","
                         " \"runtime-hooks\": [\"PostStartContainer\"], \"timeout-ms\": 1}",
                         &p, &err),
                   0);
  assert_false(p.fail_closed);
  assert_int_equal(p.timeout_ms, 1);
  assert_string_equal(p.endpoint.path, "/b.sock");
  assert_int_equal(parse("b.json",
                         "{\"remote-endpoint\": \"/b.sock\", \"runtime-hooks\": "
                         "[\"PostStartContainer\"], \"timeout-ms\": 120000}",
                         &p, &err),
                   0);
  assert_int_equal(p.timeout_ms, 120000);
}

static void parse_every_hook_name(void **state) {
  (void)state;
  char text[2048] = "{\"remote-endpoint\": \"/x.sock\", \"runtime-hooks\": [";
  for (int h = 0; h < CH_HOOK_COUNT; h++) {
    strcat(text, h ? ", \"" : "\"");
    strcat(text, ch_hook_name((ch_hook_point)h));
    strcat(text, "\"");
  }
  strcat(text, ", \"PreRunPodSandbox\"]}"); /* a repeat is harmless */
  ch_plugin p;
  ch_error err;
  assert_int_equal(parse("all.json", text, &p, &err), 0);
  assert_int_equal(p.hooks, (1u << CH_HOOK_COUNT) - 1);
}

static void parse_ignores_unknown_keys(void **state) {
  (void)state;
  ch_plugin p;
  ch_error err;
  assert_int_equal(parse("k.json",
                         "{\"remote-endpoint\": \"/k.sock\", \"runtime-hooks\": "
                         "[\"PreRunPodSandbox\"], \"koordinator-extra\": {\"a\": [1, 2]}, "
                         "\"priority\": 5, \"failurePolicy\": \"Fail\"}",
                         &p, &err),
                   0);
  assert_false(p.fail_closed); /* a differently spelled key is just unknown */
}

static void parse_name_without_suffix(void **state) {
  (void)state;
  ch_plugin p;
  ch_error err;
  const char *ok = "{\"remote-endpoint\": \"/k.sock\", \"runtime-hooks\": [\"PreRunPodSandbox\"]}";
  assert_int_equal(parse("plugin", ok, &p, &err), 0);
  assert_string_equal(p.name, "plugin");
  char long_name[200];
  memset(long_name, 'n', 150);
  strcpy(long_name + 150, ".json");
  assert_int_equal(parse(long_name, ok, &p, &err), -1);
  assert_non_null(strstr(err.msg, "file name longer than 127 bytes"));
}

static void parse_error_reasons(void **state) {
  (void)state;
#define EP "\"remote-endpoint\": \"/x.sock\""
#define HOOKS "\"runtime-hooks\": [\"PreRunPodSandbox\"]"
  assert_rejected("", "not JSON");
  assert_rejected("remote-endpoint: /x.sock", "not JSON: ");
  assert_rejected("{\n  " EP ",\n  " HOOKS ",\n}", "at line 4 column 1");
  assert_rejected("{" EP ", " HOOKS "", "not JSON");
  assert_rejected("[]", "must be a JSON object");
  assert_rejected("{" HOOKS "}", "remote-endpoint is missing");
  assert_rejected("{\"remote-endpoint\": 5, " HOOKS "}", "remote-endpoint must be a string");
  assert_rejected("{\"remote-endpoint\": \"\", " HOOKS "}", "remote-endpoint: empty endpoint");
  assert_rejected("{\"remote-endpoint\": \"x.sock\", " HOOKS "}",
                  "remote-endpoint: endpoint x.sock: the socket path must be absolute");
  assert_rejected("{\"remote-endpoint\": \"tcp://1.2.3.4:5\", " HOOKS "}",
                  "only unix sockets are supported");
  assert_rejected("{" EP ", \"failure-policy\": true, " HOOKS "}",
                  "failure-policy must be a string");
  assert_rejected("{" EP ", \"failure-policy\": \"fail\", " HOOKS "}",
                  "failure-policy must be Fail or Ignore, not 'fail'");
  assert_rejected("{" EP "}", "runtime-hooks is missing: the file registers no hooks");
  assert_rejected("{" EP ", \"runtime-hooks\": []}",
                  "runtime-hooks is empty: the file registers no hooks");
  assert_rejected("{" EP ", \"runtime-hooks\": \"PreRunPodSandbox\"}",
                  "runtime-hooks must be a list of hook names");
  assert_rejected("{" EP ", \"runtime-hooks\": [\"PreRunPodSandbox\", 7]}",
                  "runtime-hooks[1] must be a string");
  assert_rejected("{" EP ", \"runtime-hooks\": [\"PreRunPodSandbox\", \"NoSuchHook\"]}",
                  "runtime-hooks: unknown hook 'NoSuchHook' (known: PreRunPodSandbox, ");
  assert_rejected("{" EP ", \"runtime-hooks\": [\"prerunpodsandbox\"]}",
                  "unknown hook 'prerunpodsandbox'");
  assert_rejected("{" EP ", " HOOKS ", \"timeout-ms\": \"5\"}", "timeout-ms must be an integer");
  assert_rejected("{" EP ", " HOOKS ", \"timeout-ms\": 1.5}", "timeout-ms must be an integer");
  assert_rejected("{" EP ", " HOOKS ", \"timeout-ms\": 0}",
                  "timeout-ms must be from 1 to 120000, not 0");
  assert_rejected("{" EP ", " HOOKS ", \"timeout-ms\": -3}", "not -3");
  assert_rejected("{" EP ", " HOOKS ", \"timeout-ms\": 120001}", "not 120001");
#undef EP
#undef HOOKS
}

/* ---- load ---- */

static void load_orders_by_file_name(void **state) {
  (void)state;
  write_plugin("20-b.json", "/run/b.sock", PRE_RUN "," PRE_CREATE, 100);
  write_plugin("9-c.json", "/run/c.sock", PRE_CREATE, 100);
  write_plugin("10-a.json", "/run/a.sock", PRE_CREATE "," POST_STOP, 100);
  ch_registry *r = load(tmp, NULL);
  assert_int_equal(r->count, 3);
  assert_int_equal(r->error_count, 0);
  /* strcmp order: "10-a" < "20-b" < "9-c" (bytes, not numbers) */
  const char *want[] = {"10-a", "20-b", "9-c"};
  for (int i = 0; i < 3; i++) {
    assert_string_equal(r->plugins[i].name, want[i]);
    assert_int_equal(r->plugins[i].order, i);
  }
  assert_string_equal(r->plugins[0].file, at("10-a.json"));
  assert_int_equal(r->hook_count[CH_HOOK_PRE_CREATE_CONTAINER], 3);
  for (int i = 0; i < 3; i++)
    assert_ptr_equal(r->by_hook[CH_HOOK_PRE_CREATE_CONTAINER][i], &r->plugins[i]);
  assert_int_equal(r->hook_count[CH_HOOK_PRE_RUN_POD_SANDBOX], 1);
  assert_ptr_equal(r->by_hook[CH_HOOK_PRE_RUN_POD_SANDBOX][0], &r->plugins[1]);
  assert_int_equal(r->hook_count[CH_HOOK_POST_STOP_CONTAINER], 1);
  assert_ptr_equal(r->by_hook[CH_HOOK_POST_STOP_CONTAINER][0], &r->plugins[0]);
  assert_int_equal(r->hook_count[CH_HOOK_PRE_START_CONTAINER], 0);
  ch_registry_unref(r);
}

static void load_ignores_other_names(void **state) {
  (void)state;
  write_plugin("a.json", "/run/a.sock", PRE_RUN, 100);
  write_plugin("b.txt", "/run/b.sock", PRE_RUN, 100);
  write_plugin("c.json.tmp", "/run/c.sock", PRE_RUN, 100);
  write_plugin(".d.json", "/run/d.sock", PRE_RUN, 100);
  write_plugin(".json", "/run/e.sock", PRE_RUN, 100);
  write_plugin("json", "/run/f.sock", PRE_RUN, 100);
  assert_int_equal(mkdir(at("..2026_11_23_01"), 0755), 0);
  write_plugin("..2026_11_23_01/g.json", "/run/g.sock", PRE_RUN, 100);
  assert_int_equal(symlink("..2026_11_23_01", at("..data")), 0);
  ch_registry *r = load(tmp, NULL);
  assert_int_equal(r->count, 1);
  assert_string_equal(r->plugins[0].name, "a");
  assert_int_equal(r->error_count, 0);
  ch_registry_unref(r);
}

static void load_follows_symlinks(void **state) {
  (void)state;
  char outside[PATH_MAX], target[PATH_MAX + 16];
  snprintf(outside, sizeof outside, "%s-outside", tmp);
  assert_int_equal(mkdir(outside, 0755), 0);
  snprintf(target, sizeof target, "%s/real.json", outside);
  write_text(target,
             "{\"remote-endpoint\": \"/run/l.sock\", \"runtime-hooks\": [\"PreRunPodSandbox\"]}");
  assert_int_equal(symlink(target, at("30-link.json")), 0);
  assert_int_equal(symlink("missing.json", at("40-dangling.json")), 0);
  ch_registry *r = load(tmp, NULL);
  assert_int_equal(r->count, 1);
  assert_string_equal(r->plugins[0].name, "30-link");
  assert_string_equal(r->plugins[0].file, at("30-link.json"));
  assert_string_equal(r->plugins[0].endpoint.path, "/run/l.sock");
  assert_int_equal(r->error_count, 1);
  assert_string_equal(r->errors[0].file, at("40-dangling.json"));
  assert_string_equal(r->errors[0].reason, "broken symlink");
  ch_registry_unref(r);
  unlink(target);
  rmdir(outside);
}

static void load_lists_bad_files_and_keeps_the_rest(void **state) {
  (void)state;
  write_plugin("10-good.json", "/run/g.sock", PRE_RUN, 100);
  write_text(at("20-bad.json"),
             "{\"remote-endpoint\": \"/run/b.sock\", \"runtime-hooks\": "
             "[\"NoSuchHook\"]}");
  write_text(at("30-broken.json"), "{ nope");
  write_plugin("40-good.json", "/run/h.sock", PRE_CREATE, 100);
  assert_int_equal(mkdir(at("50-dir.json"), 0755), 0);
  assert_int_equal(mkfifo(at("60-fifo.json"), 0644), 0); /* must not block */
  ch_registry *r = load(tmp, NULL);
  assert_int_equal(r->count, 2);
  assert_string_equal(r->plugins[0].name, "10-good");
  assert_string_equal(r->plugins[1].name, "40-good");
  assert_int_equal(r->plugins[1].order, 1);
  assert_int_equal(r->error_count, 4);
  assert_string_equal(r->errors[0].file, at("20-bad.json"));
  assert_non_null(strstr(r->errors[0].reason, "unknown hook 'NoSuchHook'"));
  assert_true(r->errors[0].size > 0 && r->errors[0].mtime_ns > 0);
  assert_string_equal(r->errors[1].file, at("30-broken.json"));
  assert_non_null(strstr(r->errors[1].reason, "not JSON"));
  assert_string_equal(r->errors[2].reason, "not a regular file (a directory)");
  assert_string_equal(r->errors[3].reason, "not a regular file (a fifo)");
  ch_registry_unref(r);
}

static void load_rejects_large_files(void **state) {
  (void)state;
  size_t n = 1024 * 1024 + 10;
  char *text = malloc(n + 1);
  memset(text, ' ', n);
  text[n] = '\0';
  const char *head =
      "{\"remote-endpoint\": \"/x.sock\", \"runtime-hooks\": [\"PreRunPodSandbox\"]}";
  memcpy(text, head, strlen(head));
  write_text(at("big.json"), text);
  text[1024 * 1024 - 1] = '\0'; /* exactly the limit is fine */
  write_text(at("limit.json"), text);
  free(text);
  ch_registry *r = load(tmp, NULL);
  assert_int_equal(r->count, 1);
  assert_string_equal(r->plugins[0].name, "limit");
  assert_int_equal(r->error_count, 1);
  assert_non_null(strstr(r->errors[0].reason, "larger than 1048576 bytes"));
  ch_registry_unref(r);
}

static void load_missing_dir_is_empty(void **state) {
  (void)state;
  ch_registry *r = load(at("nope"), NULL);
  assert_int_equal(r->count, 0);
  assert_int_equal(r->error_count, 0);
  for (int h = 0; h < CH_HOOK_COUNT; h++) assert_int_equal(r->hook_count[h], 0);
  ch_registry_unref(r);
  write_text(at("file"), "x"); /* a file where the directory should be */
  r = load(at("file"), NULL);
  assert_int_equal(r->count, 0);
  ch_registry_unref(r);
}

static void load_fails_on_unreadable_dir(void **state) {
  (void)state;
  if (geteuid() == 0) skip(); /* root reads it anyway */
  assert_int_equal(mkdir(at("locked"), 0), 0);
  ch_registry *r = NULL;
  ch_error err;
  assert_int_equal(ch_registry_load(at("locked"), NULL, &r, &err), -1);
  assert_null(r);
  assert_non_null(strstr(err.msg, "Permission denied"));
}

/* A plugin only names its socket: every spelling of one endpoint gives the
 * same path, and a reload that moves a plugin names the new path while the
 * registry it replaces keeps the old one. Nothing connects (none of these
 * sockets exists): each loop of crihookd connects on its own. */
static void load_names_endpoints(void **state) {
  (void)state;
  write_plugin("a.json", "/run/same.sock", PRE_RUN, 100);
  write_plugin("b.json", "unix:///run/same.sock", PRE_CREATE, 100);
  write_plugin("c.json", "/run/c.sock", PRE_CREATE, 100);
  ch_registry *r1 = load(tmp, NULL);
  assert_int_equal(r1->count, 3);
  assert_string_equal(r1->plugins[0].endpoint.path, "/run/same.sock");
  assert_string_equal(r1->plugins[1].endpoint.path, "/run/same.sock");
  assert_string_equal(r1->plugins[1].endpoint.target, "unix:/run/same.sock");
  assert_string_equal(r1->plugins[2].endpoint.path, "/run/c.sock");

  write_plugin("c.json", "/run/c2.sock", PRE_CREATE, 100); /* moved */
  ch_registry *r2 = load(tmp, r1);
  assert_string_equal(r2->plugins[2].endpoint.path, "/run/c2.sock");
  assert_string_equal(r1->plugins[2].endpoint.path, "/run/c.sock"); /* r1 unchanged */
  assert_false(ch_registry_equal(r1, r2));
  ch_registry_unref(r1);
  assert_string_equal(r2->plugins[0].endpoint.path, "/run/same.sock"); /* whole without r1 */
  assert_ptr_equal(r2->by_hook[CH_HOOK_PRE_CREATE_CONTAINER][1], &r2->plugins[2]);
  ch_registry_unref(r2);
}

static void equal_compares_plugins_and_errors(void **state) {
  (void)state;
  write_plugin("a.json", "/run/a.sock", PRE_RUN, 100);
  write_text(at("bad.json"), "{");
  ch_registry *r1 = load(tmp, NULL), *r2 = load(tmp, r1);
  assert_true(ch_registry_equal(r1, r2));

  struct timespec times[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
  assert_int_equal(utimensat(AT_FDCWD, at("bad.json"), times, 0), 0);
  assert_int_equal(utimensat(AT_FDCWD, at("a.json"), times, 0), 0);
  ch_registry *r3 = load(tmp, r2);
  assert_true(r3->errors[0].mtime_ns != r2->errors[0].mtime_ns);
  assert_true(ch_registry_equal(r2, r3)); /* a touch changes nothing */

  write_plugin("a.json", "/run/a.sock", PRE_RUN, 101);
  ch_registry *r4 = load(tmp, r3);
  assert_false(ch_registry_equal(r3, r4)); /* timeout */
  write_text(at("bad.json"), "[");
  ch_registry *r5 = load(tmp, r4);
  assert_false(ch_registry_equal(r4, r5)); /* error reason */
  write_plugin("0.json", "/run/z.sock", PRE_RUN, 101);
  ch_registry *r6 = load(tmp, r5);
  assert_false(ch_registry_equal(r5, r6)); /* a plugin more; orders shift */
  ch_registry *empty = ch_registry_empty();
  assert_false(ch_registry_equal(empty, r6));
  assert_true(ch_registry_equal(empty, empty));
  ch_registry *all[] = {r1, r2, r3, r4, r5, r6, empty};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_registry_unref(all[i]);
}

/* ---- the slot ---- */

static void slot_publish_and_acquire(void **state) {
  (void)state;
  ch_registry_slot slot;
  ch_registry_slot_init(&slot);
  ch_registry *r = ch_registry_slot_acquire(&slot);
  assert_int_equal(r->generation, 0);
  assert_int_equal(r->count, 0);
  ch_registry_unref(r);

  write_plugin("a.json", "/run/a.sock", PRE_RUN, 100);
  ch_registry_slot_publish(&slot, load(tmp, NULL));
  r = ch_registry_slot_acquire(&slot);
  assert_int_equal(r->generation, 1);
  assert_int_equal(r->count, 1);
  ch_registry_slot_publish(&slot, ch_registry_empty());
  ch_registry *r2 = ch_registry_slot_acquire(&slot);
  assert_int_equal(r2->generation, 2);
  assert_int_equal(r2->count, 0);

  /* the old reader's registry is still whole after the publish */
  assert_int_equal(atomic_load(&r->refs), 1);
  assert_string_equal(r->plugins[0].name, "a");
  assert_ptr_equal(r->by_hook[CH_HOOK_PRE_RUN_POD_SANDBOX][0], &r->plugins[0]);
  assert_string_equal(r->plugins[0].endpoint.path, "/run/a.sock");
  ch_registry_unref(r); /* the last reference: freed here (ASan checks) */
  ch_registry_unref(r2);
  ch_registry_slot_destroy(&slot);
}

typedef struct reader_arg {
  ch_registry_slot *slot;
  atomic_bool *stop;
  unsigned long reads;
  bool monotonic;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = p;
  uint64_t last = 0;
  a->monotonic = true;
  while (!atomic_load(a->stop)) {
    ch_registry *r = ch_registry_slot_acquire(a->slot);
    if (r->generation < last) a->monotonic = false;
    last = r->generation;
    for (size_t i = 0; i < r->count; i++)
      if (strncmp(r->by_hook[CH_HOOK_PRE_RUN_POD_SANDBOX][0]->endpoint.path, "/run/", 5) != 0)
        a->monotonic = false; /* not a whole registry */
    ch_registry_unref(r);
    a->reads++;
  }
  return NULL;
}

static void slot_concurrent_readers(void **state) {
  (void)state;
  write_plugin("a.json", "/run/a.sock", PRE_RUN, 100);
  ch_registry_slot slot;
  ch_registry_slot_init(&slot);
  atomic_bool stop = false;
  reader_arg args[3];
  pthread_t threads[3];
  for (int i = 0; i < 3; i++) {
    args[i] = (reader_arg){.slot = &slot, .stop = &stop};
    pthread_create(&threads[i], NULL, reader, &args[i]);
  }
  ch_registry *previous = ch_registry_slot_acquire(&slot);
  for (int i = 0; i < 300; i++) {
    write_plugin("a.json", i % 2 ? "/run/a.sock" : "/run/b.sock", PRE_RUN, 100 + i);
    ch_registry *next = load(tmp, previous);
    ch_registry_unref(previous);
    ch_registry_ref(next);
    previous = next;
    ch_registry_slot_publish(&slot, next);
  }
  ch_registry_unref(previous);
  atomic_store(&stop, true);
  for (int i = 0; i < 3; i++) {
    pthread_join(threads[i], NULL);
    assert_true(args[i].monotonic);
    assert_true(args[i].reads > 0);
  }
  ch_registry *r = ch_registry_slot_acquire(&slot);
  assert_int_equal(r->generation, 300);
  ch_registry_unref(r);
  ch_registry_slot_destroy(&slot);
}

#define T(f) cmocka_unit_test_setup_teardown(f, make_tmp, remove_tmp)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_every_field),
      cmocka_unit_test(parse_defaults_and_plain_path),
      cmocka_unit_test(parse_ignore_policy_and_timeout_bounds),
      cmocka_unit_test(parse_every_hook_name),
      cmocka_unit_test(parse_ignores_unknown_keys),
      cmocka_unit_test(parse_name_without_suffix),
      cmocka_unit_test(parse_error_reasons),
      T(load_orders_by_file_name),
      T(load_ignores_other_names),
      T(load_follows_symlinks),
      T(load_lists_bad_files_and_keeps_the_rest),
      T(load_rejects_large_files),
      T(load_missing_dir_is_empty),
      T(load_fails_on_unreadable_dir),
      T(load_names_endpoints),
      T(equal_compares_plugins_and_errors),
      T(slot_publish_and_acquire),
      T(slot_concurrent_readers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
