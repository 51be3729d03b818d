/* SPDX-License-Identifier: Apache-2.0 */
/* plugin_parse.c: one registration file's JSON text into a ch_plugin
 * (ch_plugin_parse in registry.h).
 *
 * Each field has its own small reader that either fills its part of the
 * plugin or fails with the exact reason, worded for the operator who wrote
 * the file ("failure-policy must be Fail or Ignore, not 'fail'"). Keys the
 * project does not know are ignored, so files written for koordinator (or a
 * newer crihook) still load. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "registry.h"

#define MAX_TIMEOUT_MS 120000
#define SUFFIX ".json"

/* name = the file name without its ".json". */
static int take_name(const char *file_name, ch_plugin *out, ch_error *err) {
  size_t n = strlen(file_name), suffix = strlen(SUFFIX);
  if (n > suffix && strcmp(file_name + n - suffix, SUFFIX) == 0) n -= suffix;
  if (n == 0) return ch_fail(err, "empty file name");
  if (n >= sizeof out->name)
    return ch_fail(err, "file name longer than %zu bytes", sizeof out->name - 1);
  memcpy(out->name, file_name, n);
  out->name[n] = '\0';
  return 0;
}

static int take_endpoint(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *v = json_object_get(doc, "remote-endpoint");
  if (!v) return ch_fail(err, "remote-endpoint is missing");
  if (!json_is_string(v)) return ch_fail(err, "remote-endpoint must be a string");
  if (ch_endpoint_parse(json_string_value(v), &out->endpoint, err) != 0)
    return ch_wrap(err, "remote-endpoint");
  return 0;
}

/* Missing means Ignore: a plugin that is down must not block the node
 * unless its author asked for it. */
static int take_policy(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *v = json_object_get(doc, "failure-policy");
  out->fail_closed = false;
  if (!v) return 0;
  if (!json_is_string(v)) return ch_fail(err, "failure-policy must be a string");
  const char *s = json_string_value(v);
  if (strcmp(s, "Fail") == 0) {
    out->fail_closed = true;
    return 0;
  }
  if (strcmp(s, "Ignore") == 0) return 0;
  return ch_fail(err, "failure-policy must be Fail or Ignore, not '%s'", s);
}

static void known_hooks(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int h = 0; h < CH_HOOK_COUNT && used < size; h++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", h ? ", " : "",
                             ch_hook_name((ch_hook_point)h));
}

static int take_hook(const json_t *v, size_t index, ch_plugin *out, ch_error *err) {
  ch_hook_point hook;
  if (!json_is_string(v)) return ch_fail(err, "runtime-hooks[%zu] must be a string", index);
  if (ch_hook_parse(json_string_value(v), &hook) != 0) {
    char known[512];
    known_hooks(known, sizeof known);
    return ch_fail(err, "runtime-hooks: unknown hook '%s' (known: %s)", json_string_value(v),
                   known);
  }
  out->hooks |= 1u << hook;
  return 0;
}

/* A file that registers no hook is a mistake worth reporting, not a plugin
 * that silently does nothing. */
static int take_hooks(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *list = json_object_get(doc, "runtime-hooks");
  if (!list) return ch_fail(err, "runtime-hooks is missing: the file registers no hooks");
  if (!json_is_array(list)) return ch_fail(err, "runtime-hooks must be a list of hook names");
  if (json_array_size(list) == 0)
    return ch_fail(err, "runtime-hooks is empty: the file registers no hooks");
  size_t i;
  const json_t *v;
  json_array_foreach(list, i, v) {
    if (take_hook(v, i, out, err) != 0) return -1;
  }
  return 0;
}

static int take_timeout(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *v = json_object_get(doc, "timeout-ms");
  out->timeout_ms = CH_PLUGIN_DEFAULT_TIMEOUT_MS;
  if (!v) return 0;
  if (!json_is_integer(v)) return ch_fail(err, "timeout-ms must be an integer");
  json_int_t ms = json_integer_value(v);
  if (ms <= 0 || ms > MAX_TIMEOUT_MS)
    return ch_fail(err, "timeout-ms must be from 1 to %d, not %" JSON_INTEGER_FORMAT,
                   MAX_TIMEOUT_MS, ms);
  out->timeout_ms = (int)ms;
  return 0;
}

static int take_fields(const json_t *doc, ch_plugin *out, ch_error *err) {
  if (!json_is_object(doc)) return ch_fail(err, "must be a JSON object");
  if (take_endpoint(doc, out, err) != 0 || take_policy(doc, out, err) != 0 ||
      take_hooks(doc, out, err) != 0 || take_timeout(doc, out, err) != 0)
    return -1;
  return 0;
}

int ch_plugin_parse(const char *name, const char *text, size_t len, ch_plugin *out, ch_error *err) {
  memset(out, 0, sizeof *out);
  if (take_name(name, out, err) != 0) return -1;
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, 0, &jerr);
  if (!doc)
    return ch_fail(err, "not JSON: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
  int rc = take_fields(doc, out, err);
  json_decref(doc);
  return rc;
}
