/* SPDX-License-Identifier: Apache-2.0 */
/* test_answer_check.c: the bounds and value rules a hook answer must meet
 * before it is merged (dispatcher/answer_check.h): each rule with a value
 * that passes and one that is refused, and the message naming the field and
 * the value. Answers are built from JSON (api/pbjson.h) and packed, as a
 * plugin would send them; NUL bytes are put into the packed bytes, since
 * protobuf-c cannot pack them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off: cmocka.h needs the headers above */
#include <cmocka.h>
/* clang-format on */

#include "answer_check.h"
#include "hook.pb-c.h"
#include "pbjson.h"

static const ProtobufCMessageDescriptor *const POD =
    &runtime__v1alpha1__pod_sandbox_hook_response__descriptor;
static const ProtobufCMessageDescriptor *const CTR =
    &runtime__v1alpha1__container_resource_hook_response__descriptor;

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

/* The answer packed; every '~' in it becomes a NUL byte. */
static uint8_t *packed(const ProtobufCMessageDescriptor *desc, const char *json, size_t *len) {
  ProtobufCMessage *m = from_json(desc, json);
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len + 1);
  protobuf_c_message_pack(m, buf);
  protobuf_c_message_free_unpacked(m, NULL);
  for (size_t i = 0; i < *len; i++)
    if (buf[i] == '~') buf[i] = 0;
  return buf;
}

static const ch_answer_limits small = {
    .max_bytes = 400, .max_entries = 3, .max_key_bytes = 8, .max_value_bytes = 16};

/* Checks the packed answer; returns the message ("" if it passed). */
static const char *wire_result(const ProtobufCMessageDescriptor *desc, const char *json,
                               const ch_answer_limits *limits) {
  static ch_error err;
  size_t len;
  uint8_t *buf = packed(desc, json, &len);
  int rc = ch_answer_check_wire(desc, buf, len, limits, &err);
  free(buf);
  if (rc == 0) return "";
  assert_int_equal(rc, -1);
  return err.msg;
}

static const char *value_result(const ProtobufCMessageDescriptor *desc, const char *json) {
  static ch_error err;
  ProtobufCMessage *m = from_json(desc, json);
  int rc = ch_answer_check_values(m, &err);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc == 0 ? "" : err.msg;
}

static void bounds(void **state) {
  (void)state;
  assert_string_equal(
      wire_result(POD, "{\"labels\": {\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"}}", &small), "");
  assert_string_equal(
      wire_result(POD, "{\"labels\": {\"a\": \"1\", \"b\": \"2\", \"c\": \"3\", \"d\": \"4\"}}",
                  &small),
      "labels has more than 3 entries");
  assert_string_equal(wire_result(CTR,
                                  "{\"container_resources\": {\"unified\": {\"a\": \"1\", \"b\": "
                                  "\"1\", \"c\": \"1\", \"d\": \"1\"}}}",
                                  &small),
                      "container_resources.unified has more than 3 entries");
  assert_string_equal(wire_result(CTR, "{\"container_envs\": {\"LONG_KEY_1\": \"v\"}}", &small),
                      "container_envs key of 10 bytes is longer than the bound of 8");
  assert_string_equal(
      wire_result(CTR, "{\"container_envs\": {\"K\": \"a value too long!\"}}", &small),
      "container_envs[\"K\"] value of 17 bytes is longer than the bound of 16");
  assert_string_equal(wire_result(POD, "{\"cgroup_parent\": \"/kubepods/burstable/pod\"}", &small),
                      "cgroup_parent value of 23 bytes is longer than the bound of 16");
  char big[600] = "{\"labels\": {";
  for (int i = 0; i < 3; i++)
    snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%d\": \"%s\"", i ? "," : "", i,
             "0123456789abcde");
  strcat(big, "}, \"annotations\": {\"a\": \"0123456789abcde\", \"b\": \"0123456789abcde\"}}");
  assert_string_equal(wire_result(POD, big, &small), "");
  ch_answer_limits tiny = small;
  tiny.max_bytes = 50;
  assert_string_equal(wire_result(POD, big, &tiny),
                      "the answer is 113 bytes, more than the bound of 50");
  /* the defaults let a real answer through */
  assert_string_equal(wire_result(POD, big, &ch_answer_default_limits), "");
}

static void nul_bytes_are_refused(void **state) {
  (void)state;
  const ch_answer_limits *d = &ch_answer_default_limits;
  assert_string_equal(wire_result(CTR, "{\"container_envs\": {\"FOO\": \"a~b\"}}", d),
                      "container_envs[\"FOO\"] value contains a NUL byte: \"a\\x00b\"");
  assert_string_equal(wire_result(POD, "{\"labels\": {\"k~x\": \"v\"}}", d),
                      "labels key contains a NUL byte: \"k\\x00x\"");
  assert_string_equal(wire_result(CTR, "{\"pod_cgroup_parent\": \"/kubepods~/x\"}", d),
                      "pod_cgroup_parent value contains a NUL byte: \"/kubepods\\x00/x\"");
  assert_string_equal(wire_result(CTR, "{\"container_resources\": {\"cpuset_cpus\": \"0-1~\"}}", d),
                      "container_resources.cpuset_cpus value contains a NUL byte: \"0-1\\x00\"");
  assert_string_equal(wire_result(CTR, "{\"container_envs\": {\"FOO\": \"a-b\"}}", d), "");
}

static void malformed_encoding_is_left_to_the_decoder(void **state) {
  (void)state;
  const uint8_t group[] = {0x0b, 0x0c};              /* field 1 as a group */
  const uint8_t cut[] = {0x0a, 0x7f, 'a'};           /* a length past the end */
  const uint8_t varint[] = {0x08, 0xff, 0xff, 0xff}; /* an unfinished varint */
  ch_error err;
  assert_int_equal(ch_answer_check_wire(POD, group, sizeof group, &small, &err), 0);
  assert_int_equal(ch_answer_check_wire(POD, cut, sizeof cut, &small, &err), 0);
  assert_int_equal(ch_answer_check_wire(POD, varint, sizeof varint, &small, &err), 0);
}

static void cgroup_parents(void **state) {
  (void)state;
  assert_string_equal(value_result(POD, "{\"cgroup_parent\": \"/kubepods/burstable/pod1\"}"), "");
  assert_string_equal(value_result(POD, "{\"cgroup_parent\": \"kubepods-pod1.slice\"}"), "");
  assert_string_equal(value_result(POD, "{\"cgroup_parent\": \"\"}"), "");
  assert_string_equal(value_result(POD, "{\"cgroup_parent\": \"../../../etc\"}"),
                      "cgroup_parent \"../../../etc\" is not an absolute path without '.' or "
                      "'..' components nor a systemd slice name");
  assert_string_equal(value_result(CTR, "{\"pod_cgroup_parent\": \"/kubepods/../../etc\"}"),
                      "pod_cgroup_parent \"/kubepods/../../etc\" is not an absolute path without "
                      "'.' or '..' components nor a systemd slice name");
  assert_string_not_equal(value_result(POD, "{\"cgroup_parent\": \"/kubepods/./x\"}"), "");
  assert_string_not_equal(value_result(POD, "{\"cgroup_parent\": \"/kube\\npods\"}"), "");
  assert_string_not_equal(value_result(POD, "{\"cgroup_parent\": \"a/b.slice\"}"), "");
  assert_string_not_equal(value_result(POD, "{\"cgroup_parent\": \"kubepods\"}"), "");
}

typedef struct {
  const char *json; /* container_resources */
  const char *message;
} resource_case;

static void resources(void **state) {
  (void)state;
  static const resource_case cases[] = {
      {"{\"cpu_shares\": 2, \"cpu_period\": 100000, \"cpu_quota\": 50000}", ""},
      {"{\"cpu_shares\": 262144, \"cpu_period\": 1000, \"cpu_quota\": -1}", ""},
      {"{\"cpu_shares\": -5}",
       "container_resources.cpu_shares -5 is out of range (0 or 2..262144)"},
      {"{\"cpu_shares\": 1}", "container_resources.cpu_shares 1 is out of range (0 or 2..262144)"},
      {"{\"cpu_shares\": 262145}",
       "container_resources.cpu_shares 262145 is out of range (0 or 2..262144)"},
      {"{\"cpu_period\": 999}",
       "container_resources.cpu_period 999 is out of range (0 or 1000..1000000)"},
      {"{\"cpu_period\": 1000001}",
       "container_resources.cpu_period 1000001 is out of range (0 or 1000..1000000)"},
      {"{\"cpu_quota\": -4611686018427387904}",
       "container_resources.cpu_quota -4611686018427387904 is out of range (-1, 0 or >= 1000)"},
      {"{\"cpu_quota\": 999}",
       "container_resources.cpu_quota 999 is out of range (-1, 0 or >= 1000)"},
      {"{\"memory_limit_in_bytes\": -1}",
       "container_resources.memory_limit_in_bytes -1 is out of range (>= 0)"},
      {"{\"memory_swap_limit_in_bytes\": -1, \"memory_limit_in_bytes\": 1048576}", ""},
      {"{\"memory_swap_limit_in_bytes\": -2}",
       "container_resources.memory_swap_limit_in_bytes -2 is out of range (>= -1)"},
      {"{\"oom_score_adj\": -1000}", ""},
      {"{\"oom_score_adj\": 1001}",
       "container_resources.oom_score_adj 1001 is out of range (-1000..1000)"},
      {"{\"cpuset_cpus\": \"0-3,8,10-11\", \"cpuset_mems\": \"0\"}", ""},
      {"{\"cpuset_cpus\": \"3-1\"}",
       "container_resources.cpuset_cpus \"3-1\" is not a cpuset list such as \"0-3,8\""},
      {"{\"cpuset_mems\": \"0,\"}",
       "container_resources.cpuset_mems \"0,\" is not a cpuset list such as \"0-3,8\""},
      {"{\"cpuset_cpus\": \"0-70000\"}",
       "container_resources.cpuset_cpus \"0-70000\" is not a cpuset list such as \"0-3,8\""},
      {"{\"cpuset_cpus\": \"a\"}",
       "container_resources.cpuset_cpus \"a\" is not a cpuset list such as \"0-3,8\""},
      {"{\"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 1}]}", ""},
      {"{\"hugepage_limits\": [{\"page_size\": \"../x\", \"limit\": 1}]}",
       "container_resources.hugepage_limits page_size \"../x\" is not a size such as \"2MB\""},
      {"{\"unified\": {\"memory.high\": \"max\", \"hugetlb.2MB.max\": \"0\"}}", ""},
      {"{\"unified\": {\"../../etc/passwd\": \"x\"}}",
       "container_resources.unified key \"../../etc/passwd\" is not a cgroup file name"},
      {"{\"unified\": {\"cpu.max\": \"1\\n2\"}}",
       "container_resources.unified[cpu.max] value \"1\\x0a2\" contains control characters"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[512];
    snprintf(json, sizeof json, "{\"container_resources\": %s}", cases[i].json);
    print_message("%s\n", json);
    assert_string_equal(value_result(CTR, json), cases[i].message);
  }
  assert_string_equal(value_result(POD, "{\"resources\": {\"cpu_shares\": -5}}"),
                      "resources.cpu_shares -5 is out of range (0 or 2..262144)");
}

static void keys(void **state) {
  (void)state;
  assert_string_equal(value_result(CTR, "{\"container_envs\": {\"A=B\": \"c\"}}"),
                      "container_envs key \"A=B\" contains '='");
  assert_string_equal(value_result(CTR, "{\"container_envs\": {\"\": \"c\"}}"),
                      "container_envs has an empty key");
  assert_string_equal(value_result(POD, "{\"labels\": {\"\": \"c\"}}"), "labels has an empty key");
  assert_string_equal(value_result(POD, "{\"annotations\": {\"\": \"c\"}}"),
                      "annotations has an empty key");
  assert_string_equal(value_result(CTR, "{\"container_annotations\": {\"\": \"c\"}}"),
                      "container_annotations has an empty key");
  assert_string_equal(value_result(CTR, "{\"container_envs\": {\"A\": \"B=C\"}}"), "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bounds),
      cmocka_unit_test(nul_bytes_are_refused),
      cmocka_unit_test(malformed_encoding_is_left_to_the_decoder),
      cmocka_unit_test(cgroup_parents),
      cmocka_unit_test(resources),
      cmocka_unit_test(keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
