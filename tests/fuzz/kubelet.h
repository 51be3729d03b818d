/* SPDX-License-Identifier: Apache-2.0 */
/* kubelet.h: kubelet-shaped CRI requests for the fuzz targets, as JSON
 * (read with api/pbjson.c), so a hook answer is merged into what kubelet
 * really sends: kubelet's labels and annotations, the image ID in
 * image.image and its name in image.user_specified_image, the pod's cgroup
 * parent and resources. The same shapes are in tests/fuzz/make_seeds.py,
 * which writes the seed corpora. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "utf8.h"

#define KUBELET_POD_UID "8f6a4c3e-2b1d-4e5f-9a8b-7c6d5e4f3a2b"

static const char kubelet_pod_config[] =
    "{\"metadata\": {\"name\": \"web-7c5b9d\", \"uid\": \"" KUBELET_POD_UID
    "\","
    " \"namespace\": \"shop\", \"attempt\": 0},"
    " \"hostname\": \"web-7c5b9d\","
    " \"log_directory\": \"/var/log/pods/shop_web-7c5b9d_" KUBELET_POD_UID
    "\","
    " \"dns_config\": {\"servers\": [\"10.96.0.10\"], \"searches\": [\"shop.svc.cluster.local\","
    " \"svc.cluster.local\", \"cluster.local\"], \"options\": [\"ndots:5\"]},"
    " \"port_mappings\": [{\"protocol\": \"TCP\", \"container_port\": 8080}],"
    " \"labels\": {\"app\": \"web\", \"pod-template-hash\": \"7c5b9d\","
    " \"io.kubernetes.pod.name\": \"web-7c5b9d\", \"io.kubernetes.pod.namespace\": \"shop\","
    " \"io.kubernetes.pod.uid\": \"" KUBELET_POD_UID
    "\"},"
    " \"annotations\": {\"kubernetes.io/config.seen\": \"2024-05-02T10:11:12.345678901Z\","
    " \"kubernetes.io/config.source\": \"api\"},"
    " \"linux\": {\"cgroup_parent\": \"/kubepods/burstable/pod" KUBELET_POD_UID
    "\","
    " \"security_context\": {\"namespace_options\": {\"network\": \"POD\", \"pid\": \"CONTAINER\"},"
    " \"seccomp\": {\"profile_type\": \"RuntimeDefault\"}},"
    " \"overhead\": {},"
    " \"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000, \"cpu_shares\": 512,"
    " \"memory_limit_in_bytes\": 268435456}}}";

static const char kubelet_container_config[] =
    "{\"metadata\": {\"name\": \"web\", \"attempt\": 0},"
    " \"image\": {\"image\": "
    "\"sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6\","
    " \"user_specified_image\": \"docker.io/library/nginx:1.25\"},"
    " \"command\": [\"nginx\"], \"args\": [\"-g\", \"daemon off;\"],"
    " \"working_dir\": \"/usr/share/nginx\","
    " \"envs\": [{\"key\": \"KUBERNETES_SERVICE_HOST\", \"value\": \"10.96.0.1\"},"
    " {\"key\": \"KUBERNETES_SERVICE_PORT\", \"value\": \"443\"},"
    " {\"key\": \"GOMAXPROCS\", \"value\": \"1\"}],"
    " \"mounts\": [{\"container_path\": \"/var/run/secrets/kubernetes.io/serviceaccount\","
    " \"host_path\": \"/var/lib/kubelet/pods/" KUBELET_POD_UID
    "/volumes/kubernetes.io~projected/kube-api-access-x2v9q\", \"readonly\": true}],"
    " \"labels\": {\"io.kubernetes.container.name\": \"web\","
    " \"io.kubernetes.pod.name\": \"web-7c5b9d\", \"io.kubernetes.pod.namespace\": \"shop\","
    " \"io.kubernetes.pod.uid\": \"" KUBELET_POD_UID
    "\"},"
    " \"annotations\": {\"io.kubernetes.container.hash\": \"3d5e8a1f\","
    " \"io.kubernetes.container.restartCount\": \"0\","
    " \"io.kubernetes.container.terminationMessagePath\": \"/dev/termination-log\"},"
    " \"log_path\": \"web/0.log\","
    " \"linux\": {\"resources\": {\"cpu_period\": 100000, \"cpu_quota\": 50000,"
    " \"cpu_shares\": 512, \"memory_limit_in_bytes\": 268435456, \"oom_score_adj\": 968,"
    " \"hugepage_limits\": [{\"page_size\": \"2MB\", \"limit\": 0}],"
    " \"unified\": {\"memory.high\": \"201326592\"}},"
    " \"security_context\": {\"namespace_options\": {\"pid\": \"CONTAINER\"},"
    " \"run_as_user\": {\"value\": 101}, \"masked_paths\": [\"/proc/kcore\"],"
    " \"readonly_paths\": [\"/proc/sys\"]}}}";

static const char kubelet_update_request[] =
    "{\"container_id\": \"4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c\","
    " \"linux\": {\"cpu_period\": 100000, \"cpu_quota\": 80000, \"cpu_shares\": 819,"
    " \"memory_limit_in_bytes\": 536870912, \"hugepage_limits\": [{\"page_size\": \"2MB\"}]},"
    " \"annotations\": {\"io.kubernetes.container.hash\": \"3d5e8a1f\"}}";

/* The message of type `desc` that `json` describes; aborts if it does not
 * (the fixture is wrong, not the code under test). */
static inline ProtobufCMessage *kubelet_message(const ProtobufCMessageDescriptor *desc,
                                                const char *json) {
  json_error_t jerr;
  json_t *doc = json_loads(json, 0, &jerr);
  ProtobufCMessage *msg = NULL;
  ch_error err = {{0}};
  if (!doc || ch_pb_from_json(desc, doc, &msg, &err) != 0) {
    fprintf(stderr, "kubelet.h: bad fixture for %s: %s%s\n", desc->name, doc ? "" : jerr.text,
            err.msg);
    abort();
  }
  json_decref(doc);
  return msg;
}

/* Packs `msg` and unpacks the bytes as `desc`: what crihookd sends must
 * decode. Aborts (a finding) when it does not. */
/* True if `msg` packs into bytes that unpack again. A message protobuf-c
 * read can fail this by itself: it keeps an unknown field whose tag was an
 * overlong varint of 0 (bytes 80 00), then writes it as 00, which no decoder
 * (protobuf-c's or Go's, so not the runtime's) reads. */
static inline bool round_trips(const ProtobufCMessage *msg,
                               const ProtobufCMessageDescriptor *desc) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *bytes = malloc(len ? len : 1);
  if (!bytes) return false;
  protobuf_c_message_pack(msg, bytes);
  ProtobufCMessage *back = protobuf_c_message_unpack(desc, NULL, len, bytes);
  free(bytes);
  if (back) protobuf_c_message_free_unpacked(back, NULL);
  return back != NULL;
}

/* True if some string field of `msg` (nested messages and map entries
 * included) is not valid UTF-8. The CRI messages declare user data as bytes
 * (a client may send anything there); the hook API declares those fields as
 * string, so a view of such a request packs bytes that protobuf-c (and Go)
 * refuse to read back: the plugin then fails to read the request, and the
 * failure policy applies. */
static inline bool has_bad_utf8(const ProtobufCMessage *msg) {
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *at = (const char *)msg + f->offset;
    size_t n = 1;
    const void *const *items = (const void *const *)at;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      n = *(const size_t *)((const char *)msg + f->quantifier_offset);
      items = *(const void *const *const *)at;
    }
    for (size_t k = 0; k < n; k++) {
      const void *item = items[k];
      if (!item) continue;
      if (f->type == PROTOBUF_C_TYPE_MESSAGE && has_bad_utf8(item)) return true;
      if (f->type != PROTOBUF_C_TYPE_STRING) continue;
      const unsigned char *str = item;
      size_t len = strlen(item);
      for (size_t j = 0, step; j < len; j += step)
        if ((step = ch_utf8_sequence(str + j, len - j)) == 0) return true;
    }
  }
  return false;
}

static inline void must_round_trip(const ProtobufCMessage *msg,
                                   const ProtobufCMessageDescriptor *desc, const char *what) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *bytes = malloc(len ? len : 1);
  if (!bytes) return;
  if (protobuf_c_message_pack(msg, bytes) != len) {
    fprintf(stderr, "%s: packed size differs from get_packed_size\n", what);
    abort();
  }
  ProtobufCMessage *back = protobuf_c_message_unpack(desc, NULL, len, bytes);
  if (!back) {
    fprintf(stderr, "%s: packed %zu bytes that do not unpack as %s\n", what, len, desc->name);
    abort();
  }
  protobuf_c_message_free_unpacked(back, NULL);
  free(bytes);
}

/* must_round_trip() for a hook-request view, which may fail to read back
 * only because of has_bad_utf8(). */
static inline void view_must_round_trip(const ProtobufCMessage *msg,
                                        const ProtobufCMessageDescriptor *desc, const char *what) {
  if (!round_trips(msg, desc) && !has_bad_utf8(msg)) must_round_trip(msg, desc, what);
}
