/* self_probe.c: see self_probe.h. */
#include "self_probe.h"

#include <stdio.h>
#include <string.h>

#include "endpoint.h"
#include "grpc_util.h"

#define VERSION_V1 "/runtime.v1.RuntimeService/Version"

void ch_self_probe(const char *path, int timeout_ms, ch_probe_result *out, bool *connected) {
  memset(out, 0, sizeof *out);
  char target[CH_PATH_MAX + 8];
  snprintf(target, sizeof target, "unix:%s", path);
  grpc_channel *ch = ch_channel_open(target, NULL);
  grpc_metadata md = {.key = grpc_slice_from_static_string(CH_SELF_PROBE_KEY),
                      .value = grpc_slice_from_static_string("1")};
  ch_unary_result res;
  ch_error err;
  if (ch_unary_call(ch, VERSION_V1, "", 0, timeout_ms, &md, 1, &res, &err) != 0) {
    snprintf(out->why, sizeof out->why, "%s", err.msg);
  } else {
    out->answered = res.status == GRPC_STATUS_OK || res.status == GRPC_STATUS_UNIMPLEMENTED;
    if (out->answered)
      snprintf(out->why, sizeof out->why, "answered Version through the listen socket (%s)",
               ch_status_name(res.status));
    else
      snprintf(out->why, sizeof out->why, "Version through the listen socket: %s: %s",
               ch_status_name(res.status), res.details);
    ch_unary_result_clear(&res);
  }
  *connected = grpc_channel_check_connectivity_state(ch, 0) == GRPC_CHANNEL_READY;
  grpc_channel_destroy(ch);
}

bool ch_is_self_probe(const grpc_metadata_array *md) {
  static const size_t key_len = sizeof CH_SELF_PROBE_KEY - 1;
  for (size_t i = 0; i < md->count; i++) {
    const grpc_slice *key = &md->metadata[i].key;
    if (GRPC_SLICE_LENGTH(*key) == key_len &&
        memcmp(GRPC_SLICE_START_PTR(*key), CH_SELF_PROBE_KEY, key_len) == 0)
      return true;
  }
  return false;
}
