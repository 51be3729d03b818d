/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_container.c: container commands: create, start, stop, rm, ps, inspect. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "ctl.h"

int ctl_cmd_create(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 4) return ctl_usage(argv[0]);
  ProtobufCMessage *config = NULL, *pod = NULL;
  if (ctl_load_message(argv[2], &runtime__v1__container_config__descriptor, &config) < 0 ||
      ctl_load_message(argv[3], &runtime__v1__pod_sandbox_config__descriptor, &pod) < 0) {
    if (config) protobuf_c_message_free_unpacked(config, NULL);
    return CTL_EXIT_FAIL;
  }
  Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
  req.pod_sandbox_id = argv[1];
  req.config = (Runtime__V1__ContainerConfig *)config;
  req.sandbox_config = (Runtime__V1__PodSandboxConfig *)pod;
  ProtobufCMessage *resp;
  int rc = ctl_call(ctx, "CreateContainer", &req, 0, &resp);
  protobuf_c_message_free_unpacked(config, NULL);
  protobuf_c_message_free_unpacked(pod, NULL);
  if (rc < 0) return CTL_EXIT_FAIL;
  printf("%s\n", ((Runtime__V1__CreateContainerResponse *)resp)->container_id);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}

/* Calls a method whose request is just { string container_id = 1; } and
 * prints the ID on success, as crictl does. */
static int call_with_id(ctl_ctx *ctx, const char *method, const char *id) {
  const ProtobufCMessageDescriptor *desc = cri_method_input(method);
  ProtobufCMessage *req = calloc(1, desc->sizeof_message);
  if (!req) return ctl_fail("out of memory");
  protobuf_c_message_init(desc, req);
  *(const char **)((char *)req + desc->fields[0].offset) = id;
  ProtobufCMessage *resp;
  int rc = ctl_call(ctx, method, req, 0, &resp);
  free(req);
  if (rc < 0) return CTL_EXIT_FAIL;
  protobuf_c_message_free_unpacked(resp, NULL);
  printf("%s\n", id);
  return CTL_EXIT_OK;
}

int ctl_cmd_start(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  return call_with_id(ctx, "StartContainer", argv[1]);
}

int ctl_cmd_rm(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  return call_with_id(ctx, "RemoveContainer", argv[1]);
}

int ctl_cmd_stop(ctl_ctx *ctx, int argc, char **argv) {
  static const struct option longs[] = {{"timeout", required_argument, NULL, 't'},
                                        {NULL, 0, NULL, 0}};
  long grace = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "+t:", longs, NULL)) != -1) {
    char *end;
    grace = opt == 't' ? strtol(optarg, &end, 10) : -1;
    if (opt != 't' || *end != '\0' || grace < 0 || grace > 86400) return ctl_usage(argv[0]);
  }
  if (argc - optind != 1) return ctl_usage(argv[0]);
  Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
  req.container_id = argv[optind];
  req.timeout = grace;
  ProtobufCMessage *resp;
  /* the runtime may wait the whole grace period: extend the deadline by it */
  if (ctl_call(ctx, "StopContainer", &req, (int)grace, &resp) < 0) return CTL_EXIT_FAIL;
  protobuf_c_message_free_unpacked(resp, NULL);
  printf("%s\n", argv[optind]);
  return CTL_EXIT_OK;
}

int ctl_cmd_inspect(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 2) return ctl_usage(argv[0]);
  Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
  req.container_id = argv[1];
  req.verbose = 1;
  return ctl_show_status(ctx, "ContainerStatus", &req.base);
}

/* ---- ps ------------------------------------------------------------------ */

typedef struct ps_opts {
  bool all, quiet, json;
  const char *pod;
} ps_opts;

static int parse_ps(int argc, char **argv, ps_opts *o) {
  enum { OPT_POD = 256 };
  static const struct option longs[] = {{"all", no_argument, NULL, 'a'},
                                        {"quiet", no_argument, NULL, 'q'},
                                        {"output", required_argument, NULL, 'o'},
                                        {"pod", required_argument, NULL, OPT_POD},
                                        {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "+aqo:p:", longs, NULL)) != -1) {
    if (opt == 'a')
      o->all = true;
    else if (opt == 'q')
      o->quiet = true;
    else if (opt == OPT_POD || opt == 'p')
      o->pod = optarg;
    else if (opt != 'o' || ctl_parse_output(optarg, &o->json) < 0)
      return -1;
  }
  return optind == argc ? 0 : -1;
}

static const char *container_state_name(Runtime__V1__ContainerState state) {
  switch (state) {
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
      return "Created";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
      return "Running";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
      return "Exited";
    default:
      return "Unknown";
  }
}

/* The POD column needs pod names: one ListPodSandbox, looked up linearly
 * (a node runs tens of pods). A failure leaves the column empty. */
static const char *pod_name(const Runtime__V1__ListPodSandboxResponse *pods, const char *id) {
  for (size_t i = 0; pods && i < pods->n_items; i++)
    if (strcmp(pods->items[i]->id, id) == 0 && pods->items[i]->metadata)
      return pods->items[i]->metadata->name;
  return "";
}

/* crictl shows the image reference, or the short ID when it is a digest. */
static void image_column(const Runtime__V1__Container *c, char *buf, size_t size) {
  const char *image = c->image ? c->image->image : "";
  if (strncmp(image, "sha256:", 7) == 0 && c->image->user_specified_image[0])
    image = c->image->user_specified_image;
  if (strncmp(image, "sha256:", 7) == 0)
    ctl_short_id(image, buf, size);
  else
    snprintf(buf, size, "%s", image);
}

static void container_row(ctl_table *t, const Runtime__V1__Container *c,
                          const Runtime__V1__ListPodSandboxResponse *pods) {
  char id[16], image[256], created[64], attempt[16], pod_id[16];
  ctl_short_id(c->id, id, sizeof id);
  image_column(c, image, sizeof image);
  ctl_human_ago(c->created_at, created, sizeof created);
  snprintf(attempt, sizeof attempt, "%u", c->metadata ? c->metadata->attempt : 0);
  ctl_short_id(c->pod_sandbox_id, pod_id, sizeof pod_id);
  const char *name = c->metadata ? c->metadata->name : "";
  const char *state = container_state_name(c->state), *pod = pod_name(pods, c->pod_sandbox_id);
  const char *cells[] = {id, image, created, state, name, attempt, pod_id, pod};
  ctl_table_add(t, cells);
}

static void print_containers(ctl_ctx *ctx, const Runtime__V1__ListContainersResponse *resp) {
  ProtobufCMessage *pods = NULL;
  if (resp->n_containers > 0) {
    ch_error err;
    if (cri_call(ctx->client, "ListPodSandbox", NULL, &pods, NULL, NULL, 0, &err) < 0) pods = NULL;
  }
  static const char *const headers[] = {"CONTAINER", "IMAGE",   "CREATED", "STATE",
                                        "NAME",      "ATTEMPT", "POD ID",  "POD"};
  ctl_table *t = ctl_table_new(8, headers);
  for (size_t i = 0; i < resp->n_containers; i++)
    container_row(t, resp->containers[i], (Runtime__V1__ListPodSandboxResponse *)pods);
  ctl_table_print(t);
  if (pods) protobuf_c_message_free_unpacked(pods, NULL);
}

int ctl_cmd_ps(ctl_ctx *ctx, int argc, char **argv) {
  ps_opts o = {0};
  if (parse_ps(argc, argv, &o) < 0) return ctl_usage(argv[0]);
  Runtime__V1__ContainerStateValue running = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
  running.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
  Runtime__V1__ContainerFilter filter = RUNTIME__V1__CONTAINER_FILTER__INIT;
  if (!o.all) filter.state = &running;
  if (o.pod) filter.pod_sandbox_id = (char *)o.pod;
  Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
  req.filter = &filter;
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "ListContainers", &req, 0, &resp) < 0) return CTL_EXIT_FAIL;
  const Runtime__V1__ListContainersResponse *list = (Runtime__V1__ListContainersResponse *)resp;
  if (o.json) {
    ctl_print_list_json(resp, "containers");
  } else if (o.quiet) {
    for (size_t i = 0; i < list->n_containers; i++) printf("%s\n", list->containers[i]->id);
  } else {
    print_containers(ctx, list);
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}
