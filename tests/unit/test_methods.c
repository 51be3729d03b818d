/* SPDX-License-Identifier: Apache-2.0 */
/* test_methods.c: method path classification (cri/methods.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "cri.pb-c.h"
#include "methods.h"

static ch_method_info classify(const char *path) { return ch_method_classify(path, strlen(path)); }

static void expect(const char *path, bool known_unary, bool image_service) {
  ch_method_info info = classify(path);
  if (info.known_unary != known_unary || info.image_service != image_service)
    fail_msg("%s: known_unary=%d image_service=%d, want %d %d", path, info.known_unary,
             info.image_service, known_unary, image_service);
}

static const char *const apis[] = {"v1", "v1alpha2"};

static void runtime_unary_both_apis(void **state) {
  (void)state;
  static const char *const names[] = {
      "Version",
      "RunPodSandbox",
      "StopPodSandbox",
      "RemovePodSandbox",
      "PodSandboxStatus",
      "ListPodSandbox",
      "CreateContainer",
      "StartContainer",
      "StopContainer",
      "RemoveContainer",
      "ListContainers",
      "ContainerStatus",
      "UpdateContainerResources",
      "ReopenContainerLog",
      "ExecSync",
      "Exec",
      "Attach",
      "PortForward",
      "ContainerStats",
      "ListContainerStats",
      "PodSandboxStats",
      "ListPodSandboxStats",
      "UpdateRuntimeConfig",
      "Status",
  };
  for (size_t a = 0; a < 2; a++) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      char path[128];
      snprintf(path, sizeof path, "/runtime.%s.RuntimeService/%s", apis[a], names[i]);
      expect(path, true, false);
    }
  }
}

static void image_service_both_apis(void **state) {
  (void)state;
  static const char *const names[] = {"ListImages", "ImageStatus", "PullImage", "RemoveImage",
                                      "ImageFsInfo"};
  for (size_t a = 0; a < 2; a++) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      char path[128];
      snprintf(path, sizeof path, "/runtime.%s.ImageService/%s", apis[a], names[i]);
      expect(path, true, true);
    }
    /* an ImageService method this build does not know: still routed to the
     * image backend, but not on the unary fast path */
    char path[128];
    snprintf(path, sizeof path, "/runtime.%s.ImageService/PullImageFaster", apis[a]);
    expect(path, false, true);
  }
}

/* Every method of the services in api/cri.proto, from the generated
 * descriptors: all are known unary except the streaming GetContainerEvents,
 * so a method added to the proto without updating methods.c shows here. */
static void matches_generated_descriptors(void **state) {
  (void)state;
  const ProtobufCServiceDescriptor *services[] = {&runtime__v1__runtime_service__descriptor,
                                                  &runtime__v1__image_service__descriptor};
  unsigned checked = 0;
  for (size_t s = 0; s < 2; s++) {
    const ProtobufCServiceDescriptor *d = services[s];
    bool image = strcmp(d->short_name, "ImageService") == 0;
    for (unsigned m = 0; m < d->n_methods; m++) {
      const char *name = d->methods[m].name;
      bool streaming = strcmp(name, "GetContainerEvents") == 0;
      for (size_t a = 0; a < 2; a++) {
        char path[160];
        snprintf(path, sizeof path, "/runtime.%s.%s/%s", apis[a], d->short_name, name);
        expect(path, !streaming, image);
        checked++;
      }
    }
  }
  assert_true(checked >= 2 * 30);
}

static void streaming_is_not_known_unary(void **state) {
  (void)state;
  expect("/runtime.v1.RuntimeService/GetContainerEvents", false, false);
  expect("/runtime.v1alpha2.RuntimeService/GetContainerEvents", false, false);
}

static void unknown_methods_and_other_services(void **state) {
  (void)state;
  expect("/runtime.v1.RuntimeService/FutureMethod", false, false);
  expect("/runtime.v1.RuntimeService/version", false, false);
  expect("/containerd.services.events.v1.Events/Subscribe", false, false);
  expect("/containerd.services.version.v1.Version/Version", false, false);
  expect("/grpc.health.v1.Health/Check", false, false);
  expect("/runtime.v2.RuntimeService/Version", false, false);
  expect("/runtime.v1.ImageServiceX/ListImages", false, false);
  expect("/runtime.v1.OtherService/Version", false, false);
  expect("", false, false);
  expect("/", false, false);
}

static void prefix_tricks(void **state) {
  (void)state;
  expect("/runtime.v1.RuntimeServiceX/Version", false, false);
  expect("/runtime.v1.RuntimeService/VersionX", false, false);
  expect("/runtime.v1.RuntimeService/Versio", false, false);
  expect("/runtime.v1.RuntimeService/", false, false);
  expect("/runtime.v1.RuntimeService", false, false);
  expect("/runtime.v1.Runtime", false, false);
  expect("/runtime.v1.ImageService/", false, false);
  expect("/runtime.v1.ImageService", false, false);
  expect("/runtime.v1alpha2.RuntimeService/", false, false);
  expect("/runtime.v1alpha.RuntimeService/Version", false, false);
  expect("/runtime.v1alpha23.RuntimeService/Version", false, false);
  expect("runtime.v1.RuntimeService/Version", false, false);
  expect("//runtime.v1.RuntimeService/Version", false, false);
  expect("/runtime.v1.RuntimeService//Version", false, false);
  expect("/runtime.v1.RuntimeService/Version/", false, false);
  expect("/runtime.v1.RuntimeService/Version\n", false, false);
  expect("/runtime.v1.ImageService/ListImagesX", false, true);
}

/* The length is what counts, not a terminating NUL: grpc slices are not
 * NUL-terminated. */
static void uses_length_not_nul(void **state) {
  (void)state;
  const char *buf = "/runtime.v1.RuntimeService/VersionTRAILING";
  size_t n = strlen("/runtime.v1.RuntimeService/Version");
  ch_method_info info = ch_method_classify(buf, n);
  assert_true(info.known_unary);
  assert_false(info.image_service);
  info = ch_method_classify(buf, n - 1);
  assert_false(info.known_unary);
  info = ch_method_classify(buf, strlen(buf));
  assert_false(info.known_unary);
  const char *img = "/runtime.v1.ImageService/ListImagesXYZ";
  info = ch_method_classify(img, strlen("/runtime.v1.ImageService/ListImages"));
  assert_true(info.known_unary);
  assert_true(info.image_service);
  info = ch_method_classify(img, 0);
  assert_false(info.known_unary);
  assert_false(info.image_service);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(runtime_unary_both_apis),
      cmocka_unit_test(image_service_both_apis),
      cmocka_unit_test(matches_generated_descriptors),
      cmocka_unit_test(streaming_is_not_known_unary),
      cmocka_unit_test(unknown_methods_and_other_services),
      cmocka_unit_test(prefix_tricks),
      cmocka_unit_test(uses_length_not_nul),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
