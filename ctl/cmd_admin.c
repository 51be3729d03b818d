/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_admin.c: `crihookctl plugins` and `crihookctl store pods|containers`,
 * read from crihookd's admin socket (admin/admin.h, admin_client.c) rather
 * than the CRI socket, shown as a table or as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *str(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

static void join_strings(const json_t *array, char *buf, size_t size) {
  size_t used = 0, i;
  json_t *v;
  buf[0] = '\0';
  json_array_foreach(array, i, v) {
    used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s", i ? "," : "",
                             json_string_value(v));
  }
}

static void print_plugins(const json_t *doc) {
  static const char *const head[] = {"ORDER",    "NAME",  "POLICY",   "TIMEOUT",   "HOOKS",
                                     "ENDPOINT", "CALLS", "FAILURES", "LAST ERROR"};
  ctl_table *t = ctl_table_new(9, head);
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(doc, "plugins"), i, p) {
    char order[16], timeout[24], calls[24], failures[24], hooks[512];
    snprintf(order, sizeof order, "%lld", json_integer_value(json_object_get(p, "order")));
    snprintf(timeout, sizeof timeout, "%lldms",
             json_integer_value(json_object_get(p, "timeout_ms")));
    snprintf(calls, sizeof calls, "%lld", json_integer_value(json_object_get(p, "calls")));
    snprintf(failures, sizeof failures, "%lld", json_integer_value(json_object_get(p, "failures")));
    join_strings(json_object_get(p, "hooks"), hooks, sizeof hooks);
    const char *row[] = {order,   str(p, "name"), str(p, "failure_policy"),
                         timeout, hooks,          str(p, "endpoint"),
                         calls,   failures,       str(p, "last_error")};
    ctl_table_add(t, row);
  }
  ctl_table_print(t);
  const json_t *rejected = json_object_get(doc, "rejected");
  if (json_array_size(rejected) == 0) return;
  static const char *const rhead[] = {"REJECTED FILE", "REASON"};
  t = ctl_table_new(2, rhead);
  json_array_foreach(rejected, i, p) {
    const char *row[] = {str(p, "file"), str(p, "reason")};
    ctl_table_add(t, row);
  }
  printf("\n");
  ctl_table_print(t);
}

static void print_pods(const json_t *doc) {
  static const char *const head[] = {"POD ID", "NAMESPACE", "NAME", "CGROUP PARENT", "LABELS"};
  ctl_table *t = ctl_table_new(5, head);
  size_t i;
  json_t *e;
  json_array_foreach(doc, i, e) {
    const json_t *pod = json_object_get(e, "pod"), *meta = json_object_get(pod, "pod_meta");
    char id[16], labels[16];
    ctl_short_id(str(e, "id"), id, sizeof id);
    snprintf(labels, sizeof labels, "%zu", json_object_size(json_object_get(pod, "labels")));
    const char *row[] = {id, str(meta, "namespace"), str(meta, "name"), str(pod, "cgroup_parent"),
                         labels};
    ctl_table_add(t, row);
  }
  ctl_table_print(t);
}

static void print_containers(const json_t *doc) {
  static const char *const head[] = {"CONTAINER ID", "POD ID", "NAME", "ENVS", "ANNOTATIONS"};
  ctl_table *t = ctl_table_new(5, head);
  size_t i;
  json_t *e;
  json_array_foreach(doc, i, e) {
    const json_t *c = json_object_get(e, "container");
    char id[16], pod[16], envs[16], notes[16];
    ctl_short_id(str(e, "id"), id, sizeof id);
    ctl_short_id(str(e, "pod_id"), pod, sizeof pod);
    snprintf(envs, sizeof envs, "%zu", json_object_size(json_object_get(c, "container_envs")));
    snprintf(notes, sizeof notes, "%zu",
             json_object_size(json_object_get(c, "container_annotations")));
    const char *row[] = {id, pod, str(json_object_get(c, "container_meta"), "name"), envs, notes};
    ctl_table_add(t, row);
  }
  ctl_table_print(t);
}

static bool wants_json(int argc, char **argv, int from) {
  for (int i = from; i < argc; i++)
    if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-o=json") == 0) return true;
  return false;
}

static int show(ctl_ctx *ctx, const char *path, bool json, void (*table)(const json_t *)) {
  ch_error err;
  json_t *doc;
  if (ctl_admin_get(ctx->admin, path, &doc, &err) != 0) return ctl_fail("%s", err.msg);
  if (json)
    ctl_print_json(doc, false);
  else
    table(doc);
  json_decref(doc);
  return CTL_EXIT_OK;
}

int ctl_cmd_plugins(ctl_ctx *ctx, int argc, char **argv) {
  return show(ctx, "/plugins", wants_json(argc, argv, 1), print_plugins);
}

int ctl_cmd_store(ctl_ctx *ctx, int argc, char **argv) {
  if (argc < 2) return ctl_usage("store");
  bool json = wants_json(argc, argv, 2);
  if (strcmp(argv[1], "pods") == 0) return show(ctx, "/store/pods", json, print_pods);
  if (strcmp(argv[1], "containers") == 0)
    return show(ctx, "/store/containers", json, print_containers);
  return ctl_usage("store");
}
