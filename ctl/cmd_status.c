/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_status.c: `crihookctl status [--json] [--expect-version V]`: what
 * crihookd is doing, from GET /status on its admin socket
 * (admin/admin_docs.h): ready or not and why, the backend and how it was
 * chosen, versions, uptime, calls in flight, the store, and each plugin's
 * state. Exits 1 when not ready, so scripts can wait on it; with
 * --expect-version also when the crihookd answering is another version (the
 * DaemonSet's readiness check: the old crihookd must not make a new pod
 * Ready, deploy/README.md). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char *str(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s && *s ? s : "-";
}

static long long num(const json_t *obj, const char *key) {
  return json_integer_value(json_object_get(obj, key));
}

static bool yes(const json_t *obj, const char *key) {
  return json_is_true(json_object_get(obj, key));
}

static void print_uptime(double s) {
  long long t = (long long)s;
  printf("%-10s %lldd %02lldh %02lldm %02llds\n", "uptime:", t / 86400, t / 3600 % 24, t / 60 % 60,
         t % 60);
}

static void print_backend(const json_t *b) {
  printf("%-10s %s (%s)\n", "backend:", str(b, "path"), str(b, "chosen_by"));
  if (strcmp(str(b, "image_path"), str(b, "path")) != 0)
    printf("%-10s %s\n", "images:", str(b, "image_path"));
  printf("%-10s %s %s, CRI %s; %s; connection %s, connected %lld time(s)\n",
         "runtime:", str(b, "runtime_name"), str(b, "runtime_version"), str(b, "cri_api"),
         yes(b, "answers") ? "answers" : "DOES NOT ANSWER", yes(b, "connected") ? "up" : "down",
         num(b, "connects"));
  if (!yes(b, "answers")) printf("%-10s %s\n", "", str(b, "detail"));
}

static void print_plugins(const json_t *doc) {
  const json_t *plugins = json_object_get(doc, "plugins");
  size_t i;
  json_t *p;
  printf("%-10s %zu registered, %zu file(s) rejected, registry generation %lld\n",
         "plugins:", json_array_size(json_object_get(plugins, "plugins")),
         json_array_size(json_object_get(plugins, "rejected")), num(plugins, "generation"));
  json_array_foreach(json_object_get(plugins, "plugins"), i, p) {
    const char *last = str(p, "last_error");
    printf("  %-20s %-6s calls=%lld failures=%lld %s%s\n", str(p, "name"), str(p, "failure_policy"),
           num(p, "calls"), num(p, "failures"), strcmp(last, "-") ? "last error: " : "",
           strcmp(last, "-") ? last : "");
  }
  json_array_foreach(json_object_get(plugins, "rejected"), i, p)
      printf("  rejected %s: %s\n", str(p, "file"), str(p, "reason"));
}

static void print_status(const json_t *doc) {
  const json_t *store = json_object_get(doc, "store");
  printf("%-10s %s\n", "crihookd:", str(doc, "version"));
  if (yes(doc, "ready"))
    printf("%-10s %s\n", "ready:", "yes");
  else
    printf("%-10s NO: %s\n", "ready:", str(doc, "not_ready_reason"));
  const json_t *listener = json_object_get(doc, "listener");
  printf("%-10s %s (%s)\n", "listen:", str(doc, "listen"),
         yes(listener, "answers") ? "answers a CRI call" : str(listener, "detail"));
  print_uptime(json_number_value(json_object_get(doc, "uptime_seconds")));
  print_backend(json_object_get(doc, "backend"));
  printf("%-10s %lld pods, %lld containers%s\n", "store:", num(store, "pods"),
         num(store, "containers"), yes(store, "rebuilt") ? "" : " (not rebuilt yet: retrying)");
  printf("%-10s %lld\n", "in flight:", num(doc, "in_flight"));
  print_plugins(doc);
}

int ctl_cmd_status(ctl_ctx *ctx, int argc, char **argv) {
  bool json = false;
  const char *expect = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (strcmp(argv[i], "--expect-version") == 0 && i + 1 < argc && argv[i + 1][0])
      expect = argv[++i];
    else
      return ctl_usage("status");
  }
  ch_error err;
  json_t *doc;
  if (ctl_admin_get(ctx->admin, "/status", &doc, &err) != 0) return ctl_fail("%s", err.msg);
  if (json)
    ctl_print_json(doc, false);
  else
    print_status(doc);
  int rc = yes(doc, "ready") ? CTL_EXIT_OK : CTL_EXIT_FAIL;
  if (expect && strcmp(str(doc, "version"), expect) != 0)
    rc = ctl_fail("crihookd %s answers, not the expected version %s", str(doc, "version"), expect);
  json_decref(doc);
  return rc;
}
