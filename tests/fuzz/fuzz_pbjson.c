/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_pbjson.c: libFuzzer target for the runtime-JSON reader (api/pbjson.c,
 * JSON -> message).
 *
 * Input: a JSON document as a runtime hands it over: containerd's verbose
 * status info (info["info"]), whose "config" member the store rebuild reads
 * leniently as a PodSandboxConfig or ContainerConfig (store/rebuild.c), or a
 * config file as crihookctl reads it strictly. Every message built must
 * pack into bytes that decode, and convert back to JSON; what the strict
 * reader accepts, it must accept again from its own output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cri.pb-c.h"
#include "hook.pb-c.h"
#include "kubelet.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &runtime__v1__pod_sandbox_config__descriptor,
    &runtime__v1__container_config__descriptor,
    &runtime__v1__linux_container_resources__descriptor,
    &runtime__v1alpha1__container_resource_hook_response__descriptor,
};

/* JSON -> message -> JSON -> message: the second read must succeed. */
static void must_read_back(const ProtobufCMessage *msg) {
  json_t *again = ch_pb_to_json(msg);
  if (!again) return;
  ProtobufCMessage *back = NULL;
  ch_error err;
  if (ch_pb_from_json(msg->descriptor, again, &back, &err) != 0) {
    char *text = json_dumps(again, JSON_COMPACT);
    fprintf(stderr, "%s: its own JSON does not read back: %s\n%s\n", msg->descriptor->name, err.msg,
            text ? text : "");
    abort();
  }
  protobuf_c_message_free_unpacked(back, NULL);
  json_decref(again);
}

static void read_as(const ProtobufCMessageDescriptor *desc, const json_t *doc, int lenient) {
  ProtobufCMessage *msg = NULL;
  ch_error err;
  int rc = lenient ? ch_pb_from_json_lenient(desc, doc, &msg, &err)
                   : ch_pb_from_json(desc, doc, &msg, &err);
  if (rc != 0) {
    if (msg) {
      fprintf(stderr, "%s: failed but returned a message\n", desc->name);
      abort();
    }
    return;
  }
  must_round_trip(msg, desc, "message read from JSON");
  must_read_back(msg);
  protobuf_c_message_free_unpacked(msg, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
  if (!doc) return 0;
  const json_t *config = json_object_get(doc, "config"); /* the rebuild's path */
  if (json_is_object(config)) {
    read_as(&runtime__v1__pod_sandbox_config__descriptor, config, 1);
    read_as(&runtime__v1__container_config__descriptor, config, 1);
  }
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    read_as(types[i], doc, 0);
    read_as(types[i], doc, 1);
  }
  json_decref(doc);
  return 0;
}
