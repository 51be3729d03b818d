/* SPDX-License-Identifier: Apache-2.0 */
/* admin_docs.c: the documents of admin_docs.h. */
#include "admin_docs.h"

#include "crihook-config.h"
#include "hooks.h"
#include "stats.h"

static json_t *hooks_json(unsigned hooks) {
  json_t *list = json_array();
  for (int h = 0; h < CH_HOOK_COUNT; h++)
    if (hooks & (1u << h)) json_array_append_new(list, json_string(ch_hook_name(h)));
  return list;
}

static json_t *plugin_json(const ch_plugin *p) {
  ch_plugin_stats stats;
  ch_plugin_stats_get(p->name, &stats);
  return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:I, s:I, s:s}", "name", p->name, "file",
                   p->file, "endpoint", p->endpoint.path, "failure_policy",
                   p->fail_closed ? "Fail" : "Ignore", "hooks", hooks_json(p->hooks), "order",
                   p->order, "timeout_ms", p->timeout_ms, "calls", (json_int_t)stats.calls,
                   "failures", (json_int_t)stats.failures, "last_error", stats.last_error);
}

json_t *ch_admin_plugins_json(ch_registry_slot *slot) {
  ch_registry *r = ch_registry_slot_acquire(slot);
  json_t *plugins = json_array(), *rejected = json_array();
  for (size_t i = 0; i < r->count; i++) json_array_append_new(plugins, plugin_json(&r->plugins[i]));
  for (size_t i = 0; i < r->error_count; i++)
    json_array_append_new(rejected, json_pack("{s:s, s:s}", "file", r->errors[i].file, "reason",
                                              r->errors[i].reason));
  json_t *doc = json_pack("{s:I, s:o, s:o}", "generation", (json_int_t)r->generation, "plugins",
                          plugins, "rejected", rejected);
  ch_registry_unref(r);
  return doc;
}

bool ch_admin_ready(const ch_health_report *report) {
  return report->listener.answered && report->probe.answered && report->store_rebuilt;
}

/* Why not ready, the first reason in the order a call meets them. */
static const char *not_ready_reason(const ch_health_report *r) {
  if (!r->probe.answered && !r->listener.answered)
    return "neither the listen socket nor the backend answers a CRI call";
  if (!r->listener.answered) return "the listen socket does not answer a CRI call";
  if (!r->probe.answered) return "the backend does not answer";
  if (!r->store_rebuilt) return "the store is not rebuilt yet";
  return "";
}

json_t *ch_admin_healthz_json(const ch_health_report *report) {
  json_t *doc = json_pack("{s:b, s:s, s:s, s:s}", "ready", ch_admin_ready(report), "listener",
                          report->listener.why, "backend", report->probe.why, "store",
                          report->store_rebuilt ? "rebuilt" : "not rebuilt yet (retrying)");
  if (doc && !ch_admin_ready(report))
    json_object_set_new(doc, "reason", json_string(not_ready_reason(report)));
  return doc;
}

static json_t *listener_json(const ch_admin_view *v, const ch_health_report *r) {
  return json_pack("{s:s, s:b, s:s}", "path", v->listen, "answers", r->listener.answered != 0,
                   "detail", r->listener.why);
}

static json_t *backend_json(const ch_admin_view *v, const ch_health_report *r) {
  return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:b, s:I}", "path", v->backend->path,
                   "image_path", v->backend->image_path, "chosen_by", v->backend->chosen_by,
                   "answers", r->probe.answered != 0, "detail", r->probe.why, "runtime_name",
                   r->probe.runtime_name, "runtime_version", r->probe.runtime_version, "cri_api",
                   r->probe.api, "connected", r->connected, "connects", (json_int_t)r->connects);
}

json_t *ch_admin_status_json(const ch_admin_view *v, const ch_health_report *r) {
  json_t *store = json_pack("{s:b, s:I, s:I}", "rebuilt", r->store_rebuilt, "pods",
                            (json_int_t)ch_store_pod_count(v->store), "containers",
                            (json_int_t)ch_store_container_count(v->store));
  json_t *doc =
      json_pack("{s:s, s:f, s:b, s:s, s:o, s:i, s:o, s:o, s:o}", "version", CRIHOOK_VERSION,
                "uptime_seconds", r->uptime_s, "ready", ch_admin_ready(r), "listen", v->listen,
                "listener", listener_json(v, r), "in_flight", v->in_flight, "backend",
                backend_json(v, r), "store", store, "plugins", ch_admin_plugins_json(v->registry));
  if (doc && !ch_admin_ready(r))
    json_object_set_new(doc, "not_ready_reason", json_string(not_ready_reason(r)));
  return doc;
}
