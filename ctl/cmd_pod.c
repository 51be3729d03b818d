/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_pod.c: pod sandbox commands: runp, stopp, rmp, pods, inspectp. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cri.pb-c.h"
#include "ctl.h"

int ctl_cmd_runp(ctl_ctx *ctx, int argc, char **argv) {
  static const struct option longs[] = {{"runtime", required_argument, NULL, 'r'},
                                        {NULL, 0, NULL, 0}};
  const char *handler = "";
  int opt;
  while ((opt = getopt_long(argc, argv, "+r:", longs, NULL)) != -1) {
    if (opt != 'r') return ctl_usage(argv[0]);
    handler = optarg;
  }
  if (argc - optind != 1) return ctl_usage(argv[0]);
  ProtobufCMessage *config;
  if (ctl_load_message(argv[optind], &runtime__v1__pod_sandbox_config__descriptor, &config) < 0)
    return CTL_EXIT_FAIL;
  Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
  req.config = (Runtime__V1__PodSandboxConfig *)config;
  req.runtime_handler = (char *)handler;
  ProtobufCMessage *resp;
  int rc = ctl_call(ctx, "RunPodSandbox", &req, 0, &resp);
  protobuf_c_message_free_unpacked(config, NULL);
  if (rc < 0) return CTL_EXIT_FAIL;
  printf("%s\n", ((Runtime__V1__RunPodSandboxResponse *)resp)->pod_sandbox_id);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}

int ctl_cmd_stopp(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  Runtime__V1__StopPodSandboxRequest req = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
  req.pod_sandbox_id = argv[1];
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "StopPodSandbox", &req, 0, &resp) < 0) return CTL_EXIT_FAIL;
  protobuf_c_message_free_unpacked(resp, NULL);
  printf("%s\n", argv[1]);
  return CTL_EXIT_OK;
}

int ctl_cmd_rmp(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  Runtime__V1__RemovePodSandboxRequest req = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
  req.pod_sandbox_id = argv[1];
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "RemovePodSandbox", &req, 0, &resp) < 0) return CTL_EXIT_FAIL;
  protobuf_c_message_free_unpacked(resp, NULL);
  printf("%s\n", argv[1]);
  return CTL_EXIT_OK;
}

int ctl_cmd_inspectp(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
  req.pod_sandbox_id = argv[1];
  req.verbose = 1;
  return ctl_show_status(ctx, "PodSandboxStatus", &req.base);
}

static const char *pod_state_name(Runtime__V1__PodSandboxState state) {
  return state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY ? "Ready" : "NotReady";
}

static void pod_row(ctl_table *t, const Runtime__V1__PodSandbox *pod) {
  char id[16], created[64], attempt[16];
  ctl_short_id(pod->id, id, sizeof id);
  ctl_human_ago(pod->created_at, created, sizeof created);
  const Runtime__V1__PodSandboxMetadata *md = pod->metadata;
  snprintf(attempt, sizeof attempt, "%u", md ? md->attempt : 0);
  const char *handler = pod->runtime_handler[0] ? pod->runtime_handler : "(default)";
  const char *name = md ? md->name : "", *ns = md ? md->namespace_ : "";
  const char *cells[] = {id, created, pod_state_name(pod->state), name, ns, attempt, handler};
  ctl_table_add(t, cells);
}

static void print_pods(const Runtime__V1__ListPodSandboxResponse *resp, bool quiet) {
  if (quiet) {
    for (size_t i = 0; i < resp->n_items; i++) printf("%s\n", resp->items[i]->id);
    return;
  }
  static const char *const headers[] = {"POD ID",    "CREATED", "STATE",  "NAME",
                                        "NAMESPACE", "ATTEMPT", "RUNTIME"};
  ctl_table *t = ctl_table_new(7, headers);
  for (size_t i = 0; i < resp->n_items; i++) pod_row(t, resp->items[i]);
  ctl_table_print(t);
}

int ctl_cmd_pods(ctl_ctx *ctx, int argc, char **argv) {
  bool json = false, quiet = false;
  if (ctl_parse_list_options(argc, argv, &json, &quiet) != 0) return ctl_usage(argv[0]);
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "ListPodSandbox", NULL, 0, &resp) < 0) return CTL_EXIT_FAIL;
  if (json) {
    ctl_print_list_json(resp, "items");
  } else {
    print_pods((Runtime__V1__ListPodSandboxResponse *)resp, quiet);
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}
