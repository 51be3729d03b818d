/* SPDX-License-Identifier: Apache-2.0 */
/* watch_log.c: what a reload of hookserver.d changed, as log lines
 * (watch_log.h). This is the outer layer for plugin registration, so it is
 * where registration problems are logged; registry.c only records them. */
#include "watch_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define COMPONENT "plugins"

/* ---- plugins ---- */

static const ch_plugin *find_plugin(const ch_registry *r, const char *name) {
  for (size_t i = 0; i < r->count; i++)
    if (strcmp(r->plugins[i].name, name) == 0) return &r->plugins[i];
  return NULL;
}

static void hook_names(unsigned hooks, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int h = 0; h < CH_HOOK_COUNT && used < size; h++)
    if (hooks & (1u << h))
      used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                               ch_hook_name((ch_hook_point)h));
}

static void log_plugin(const char *what, const ch_plugin *p) {
  char hooks[512];
  hook_names(p->hooks, hooks, sizeof hooks);
  ch_info(COMPONENT, "plugin %s name=%s endpoint=%s policy=%s hooks=%s timeout_ms=%d file=%s", what,
          p->name, p->endpoint.path, p->fail_closed ? "Fail" : "Ignore", hooks, p->timeout_ms,
          p->file);
}

/* The call order of the plugins that stay never changes (it is their
 * names' order), so a shifted position is not a change worth a line. */
static bool plugin_changed(const ch_plugin *a, const ch_plugin *b) {
  return strcmp(a->endpoint.path, b->endpoint.path) != 0 || a->hooks != b->hooks ||
         a->fail_closed != b->fail_closed || a->timeout_ms != b->timeout_ms;
}

void ch_watch_log_plugins(const ch_registry *old, const ch_registry *now) {
  for (size_t i = 0; i < now->count; i++) {
    const ch_plugin *p = &now->plugins[i], *before = find_plugin(old, p->name);
    if (!before)
      log_plugin("added", p);
    else if (plugin_changed(before, p))
      log_plugin("changed", p);
  }
  for (size_t i = 0; i < old->count; i++)
    if (!find_plugin(now, old->plugins[i].name))
      ch_info(COMPONENT, "plugin removed name=%s file=%s", old->plugins[i].name,
              old->plugins[i].file);
}

/* ---- bad files ---- */

static bool same_state(const ch_plugin_file_error *a, const ch_plugin_file_error *b) {
  return strcmp(a->file, b->file) == 0 && strcmp(a->reason, b->reason) == 0 &&
         a->mtime_ns == b->mtime_ns && a->size == b->size;
}

static bool was_reported(const ch_reported_files *reported, const ch_plugin_file_error *e) {
  for (size_t i = 0; i < reported->count; i++)
    if (same_state(&reported->errors[i], e)) return true;
  return false;
}

static const ch_plugin *plugin_from(const ch_registry *r, const char *file) {
  for (size_t i = 0; i < r->count; i++)
    if (strcmp(r->plugins[i].file, file) == 0) return &r->plugins[i];
  return NULL;
}

static void remember(ch_reported_files *reported, const ch_registry *now) {
  ch_plugin_file_error *copy = NULL;
  if (now->error_count) {
    copy = malloc(now->error_count * sizeof *copy);
    if (!copy) return; /* keeps the old set: at worst a line is repeated */
    memcpy(copy, now->errors, now->error_count * sizeof *copy);
  }
  free(reported->errors);
  reported->errors = copy;
  reported->count = now->error_count;
}

void ch_watch_log_files(ch_reported_files *reported, const ch_registry *now) {
  for (size_t i = 0; i < now->error_count; i++)
    if (!was_reported(reported, &now->errors[i]))
      ch_warn(COMPONENT, "plugin file rejected file=%s reason=\"%s\"", now->errors[i].file,
              now->errors[i].reason);
  for (size_t i = 0; i < reported->count; i++) {
    const ch_plugin *p = plugin_from(now, reported->errors[i].file);
    if (p) ch_info(COMPONENT, "plugin file accepted file=%s name=%s", p->file, p->name);
  }
  remember(reported, now);
}

void ch_reported_files_clear(ch_reported_files *reported) {
  free(reported->errors);
  *reported = (ch_reported_files){0};
}
