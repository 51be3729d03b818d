/* SPDX-License-Identifier: Apache-2.0 */
/* self_probe.c: see self_probe.h. The call is made with the one CRI client
 * (cri/cri_client.h), in runtime.v1: it goes through crihookd, which
 * relays any package. */
#include "self_probe.h"

#include <stdio.h>
#include <string.h>

#include "cri_client.h"
#include "endpoint.h"

/* Version over runtime.v1 through the CRI client, marked as the probe. */
void ch_self_probe(const char *path, int timeout_ms, ch_probe_result *out, bool *connected) {
  memset(out, 0, sizeof *out);
  static const ch_rpc_header md = {.name = CH_SELF_PROBE_KEY, .value = "1"};
  ch_error err;
  cri_client *c = cri_client_open(path, CRI_PACKAGE_V1, timeout_ms, &err);
  if (!c) {
    snprintf(out->why, sizeof out->why, "%s", err.msg);
    *connected = false;
    return;
  }
  cri_client_set_metadata(c, &md, 1);
  ProtobufCMessage *answer = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  char details[256];
  if (cri_call(c, "Version", NULL, &answer, &status, details, sizeof details, &err) == 0 ||
      status == GRPC_STATUS_UNIMPLEMENTED) {
    out->answered = 1;
    snprintf(out->why, sizeof out->why, "answered Version through the listen socket (%s)",
             ch_status_name(status));
  } else if (status == GRPC_STATUS_UNKNOWN && !details[0]) { /* no call was made */
    snprintf(out->why, sizeof out->why, "%s", err.msg);
  } else {
    snprintf(out->why, sizeof out->why, "Version through the listen socket: %s: %s",
             ch_status_name(status), details);
  }
  protobuf_c_message_free_unpacked(answer, NULL);
  *connected = cri_client_connected(c);
  cri_client_free(c);
}
