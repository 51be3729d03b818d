/* SPDX-License-Identifier: Apache-2.0 */
/* test_views.c: the hook requests built over CRI requests (store/views.c),
 * fed requests shaped as kubelet 1.28 sends them: the image ID in
 * ImageSpec.image and the name the pod spec gave in user_specified_image
 * become container_image_id and container_image; older clients' requests
 * (a name in image only) keep working; a container rebuilt from a runtime
 * that kept only the ID gets the name its status reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "pbjson.h"
#include "views.h"

#define IMAGE_ID "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"

/* A CreateContainerRequest as kubelet 1.28 sends it (the parts views read). */
static const char *const kubelet_create =
    "{\"pod_sandbox_id\": \"p1\","
    " \"config\": {\"metadata\": {\"name\": \"app\", \"attempt\": 0},"
    "  \"image\": {\"image\": \"" IMAGE_ID
    "\", \"user_specified_image\": \"busybox:1.36\"},"
    "  \"labels\": {\"io.kubernetes.container.name\": \"app\","
    "   \"io.kubernetes.pod.name\": \"web\", \"io.kubernetes.pod.namespace\": \"default\","
    "   \"io.kubernetes.pod.uid\": \"0b6c0f43-8f0e-4c55-9a55-0d0f5d1b6a11\"},"
    "  \"annotations\": {\"io.kubernetes.container.hash\": \"6f5c1d2e\","
    "   \"io.kubernetes.container.restartCount\": \"0\"},"
    "  \"log_path\": \"app/0.log\"},"
    " \"sandbox_config\": {\"metadata\": {\"name\": \"web\", \"namespace\": \"default\","
    "  \"uid\": \"0b6c0f43-8f0e-4c55-9a55-0d0f5d1b6a11\"}}}";

static Runtime__V1__CreateContainerRequest *decode_create(const char *text) {
  json_t *doc = json_loads(text, 0, NULL);
  assert_non_null(doc);
  ProtobufCMessage *msg = NULL;
  ch_error err;
  if (ch_pb_from_json(&runtime__v1__create_container_request__descriptor, doc, &msg, &err) != 0)
    fail_msg("%s", err.msg);
  json_decref(doc);
  return (Runtime__V1__CreateContainerRequest *)msg;
}

static void test_kubelet_image_name_and_id(void **state) {
  (void)state;
  Runtime__V1__CreateContainerRequest *r = decode_create(kubelet_create);
  ch_container_view v;
  ch_container_view_of_create(&v, r, NULL, "");
  assert_string_equal(v.msg.container_image, "busybox:1.36");
  assert_string_equal(v.msg.container_image_id, IMAGE_ID);
  assert_string_equal(v.msg.pod_meta->namespace_, "default");
  assert_string_equal(v.msg.pod_meta->name, "web");
  runtime__v1__create_container_request__free_unpacked(r, NULL);
}

static void test_name_only_client(void **state) {
  (void)state;
  Runtime__V1__CreateContainerRequest *r =
      decode_create("{\"config\": {\"image\": {\"image\": \"busybox:1.36\"}}}");
  ch_container_view v;
  ch_container_view_of_create(&v, r, NULL, "c1");
  assert_string_equal(v.msg.container_image, "busybox:1.36");
  assert_string_equal(v.msg.container_image_id, "busybox:1.36");
  runtime__v1__create_container_request__free_unpacked(r, NULL);
}

/* The rebuild's case: containerd 1.6 keeps the config without
 * user_specified_image; its status names the image by its first tag. */
static void test_rebuilt_container_named_by_status(void **state) {
  (void)state;
  Runtime__V1__CreateContainerRequest *r =
      decode_create("{\"config\": {\"image\": {\"image\": \"" IMAGE_ID "\"}}}");
  Runtime__V1__ImageSpec status = RUNTIME__V1__IMAGE_SPEC__INIT;
  status.image = "docker.io/library/busybox:1.36";
  ch_container_view v;
  ch_container_view_of_create(&v, r, NULL, "c1");
  assert_string_equal(v.msg.container_image, IMAGE_ID);
  ch_container_view_name_image(&v, &status);
  assert_string_equal(v.msg.container_image, "docker.io/library/busybox:1.36");
  assert_string_equal(v.msg.container_image_id, IMAGE_ID);
  runtime__v1__create_container_request__free_unpacked(r, NULL);

  r = decode_create(kubelet_create); /* a runtime that kept the name: it stays */
  ch_container_view_of_create(&v, r, NULL, "c1");
  ch_container_view_name_image(&v, &status);
  assert_string_equal(v.msg.container_image, "busybox:1.36");
  status.image = IMAGE_ID; /* a status with no name: nothing better */
  ch_container_view_name_image(&v, &status);
  assert_string_equal(v.msg.container_image, "busybox:1.36");
  ch_container_view_name_image(&v, NULL);
  assert_string_equal(v.msg.container_image, "busybox:1.36");
  runtime__v1__create_container_request__free_unpacked(r, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kubelet_image_name_and_id),
      cmocka_unit_test(test_name_only_client),
      cmocka_unit_test(test_rebuilt_container_named_by_status),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
