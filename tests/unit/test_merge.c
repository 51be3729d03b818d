/* SPDX-License-Identifier: Apache-2.0 */
/* test_merge.c: the merge rules of dispatcher/merge.h, field by field, on
 * real protobuf-c messages (built from JSON with api/pbjson.h and compared
 * as JSON), and the in-place edit helpers they rest on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "merge.h"
#include "pbjson.h"
#include "pbutil.h"

static ProtobufCMessage *from_json(const ProtobufCMessageDescriptor *desc, const char *text) {
  json_error_t jerr;
  json_t *doc = json_loads(text, 0, &jerr);
  if (!doc) fail_msg("bad test JSON: %s", jerr.text);
  ProtobufCMessage *msg = NULL;
  ch_error err;
  if (ch_pb_from_json(desc, doc, &msg, &err) != 0) fail_msg("%s", err.msg);
  json_decref(doc);
  return msg;
}

/* Asserts that msg, printed as JSON, equals `expected` (also JSON). */
static void assert_json(const ProtobufCMessage *msg, const char *expected) {
  json_t *got = ch_pb_to_json(msg), *want = json_loads(expected, 0, NULL);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    fail_msg("got %s\nwant %s", g, w);
  }
  json_decref(got);
  json_decref(want);
}

#define CONFIG(json) \
  ((Runtime__V1__PodSandboxConfig *)from_json(&runtime__v1__pod_sandbox_config__descriptor, json))
#define POD_ANSWER(json)                                   \
  ((Runtime__V1alpha1__PodSandboxHookResponse *)from_json( \
      &runtime__v1alpha1__pod_sandbox_hook_response__descriptor, json))
#define CONTAINER(json) \
  ((Runtime__V1__ContainerConfig *)from_json(&runtime__v1__container_config__descriptor, json))
#define CTR_ANSWER(json)                                          \
  ((Runtime__V1alpha1__ContainerResourceHookResponse *)from_json( \
      &runtime__v1alpha1__container_resource_hook_response__descriptor, json))

static void labels_and_annotations_merge_key_by_key(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *c =
      CONFIG("{\"labels\": {\"a\": \"1\", \"b\": \"2\"}, \"annotations\": {\"x\": \"old\"}}");
  Runtime__V1alpha1__PodSandboxHookResponse *a =
      POD_ANSWER("{\"labels\": {\"b\": \"20\", \"c\": \"3\"}, \"annotations\": {\"y\": \"new\"}}");
  assert_int_equal(ch_merge_pod_answer(c, a, NULL, "p"), 0);
  assert_json(&c->base,
              "{\"labels\": {\"a\": \"1\", \"b\": \"20\", \"c\": \"3\"},"
              " \"annotations\": {\"x\": \"old\", \"y\": \"new\"}}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void cgroup_parent_replaces_only_when_set(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *c = CONFIG("{\"linux\": {\"cgroup_parent\": \"/kubepods\"}}");
  Runtime__V1alpha1__PodSandboxHookResponse *empty = POD_ANSWER("{}");
  assert_int_equal(ch_merge_pod_answer(c, empty, NULL, "p"), 0);
  assert_string_equal(c->linux->cgroup_parent, "/kubepods");
  Runtime__V1alpha1__PodSandboxHookResponse *set = POD_ANSWER("{\"cgroup_parent\": \"/gold\"}");
  assert_int_equal(ch_merge_pod_answer(c, set, NULL, "p"), 0);
  assert_string_equal(c->linux->cgroup_parent, "/gold");
  protobuf_c_message_free_unpacked(&empty->base, NULL);
  protobuf_c_message_free_unpacked(&set->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void cgroup_parent_creates_linux_when_missing(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *c = CONFIG("{}");
  Runtime__V1alpha1__PodSandboxHookResponse *a = POD_ANSWER("{\"cgroup_parent\": \"/gold\"}");
  assert_int_equal(ch_merge_pod_answer(c, a, NULL, "p"), 0);
  assert_json(&c->base, "{\"linux\": {\"cgroup_parent\": \"/gold\"}}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* Every resources field on its own: set replaces, zero leaves alone. */
static void resources_field_by_field(void **state) {
  (void)state;
  static const char *const before =
      "{\"linux\": {\"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000,"
      " \"cpu_shares\": 1024, \"memory_limit_in_bytes\": 1000, \"oom_score_adj\": -5,"
      " \"cpuset_cpus\": \"0-3\", \"cpuset_mems\": \"0\", \"memory_swap_limit_in_bytes\": 2000,"
      " \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 10}],"
      " \"unified\": {\"memory.high\": \"900\", \"io.weight\": \"10\"}}}}";
  static const struct {
    const char *answer, *field, *expected;
  } cases[] = {
      {"{\"cpu_period\": 200000}", "cpu_period", "200000"},
      {"{\"cpu_quota\": 7}", "cpu_quota", "7"},
      {"{\"cpu_shares\": 2}", "cpu_shares", "2"},
      {"{\"memory_limit_in_bytes\": 4096}", "memory_limit_in_bytes", "4096"},
      {"{\"oom_score_adj\": 500}", "oom_score_adj", "500"},
      {"{\"cpuset_cpus\": \"4-7\"}", "cpuset_cpus", "\"4-7\""},
      {"{\"cpuset_mems\": \"1\"}", "cpuset_mems", "\"1\""},
      {"{\"memory_swap_limit_in_bytes\": 9}", "memory_swap_limit_in_bytes", "9"},
      {"{\"hugepage_limits\": [{\"page_size\": \"1GB\", \"limit\": 1}]}", "hugepage_limits",
       "[{\"page_size\": \"1GB\", \"limit\": 1}]"},
      {"{\"unified\": {\"memory.high\": \"800\"}}", "unified",
       "{\"memory.high\": \"800\", \"io.weight\": \"10\"}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Runtime__V1__PodSandboxConfig *c = CONFIG(before);
    char answer[256];
    snprintf(answer, sizeof answer, "{\"resources\": %s}", cases[i].answer);
    Runtime__V1alpha1__PodSandboxHookResponse *a = POD_ANSWER(answer);
    assert_int_equal(ch_merge_pod_answer(c, a, NULL, "p"), 0);
    json_t *got = ch_pb_to_json(&c->base), *want = json_loads(before, 0, NULL);
    json_t *res = json_object_get(json_object_get(want, "linux"), "resources");
    json_object_set_new(res, cases[i].field, json_loads(cases[i].expected, JSON_DECODE_ANY, NULL));
    if (!json_equal(got, want)) fail_msg("field %s: merge changed something else", cases[i].field);
    json_decref(got);
    json_decref(want);
    protobuf_c_message_free_unpacked(&a->base, NULL);
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
}

/* The koordinator bug crihook must not have: an answer that omits
 * oom_score_adj or cpuset_cpus leaves them as they were. */
static void zero_fields_change_nothing(void **state) {
  (void)state;
  Runtime__V1__ContainerConfig *c = CONTAINER(
      "{\"linux\": {\"resources\": {\"oom_score_adj\": 999, \"cpuset_cpus\": \"1\","
      " \"cpu_shares\": 10}}}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a =
      CTR_ANSWER("{\"container_resources\": {\"cpu_shares\": 20}}");
  assert_int_equal(ch_merge_container_answer(c, NULL, a, NULL, "p"), 0);
  assert_json(&c->base,
              "{\"linux\": {\"resources\": {\"oom_score_adj\": 999, \"cpuset_cpus\": \"1\","
              " \"cpu_shares\": 20}}}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void envs_change_in_place_and_append_in_order(void **state) {
  (void)state;
  Runtime__V1__ContainerConfig *c = CONTAINER(
      "{\"envs\": [{\"key\": \"A\", \"value\": \"1\"}, {\"key\": \"B\", \"value\": \"2\"},"
      " {\"key\": \"C\", \"value\": \"3\"}]}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a =
      CTR_ANSWER("{\"container_envs\": {\"B\": \"20\", \"D\": \"4\"}}");
  assert_int_equal(ch_merge_container_answer(c, NULL, a, NULL, "p"), 0);
  assert_json(&c->base,
              "{\"envs\": [{\"key\": \"A\", \"value\": \"1\"}, {\"key\": \"B\", \"value\": \"20\"},"
              " {\"key\": \"C\", \"value\": \"3\"}, {\"key\": \"D\", \"value\": \"4\"}]}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void container_annotations_resources_and_pod_cgroup(void **state) {
  (void)state;
  Runtime__V1__ContainerConfig *c = CONTAINER("{\"annotations\": {\"keep\": \"me\"}}");
  Runtime__V1__PodSandboxConfig *sb = CONFIG("{\"linux\": {\"cgroup_parent\": \"/a\"}}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a = CTR_ANSWER(
      "{\"container_annotations\": {\"new\": \"1\"}, \"container_resources\": {\"cpu_quota\": 5},"
      " \"pod_cgroup_parent\": \"/b\"}");
  assert_int_equal(ch_merge_container_answer(c, sb, a, NULL, "p"), 0);
  assert_json(&c->base,
              "{\"annotations\": {\"keep\": \"me\", \"new\": \"1\"},"
              " \"linux\": {\"resources\": {\"cpu_quota\": 5}}}");
  assert_string_equal(sb->linux->cgroup_parent, "/b");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&sb->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void update_answer_merges_into_the_request(void **state) {
  (void)state;
  Runtime__V1__UpdateContainerResourcesRequest *r =
      (void *)from_json(&runtime__v1__update_container_resources_request__descriptor,
                        "{\"container_id\": \"c1\", \"linux\": {\"cpu_shares\": 512,"
                        " \"memory_limit_in_bytes\": 64}}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a = CTR_ANSWER(
      "{\"container_resources\": {\"cpu_shares\": 777}, \"container_annotations\": {\"k\": "
      "\"v\"}}");
  assert_int_equal(ch_merge_update_answer(r, a, NULL, "p"), 0);
  assert_json(&r->base,
              "{\"container_id\": \"c1\", \"linux\": {\"cpu_shares\": 777,"
              " \"memory_limit_in_bytes\": 64}, \"annotations\": {\"k\": \"v\"}}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void record_answer_updates_what_is_stored(void **state) {
  (void)state;
  Runtime__V1alpha1__ContainerResourceHookRequest *rec =
      (void *)from_json(&runtime__v1alpha1__container_resource_hook_request__descriptor,
                        "{\"container_envs\": {\"A\": \"1\"}, \"container_resources\":"
                        " {\"cpu_shares\": 2}}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a = CTR_ANSWER(
      "{\"container_envs\": {\"B\": \"2\"}, \"container_resources\": {\"cpu_quota\": 3}}");
  assert_int_equal(ch_merge_record_answer(rec, a, NULL, "p"), 0);
  assert_json(&rec->base,
              "{\"container_envs\": {\"A\": \"1\", \"B\": \"2\"},"
              " \"container_resources\": {\"cpu_shares\": 2, \"cpu_quota\": 3}}");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&rec->base, NULL);
}

static void trace_reports_overwrites_between_plugins(void **state) {
  (void)state;
  ch_merge_trace trace = {0};
  Runtime__V1__PodSandboxConfig *c = CONFIG("{}");
  Runtime__V1alpha1__PodSandboxHookResponse *a = POD_ANSWER("{\"labels\": {\"x\": \"a\"}}");
  Runtime__V1alpha1__PodSandboxHookResponse *b =
      POD_ANSWER("{\"labels\": {\"x\": \"b\", \"y\": \"b\"}, \"cgroup_parent\": \"/b\"}");
  assert_int_equal(ch_merge_pod_answer(c, a, &trace, "10-a"), 0);
  assert_string_equal(trace.overwrites, "");
  assert_int_equal(ch_merge_pod_answer(c, b, &trace, "20-b"), 0);
  assert_string_equal(trace.overwrites, "labels[x] (10-a -> 20-b)");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&b->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* The entries of trace->changes, joined by " | ". */
static void changes_text(const ch_merge_trace *t, char *buf, size_t size) {
  size_t used = 0;
  const char *c = t->changes;
  buf[0] = '\0';
  for (unsigned i = 0; i < t->change_count; i++, c += strlen(c) + 1)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? " | " : "", c);
}

static void trace_lists_what_an_answer_changed(void **state) {
  (void)state;
  ch_merge_trace trace = {.want_changes = true};
  char text[1024];
  Runtime__V1__ContainerConfig *c = CONTAINER(
      "{\"envs\": [{\"key\": \"A\", \"value\": \"1\"}, {\"key\": \"S\", \"value\": \"same\"}],"
      " \"annotations\": {\"x\": \"old\"}, \"linux\": {\"resources\": {\"cpu_shares\": 2}}}");
  Runtime__V1__PodSandboxConfig *pod = CONFIG("{}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a = CTR_ANSWER(
      "{\"container_envs\": {\"A\": \"2\", \"FOO\": \"bar\", \"S\": \"same\"},"
      " \"container_annotations\": {\"x\": \"new\", \"y\": \"z\"},"
      " \"container_resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 1024,"
      " \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 1}]},"
      " \"pod_cgroup_parent\": \"/kubepods/gold\"}");
  assert_int_equal(ch_merge_container_answer(c, pod, a, &trace, "p"), 0);
  changes_text(&trace, text, sizeof text);
  assert_string_equal(text,
                      "annotation[x] old->new | annotation+y=z | env[A] 1->2 | env+FOO=bar | "
                      "resources.cpu_shares 2->512 | resources.memory_limit_in_bytes=1024 | "
                      "resources.hugepage_limits replaced (1) | pod_cgroup_parent=/kubepods/gold");
  ch_merge_trace_clear_changes(&trace);
  assert_int_equal(trace.change_count, 0);
  trace.want_changes = false; /* nobody watching: nothing listed */
  assert_int_equal(ch_merge_container_answer(c, pod, a, &trace, "p"), 0);
  assert_int_equal(trace.change_count, 0);
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&pod->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void trace_change_list_ends_with_dots_when_full(void **state) {
  (void)state;
  ch_merge_trace trace = {.want_changes = true};
  Runtime__V1__PodSandboxConfig *c = CONFIG("{}");
  char json[8192] = "{\"labels\": {";
  for (int i = 0; i < 40; i++)
    snprintf(json + strlen(json), sizeof json - strlen(json), "%s\"key-%02d\": \"value-%02d\"",
             i ? ", " : "", i, i);
  strcat(json, "}}");
  Runtime__V1alpha1__PodSandboxHookResponse *a = POD_ANSWER(json);
  assert_int_equal(ch_merge_pod_answer(c, a, &trace, "p"), 0);
  assert_true(trace.changes_len <= sizeof trace.changes);
  const char *last = trace.changes;
  for (unsigned i = 1; i < trace.change_count; i++) last += strlen(last) + 1;
  assert_string_equal(last, "...");
  assert_string_equal(trace.changes, "label+key-00=value-00");
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void map_helpers(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *c = CONFIG("{\"labels\": {\"a\": \"1\"}}");
  assert_int_equal(ch_pb_map_set(&c->base, "labels", "a", "1"), 0); /* unchanged */
  assert_int_equal(ch_pb_map_set(&c->base, "labels", "a", "2"), 1); /* replaced */
  assert_int_equal(ch_pb_map_set(&c->base, "labels", "b", ""), 0);  /* added, empty value */
  assert_int_equal(ch_pb_map_set(&c->base, "no_such_field", "k", "v"), -1);
  assert_string_equal(ch_pb_map_get(&c->base, "labels", "a"), "2");
  assert_string_equal(ch_pb_map_get(&c->base, "labels", "b"), "");
  assert_null(ch_pb_map_get(&c->base, "labels", "zzz"));
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* n pairs KEY_i=<value>-i as a malloc'd array of malloc'd entries of
 * `desc` (a KeyValue or a map entry: both {base, key, value}). */
typedef struct {
  ProtobufCMessage base;
  char *key, *value;
} pair;

static void *make_pairs(const ProtobufCMessageDescriptor *desc, size_t n, const char *value) {
  pair **list = malloc(n * sizeof *list);
  char text[48];
  for (size_t i = 0; i < n; i++) {
    list[i] = malloc(desc->sizeof_message);
    protobuf_c_message_init(desc, list[i]);
    snprintf(text, sizeof text, "KEY_%zu", i);
    list[i]->key = strdup(text);
    snprintf(text, sizeof text, "%s-%zu", value, i);
    list[i]->value = strdup(text);
  }
  return list;
}

/* A ContainerConfig with N envs KEY_i=old-i, and an answer setting the
 * same keys (changed) and N more: every key lands once, in order, in time
 * linear in N (100k + 200k entries: the scan this replaced took minutes). */
static void big_answers_merge_by_hash(void **state) {
  (void)state;
  enum { N = 100000 };
  Runtime__V1__ContainerConfig *c = CONTAINER("{}");
  Runtime__V1alpha1__ContainerResourceHookResponse *a = CTR_ANSWER("{}");
  c->envs = make_pairs(&runtime__v1__key_value__descriptor, N, "old");
  c->n_envs = N;
  a->container_envs = make_pairs(
      &runtime__v1alpha1__container_resource_hook_response__container_envs_entry__descriptor, 2 * N,
      "new");
  a->n_container_envs = 2 * N;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(ch_merge_container_answer(c, NULL, a, NULL, "p"), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("# merged %d envs into %d in %.1f ms\n", 2 * N, N,
         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  assert_int_equal(c->n_envs, 2 * N);
  char key[32], value[32];
  for (int i = 0; i < 2 * N; i++) {
    snprintf(key, sizeof key, "KEY_%d", i);
    snprintf(value, sizeof value, "new-%d", i);
    assert_string_equal(c->envs[i]->key, key);
    assert_string_equal(c->envs[i]->value, value);
  }
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* Duplicate keys in the answer (a map on the wire may repeat a key): the
 * last one wins, and the key is added once. */
static void duplicate_answer_keys_last_wins(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *c = CONFIG("{\"labels\": {\"a\": \"1\"}}");
  Runtime__V1alpha1__PodSandboxHookResponse *a = POD_ANSWER("{}");
  assert_int_equal(ch_pb_map_set(&a->base, "labels", "b", "x"), 0);
  assert_int_equal(ch_pb_map_set(&a->base, "labels", "a", "2"), 0);
  a->labels[1]->key[0] = 'b'; /* now b=x, b=2 */
  assert_int_equal(ch_merge_pod_answer(c, a, NULL, "p"), 0);
  assert_json(&c->base, "{\"labels\": {\"a\": \"1\", \"b\": \"2\"}}");
  assert_int_equal(c->n_labels, 2);
  protobuf_c_message_free_unpacked(&a->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_and_annotations_merge_key_by_key),
      cmocka_unit_test(cgroup_parent_replaces_only_when_set),
      cmocka_unit_test(cgroup_parent_creates_linux_when_missing),
      cmocka_unit_test(resources_field_by_field),
      cmocka_unit_test(zero_fields_change_nothing),
      cmocka_unit_test(envs_change_in_place_and_append_in_order),
      cmocka_unit_test(container_annotations_resources_and_pod_cgroup),
      cmocka_unit_test(update_answer_merges_into_the_request),
      cmocka_unit_test(record_answer_updates_what_is_stored),
      cmocka_unit_test(trace_reports_overwrites_between_plugins),
      cmocka_unit_test(trace_lists_what_an_answer_changed),
      cmocka_unit_test(trace_change_list_ends_with_dots_when_full),
      cmocka_unit_test(map_helpers),
      cmocka_unit_test(big_answers_merge_by_hash),
      cmocka_unit_test(duplicate_answer_keys_last_wins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
