/* SPDX-License-Identifier: Apache-2.0 */
/* test_hook_table.c: the three places that name a hook point agree — the
 * hook table (registry/hooks.c), the wire API (api/hook.proto's
 * RuntimeHookService, through the service descriptor protoc-c generates)
 * and the intercept table (dispatcher/intercept_rows.h) — and each row's
 * method is a CRI RuntimeService method with that request type. A hook
 * point added to one place and not the others fails here. */
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

#include "cri.pb-c.h"
#include "hook.pb-c.h"
#include "hooks.h"
#include "intercept_rows.h"

static const ProtobufCServiceDescriptor *const HOOK_SERVICE =
    &runtime__v1alpha1__runtime_hook_service__descriptor;

/* The method descriptor of a hook point's wire path "/service/Method". */
static const ProtobufCMethodDescriptor *hook_rpc(ch_hook_point h) {
  const char *path = ch_hook_method(h);
  size_t service_len = strlen(HOOK_SERVICE->name);
  if (path[0] != '/' || strncmp(path + 1, HOOK_SERVICE->name, service_len) != 0 ||
      path[1 + service_len] != '/')
    fail_msg("%s: method path %s is not on service %s", ch_hook_name(h), path, HOOK_SERVICE->name);
  return protobuf_c_service_descriptor_get_method_by_name(HOOK_SERVICE, path + 2 + service_len);
}

/* Every hook point is an rpc of api/hook.proto with the request and answer
 * types its level says, named after it ("PreRunPodSandbox" ->
 * "PreRunPodSandboxHook"), and parses back from its name. */
static void hook_points_are_rpcs_of_the_proto(void **state) {
  (void)state;
  for (int i = 0; i < CH_HOOK_COUNT; i++) {
    ch_hook_point h = (ch_hook_point)i;
    const ProtobufCMethodDescriptor *rpc = hook_rpc(h);
    if (!rpc) fail_msg("%s: %s is not an rpc of hook.proto", ch_hook_name(h), ch_hook_method(h));
    char want[96];
    snprintf(want, sizeof want, "%sHook", ch_hook_name(h));
    assert_string_equal(rpc->name, want);
    bool pod = ch_hook_is_pod_level(h);
    assert_ptr_equal(rpc->input,
                     pod ? &runtime__v1alpha1__pod_sandbox_hook_request__descriptor
                         : &runtime__v1alpha1__container_resource_hook_request__descriptor);
    assert_ptr_equal(rpc->output,
                     pod ? &runtime__v1alpha1__pod_sandbox_hook_response__descriptor
                         : &runtime__v1alpha1__container_resource_hook_response__descriptor);
    assert_int_equal(ch_hook_is_pre(h), strncmp(ch_hook_name(h), "Pre", 3) == 0);
    ch_hook_point parsed = CH_HOOK_COUNT;
    assert_int_equal(ch_hook_parse(ch_hook_name(h), &parsed), 0);
    assert_int_equal(parsed, h);
  }
}

/* ... and every rpc of the service is a hook point. */
static void every_rpc_is_a_hook_point(void **state) {
  (void)state;
  assert_int_equal(HOOK_SERVICE->n_methods, CH_HOOK_COUNT);
  for (unsigned m = 0; m < HOOK_SERVICE->n_methods; m++) {
    bool found = false;
    for (int i = 0; i < CH_HOOK_COUNT; i++)
      found |= hook_rpc((ch_hook_point)i) == &HOOK_SERVICE->methods[m];
    if (!found) fail_msg("rpc %s of hook.proto has no hook point", HOOK_SERVICE->methods[m].name);
  }
}

/* The row that lists hook point h, and whether it lists it once. */
static const ch_intercept_row *row_of(ch_hook_point h, int *times) {
  const ch_intercept_row *found = NULL;
  *times = 0;
  for (size_t i = 0; i < ch_intercept_row_count(); i++) {
    const ch_intercept_row *row = ch_intercept_row_at(i);
    if (row->pre == h || row->post == h) found = row, ++*times;
  }
  return found;
}

/* Every hook point is listed by exactly one intercept row, as Pre or Post
 * as its name says, on a method of its level ("PreRunPodSandbox" on
 * "RunPodSandbox"). */
static void every_hook_point_has_one_row(void **state) {
  (void)state;
  for (int i = 0; i < CH_HOOK_COUNT; i++) {
    ch_hook_point h = (ch_hook_point)i;
    int times;
    const ch_intercept_row *row = row_of(h, &times);
    if (times != 1) fail_msg("%s is listed by %d intercept rows", ch_hook_name(h), times);
    assert_int_equal(ch_hook_is_pre(h) ? row->pre : row->post, h);
    const char *name = ch_hook_name(h) + (ch_hook_is_pre(h) ? 3 : 4); /* "Pre" / "Post" */
    assert_string_equal(name, row->method);
    assert_int_equal(ch_hook_is_pod_level(h), row->pod_level);
  }
}

/* Every row: its hooks are in the hook table with the right phase, its
 * method is a CRI RuntimeService rpc taking its request type,
 * ch_intercept_kind_of finds it, the fields it names exist, and it has the
 * functions every phase calls. */
static void every_row_is_consistent(void **state) {
  (void)state;
  assert_true(ch_intercept_row_count() > 0);
  for (size_t i = 0; i < ch_intercept_row_count(); i++) {
    const ch_intercept_row *row = ch_intercept_row_at(i);
    if (row->pre != CH_NO_HOOK) {
      assert_true(row->pre < CH_HOOK_COUNT);
      assert_true(ch_hook_is_pre(row->pre));
    }
    if (row->post != CH_NO_HOOK) {
      assert_true(row->post < CH_HOOK_COUNT);
      assert_false(ch_hook_is_pre(row->post));
    }
    const ProtobufCMethodDescriptor *rpc = protobuf_c_service_descriptor_get_method_by_name(
        &runtime__v1__runtime_service__descriptor, row->method);
    if (!rpc) fail_msg("row %s is not a CRI RuntimeService method", row->method);
    assert_ptr_equal(rpc->input, row->request);
    assert_ptr_equal(ch_intercept_kind_of(row->method, strlen(row->method)), row);
    if (row->id_field) {
      const ProtobufCFieldDescriptor *f =
          protobuf_c_message_descriptor_get_field_by_name(row->request, row->id_field);
      if (!f || f->type != PROTOBUF_C_TYPE_STRING)
        fail_msg("row %s: no string field %s", row->method, row->id_field);
    }
    const ch_intercept_fallback *u = &row->undecoded;
    if (u->put_status) {
      assert_null(row->id_field); /* only rows that create something */
      assert_ptr_equal(rpc->output, u->created);
      const ProtobufCFieldDescriptor *f =
          protobuf_c_message_descriptor_get_field_by_name(u->created, u->created_field);
      if (!f || f->type != PROTOBUF_C_TYPE_STRING)
        fail_msg("row %s: no string field %s in its answer", row->method, u->created_field);
      assert_non_null(protobuf_c_service_descriptor_get_method_by_name(
          &runtime__v1__runtime_service__descriptor, u->status_method));
      assert_non_null(u->status_request);
    }
    if (u->forget) assert_non_null(row->id_field);
    assert_non_null(row->load);
    assert_non_null(row->build);
    assert_non_null(row->trace);
    assert_non_null(row->what);
  }
  assert_ptr_equal(ch_intercept_kind_of("Version", 7), CH_INTERCEPT_NONE);
  assert_ptr_equal(ch_intercept_kind_of("RunPodSandboxX", 14), CH_INTERCEPT_NONE);
  assert_ptr_equal(ch_intercept_kind_of("RunPodSandbox", 12), CH_INTERCEPT_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hook_points_are_rpcs_of_the_proto),
      cmocka_unit_test(every_rpc_is_a_hook_point),
      cmocka_unit_test(every_hook_point_has_one_row),
      cmocka_unit_test(every_row_is_consistent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
