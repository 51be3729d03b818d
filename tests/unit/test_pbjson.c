/* SPDX-License-Identifier: Apache-2.0 */
/* test_pbjson.c: unit tests of the protobuf-c <-> JSON converter (api/pbjson.h)
 * on the real CRI messages: round trips through the wire format, maps, enums,
 * nested and repeated fields, bytes, numbers, and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
// clang-format off
#include <cmocka.h>
// clang-format on

#include "cri.pb-c.h"
#include "pbjson.h"

/* Parses JSON text, failing the test on a syntax error in the test itself. */
static json_t *parse(const char *text) {
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr);
  if (!j) fail_msg("bad test JSON: %s: %s", jerr.text, text);
  return j;
}

static ProtobufCMessage *from_text(const ProtobufCMessageDescriptor *desc, const char *text) {
  json_t *j = parse(text);
  ProtobufCMessage *msg = NULL;
  ch_error err;
  if (ch_pb_from_json(desc, j, &msg, &err) < 0) fail_msg("from_json: %s", err.msg);
  json_decref(j);
  return msg;
}

/* Expects conversion to fail with exactly this message. */
static void expect_error(const ProtobufCMessageDescriptor *desc, const char *text,
                         const char *message) {
  json_t *j = parse(text);
  ProtobufCMessage *msg = (ProtobufCMessage *)1;
  ch_error err = {{0}};
  assert_int_equal(ch_pb_from_json(desc, j, &msg, &err), -1);
  assert_null(msg);
  assert_string_equal(err.msg, message);
  json_decref(j);
}

/* Packs and unpacks, so what is compared went through the wire format. */
static ProtobufCMessage *wire_round_trip(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len ? len : 1);
  protobuf_c_message_pack(msg, buf);
  ProtobufCMessage *copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
  free(buf);
  assert_non_null(copy);
  return copy;
}

static void assert_json_equal(json_t *got, const char *want_text) {
  json_t *want = parse(want_text);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
    fail_msg("JSON differs\n got: %s\nwant: %s", g, w);
  }
  json_decref(want);
}

/* JSON -> message -> wire -> message -> JSON gives `want`. */
static void check_round_trip(const ProtobufCMessageDescriptor *desc, const char *in,
                             const char *want) {
  ProtobufCMessage *msg = from_text(desc, in);
  ProtobufCMessage *copy = wire_round_trip(msg);
  json_t *out = ch_pb_to_json(copy);
  assert_json_equal(out, want);
  json_decref(out);
  protobuf_c_message_free_unpacked(copy, NULL);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static const char pod_json[] =
    "{\"metadata\": {\"name\": \"web\", \"uid\": \"u-1\", \"namespace\": \"default\", "
    "\"attempt\": 1},"
    " \"hostname\": \"web-host\", \"log_directory\": \"/tmp/logs\","
    " \"dns_config\": {\"servers\": [\"10.0.0.10\"], \"searches\": [\"svc.local\"]},"
    " \"port_mappings\": [{\"protocol\": \"UDP\", \"container_port\": 53, \"host_port\": 5353}],"
    " \"labels\": {\"app\": \"web\", \"tier\": \"front\"},"
    " \"annotations\": {\"a/b\": \"c\"},"
    " \"linux\": {\"cgroup_parent\": \"/kubepods\","
    "   \"security_context\": {\"namespace_options\": {\"network\": \"NODE\", \"pid\": 1}},"
    "   \"sysctls\": {\"net.ipv4.ip_forward\": \"1\"},"
    "   \"resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 1073741824,"
    "     \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 4194304}],"
    "     \"unified\": {\"memory.high\": \"max\"}}}}";

static void test_pod_config_round_trip(void **state) {
  (void)state;
  const char *want =
      "{\"metadata\": {\"name\": \"web\", \"uid\": \"u-1\", \"namespace\": \"default\", "
      "\"attempt\": 1},"
      " \"hostname\": \"web-host\", \"log_directory\": \"/tmp/logs\","
      " \"dns_config\": {\"servers\": [\"10.0.0.10\"], \"searches\": [\"svc.local\"]},"
      " \"port_mappings\": [{\"protocol\": \"UDP\", \"container_port\": 53, \"host_port\": 5353}],"
      " \"labels\": {\"app\": \"web\", \"tier\": \"front\"},"
      " \"annotations\": {\"a/b\": \"c\"},"
      " \"linux\": {\"cgroup_parent\": \"/kubepods\","
      "   \"security_context\": {\"namespace_options\": {\"network\": \"NODE\", \"pid\": "
      "\"CONTAINER\"}},"
      "   \"sysctls\": {\"net.ipv4.ip_forward\": \"1\"},"
      "   \"resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 1073741824,"
      "     \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 4194304}],"
      "     \"unified\": {\"memory.high\": \"max\"}}}}";
  check_round_trip(&runtime__v1__pod_sandbox_config__descriptor, pod_json, want);
}

static void test_typed_access(void **state) {
  (void)state;
  Runtime__V1__PodSandboxConfig *pod = (Runtime__V1__PodSandboxConfig *)from_text(
      &runtime__v1__pod_sandbox_config__descriptor, pod_json);
  assert_string_equal(pod->metadata->namespace_, "default");
  assert_int_equal(pod->metadata->attempt, 1);
  assert_int_equal(pod->n_labels, 2);
  assert_string_equal(pod->labels[0]->key, "app");
  assert_string_equal(pod->labels[0]->value, "web");
  assert_int_equal(pod->linux->security_context->namespace_options->network,
                   RUNTIME__V1__NAMESPACE_MODE__NODE);
  assert_int_equal(pod->linux->resources->hugepage_limits[0]->limit, 4194304);
  assert_int_equal(pod->port_mappings[0]->protocol, RUNTIME__V1__PROTOCOL__UDP);
  protobuf_c_message_free_unpacked(&pod->base, NULL);
}

static void test_camel_case_keys(void **state) {
  (void)state;
  check_round_trip(
      &runtime__v1__create_container_request__descriptor,
      "{\"podSandboxId\": \"p1\", \"config\": {\"logPath\": \"c.log\","
      " \"stdinOnce\": true, \"linux\": {\"resources\": {\"memorySwapLimitInBytes\": 5,"
      " \"hugepageLimits\": [{\"pageSize\": \"1GB\"}]}}},"
      " \"sandboxConfig\": {\"logDirectory\": \"/l\"}}",
      "{\"pod_sandbox_id\": \"p1\", \"config\": {\"log_path\": \"c.log\","
      " \"stdin_once\": true, \"linux\": {\"resources\": "
      "{\"memory_swap_limit_in_bytes\": 5,"
      " \"hugepage_limits\": [{\"page_size\": \"1GB\"}]}}},"
      " \"sandbox_config\": {\"log_directory\": \"/l\"}}");
  /* upstream's own camelCase names are printed as written and accept snake */
  check_round_trip(&runtime__v1__mount__descriptor,
                   "{\"uid_mappings\": [{\"host_id\": 1000, \"length\": 1}]}",
                   "{\"uidMappings\": [{\"host_id\": 1000, \"length\": 1}]}");
}

static void test_enums(void **state) {
  (void)state;
  check_round_trip(&runtime__v1__container_config__descriptor,
                   "{\"stop_signal\": 23, \"linux\": {\"security_context\": {\"seccomp\": "
                   "{\"profile_type\": \"Localhost\", \"localhost_ref\": \"/p.json\"}}}}",
                   "{\"stop_signal\": \"SIGTERM\", \"linux\": {\"security_context\": {\"seccomp\": "
                   "{\"profile_type\": \"Localhost\", \"localhost_ref\": \"/p.json\"}}}}");
  /* proto3 enums are open: an undeclared number survives, printed as number */
  check_round_trip(&runtime__v1__container_config__descriptor, "{\"stop_signal\": 99}",
                   "{\"stop_signal\": 99}");
  /* the zero value is the default and is omitted, as crictl does */
  check_round_trip(&runtime__v1__container_config__descriptor,
                   "{\"stop_signal\": \"RUNTIME_DEFAULT\"}", "{}");
  expect_error(&runtime__v1__container_config__descriptor, "{\"stop_signal\": \"SIGFOO\"}",
               "ContainerConfig.stop_signal: unknown Signal value \"SIGFOO\"");
  expect_error(&runtime__v1__container_config__descriptor, "{\"stop_signal\": true}",
               "ContainerConfig.stop_signal: expected an enum name or number, got boolean");
}

static void test_repeated_and_nested(void **state) {
  (void)state;
  check_round_trip(
      &runtime__v1__container_config__descriptor,
      "{\"metadata\": {\"name\": \"c\"}, \"image\": {\"image\": \"busybox\"},"
      " \"command\": [\"sh\", \"-c\"], \"args\": [\"sleep 1\"],"
      " \"envs\": [{\"key\": \"A\", \"value\": \"1\"}, {\"key\": \"B\", \"value\": \"\"}],"
      " \"mounts\": [{\"container_path\": \"/m\", \"host_path\": \"/h\", \"readonly\": true,"
      "   \"propagation\": \"PROPAGATION_BIDIRECTIONAL\"}],"
      " \"linux\": {\"security_context\": {\"supplemental_groups\": [1, 2, 3],"
      "   \"capabilities\": {\"add_capabilities\": [\"NET_ADMIN\"]},"
      "   \"run_as_user\": {}}}}",
      "{\"metadata\": {\"name\": \"c\"}, \"image\": {\"image\": \"busybox\"},"
      " \"command\": [\"sh\", \"-c\"], \"args\": [\"sleep 1\"],"
      " \"envs\": [{\"key\": \"A\", \"value\": \"1\"}, {\"key\": \"B\"}],"
      " \"mounts\": [{\"container_path\": \"/m\", \"host_path\": \"/h\", \"readonly\": "
      "true,"
      "   \"propagation\": \"PROPAGATION_BIDIRECTIONAL\"}],"
      " \"linux\": {\"security_context\": {\"supplemental_groups\": [1, 2, 3],"
      "   \"capabilities\": {\"add_capabilities\": [\"NET_ADMIN\"]},"
      "   \"run_as_user\": {}}}}");
  /* empty arrays and maps are the default: omitted */
  check_round_trip(&runtime__v1__container_config__descriptor,
                   "{\"command\": [], \"labels\": {}, \"metadata\": null}", "{}");
}

static void test_maps(void **state) {
  (void)state;
  Runtime__V1__ContainerFilter *f = (Runtime__V1__ContainerFilter *)from_text(
      &runtime__v1__container_filter__descriptor,
      "{\"label_selector\": {\"k1\": \"v1\", \"k2\": \"\"}, \"state\": {\"state\": "
      "\"CONTAINER_RUNNING\"}}");
  assert_int_equal(f->n_label_selector, 2);
  assert_string_equal(f->label_selector[1]->key, "k2");
  assert_string_equal(f->label_selector[1]->value, "");
  json_t *out = ch_pb_to_json(&f->base);
  /* a map value at its default is still printed: the key carries meaning */
  assert_json_equal(out,
                    "{\"label_selector\": {\"k1\": \"v1\", \"k2\": \"\"}, \"state\": {\"state\": "
                    "\"CONTAINER_RUNNING\"}}");
  json_decref(out);
  protobuf_c_message_free_unpacked(&f->base, NULL);
  expect_error(&runtime__v1__container_filter__descriptor, "{\"label_selector\": {\"k\": 1}}",
               "ContainerFilter.label_selector[\"k\"]: expected a string, got integer");
  expect_error(&runtime__v1__container_filter__descriptor, "{\"label_selector\": [\"k\"]}",
               "ContainerFilter.label_selector: expected an object, got array");
}

static void test_numbers(void **state) {
  (void)state;
  check_round_trip(&runtime__v1__linux_container_resources__descriptor,
                   "{\"cpu_period\": \"100000\", \"cpu_quota\": -1, \"oom_score_adj\": 1e3,"
                   " \"memory_limit_in_bytes\": 9223372036854775807}",
                   "{\"cpu_period\": 100000, \"cpu_quota\": -1, \"oom_score_adj\": 1000,"
                   " \"memory_limit_in_bytes\": 9223372036854775807}");
  /* uint64 above INT64_MAX cannot be a jansson integer: it is a string */
  check_round_trip(&runtime__v1__hugepage_limit__descriptor,
                   "{\"limit\": \"18446744073709551615\"}",
                   "{\"limit\": \"18446744073709551615\"}");
  check_round_trip(&runtime__v1__psi_data__descriptor, "{\"Avg10\": 1.5, \"Avg60\": \"NaN\"}",
                   "{\"Avg10\": 1.5, \"Avg60\": \"NaN\"}");
  expect_error(&runtime__v1__port_mapping__descriptor, "{\"host_port\": 4294967296}",
               "PortMapping.host_port: 4294967296 is out of range");
  expect_error(&runtime__v1__hugepage_limit__descriptor, "{\"limit\": -1}",
               "HugepageLimit.limit: -1 is out of range");
  expect_error(&runtime__v1__port_mapping__descriptor, "{\"host_port\": \"80x\"}",
               "PortMapping.host_port: \"80x\" is not an integer");
  expect_error(&runtime__v1__port_mapping__descriptor, "{\"host_port\": 1.5}",
               "PortMapping.host_port: 1.5 is not an integer in range");
}

static void test_bytes(void **state) {
  (void)state;
  /* text is printed as text, including a NUL; binary as base64 */
  check_round_trip(&runtime__v1__exec_sync_response__descriptor,
                   "{\"stdout\": \"hello\\n\\u0000x\", \"stderr\": {\"base64\": \"/wA=\"},"
                   " \"exit_code\": 3}",
                   "{\"stdout\": \"hello\\n\\u0000x\", \"stderr\": {\"base64\": \"/wA=\"},"
                   " \"exit_code\": 3}");
  Runtime__V1__ExecSyncResponse *r = (Runtime__V1__ExecSyncResponse *)from_text(
      &runtime__v1__exec_sync_response__descriptor, "{\"stderr\": {\"base64\": \"/wA\"}}");
  assert_int_equal(r->stderr.len, 2);
  assert_int_equal(r->stderr.data[0], 0xff);
  assert_int_equal(r->stderr.data[1], 0x00);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  expect_error(&runtime__v1__exec_sync_response__descriptor, "{\"stdout\": {\"base64\": \"@@\"}}",
               "ExecSyncResponse.stdout: invalid base64");
  expect_error(&runtime__v1__exec_sync_response__descriptor, "{\"stdout\": 5}",
               "ExecSyncResponse.stdout: expected a string or {\"base64\": ...}, got integer");
}

static void test_invalid_utf8_string_is_repaired(void **state) {
  (void)state;
  Runtime__V1__KeyValue kv = RUNTIME__V1__KEY_VALUE__INIT;
  kv.key = "K";
  kv.value =
      "a\xff"
      "b";
  json_t *out = ch_pb_to_json(&kv.base);
  assert_json_equal(out, "{\"key\": \"K\", \"value\": \"a\\ufffdb\"}");
  json_decref(out);
}

static void test_unknown_key(void **state) {
  (void)state;
  expect_error(&runtime__v1__pod_sandbox_config__descriptor, "{\"linux\": {\"foo\": 1}}",
               "PodSandboxConfig.linux: unknown field \"foo\"");
  expect_error(&runtime__v1__pod_sandbox_config__descriptor, "{\"bar\": 1}",
               "PodSandboxConfig: unknown field \"bar\"");
  expect_error(&runtime__v1__container_config__descriptor,
               "{\"envs\": [{\"key\": \"a\"}, {\"key\": \"b\", \"val\": \"x\"}]}",
               "ContainerConfig.envs[1]: unknown field \"val\"");
}

static void test_wrong_types(void **state) {
  (void)state;
  expect_error(&runtime__v1__container_config__descriptor, "{\"tty\": \"yes\"}",
               "ContainerConfig.tty: expected a boolean, got string");
  expect_error(&runtime__v1__container_config__descriptor, "{\"command\": \"sh\"}",
               "ContainerConfig.command: expected an array, got string");
  expect_error(&runtime__v1__container_config__descriptor, "{\"command\": [\"sh\", 1]}",
               "ContainerConfig.command[1]: expected a string, got integer");
  expect_error(&runtime__v1__container_config__descriptor, "{\"metadata\": [1]}",
               "ContainerConfig.metadata: expected an object, got array");
  expect_error(&runtime__v1__container_config__descriptor, "[1]",
               "ContainerConfig: expected an object, got array");
  expect_error(&runtime__v1__container_config__descriptor,
               "{\"log_path\": \"a\", \"logPath\": \"b\"}",
               "ContainerConfig: field \"log_path\" given twice");
}

static void test_defaults_omitted(void **state) {
  (void)state;
  Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
  json_t *out = ch_pb_to_json(&st.base);
  assert_json_equal(out, "{}");
  json_decref(out);
  Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
  st.metadata = &md;
  st.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
  st.created_at = 1700000000123456789;
  out = ch_pb_to_json(&st.base);
  assert_json_equal(out,
                    "{\"metadata\": {}, \"state\": \"CONTAINER_EXITED\","
                    " \"created_at\": 1700000000123456789}");
  json_decref(out);
}

/* No JSON at all (NULL) or JSON null gives an empty message. */
static void test_null_json_is_empty_message(void **state) {
  (void)state;
  ProtobufCMessage *msg = NULL;
  ch_error err;
  assert_int_equal(ch_pb_from_json(&runtime__v1__version_request__descriptor, NULL, &msg, &err), 0);
  assert_non_null(msg);
  assert_string_equal(((Runtime__V1__VersionRequest *)msg)->version, "");
  protobuf_c_message_free_unpacked(msg, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pod_config_round_trip),
      cmocka_unit_test(test_typed_access),
      cmocka_unit_test(test_camel_case_keys),
      cmocka_unit_test(test_enums),
      cmocka_unit_test(test_repeated_and_nested),
      cmocka_unit_test(test_maps),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_bytes),
      cmocka_unit_test(test_invalid_utf8_string_is_repaired),
      cmocka_unit_test(test_unknown_key),
      cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_defaults_omitted),
      cmocka_unit_test(test_null_json_is_empty_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
