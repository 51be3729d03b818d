/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_runtime.c: runtime-wide commands: version, info. */
#include <stdio.h>

#include "cri.pb-c.h"
#include "ctl.h"

/* The API version the client speaks, as kubelet and crictl send it. */
#define CLIENT_API_VERSION "0.1.0"

int ctl_cmd_version(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 1) return ctl_usage(argv[0]);
  Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
  req.version = CLIENT_API_VERSION;
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "Version", &req, 0, &resp) < 0) return CTL_EXIT_FAIL;
  const Runtime__V1__VersionResponse *v = (Runtime__V1__VersionResponse *)resp;
  printf("Version:  %s\n", v->version);
  printf("RuntimeName:  %s\n", v->runtime_name);
  printf("RuntimeVersion:  %s\n", v->runtime_version);
  printf("RuntimeApiVersion:  %s\n", v->runtime_api_version);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}

/* Status with verbose: the conditions plus the runtime's info map, whose
 * values (JSON texts) are merged into the top level as crictl does. */
int ctl_cmd_info(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 1) return ctl_usage(argv[0]);
  Runtime__V1__StatusRequest req = RUNTIME__V1__STATUS_REQUEST__INIT;
  req.verbose = 1;
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "Status", &req, 0, &resp) < 0) return CTL_EXIT_FAIL;
  json_t *json = ctl_status_json(resp);
  ctl_print_json(json, false);
  json_decref(json);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}
