/* SPDX-License-Identifier: Apache-2.0 */
/* outcome.c: the one recording function of outcome.h. */
#include "outcome.h"

#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "stats.h"

const char *ch_hook_result_name(ch_hook_result result) {
  static const char *const names[] = {"ok", "error", "timeout", "bad_answer"};
  return (unsigned)result < CH_HOOK_RESULT_COUNT ? names[result] : "unknown";
}

static ch_trace_result trace_result(const ch_hook_outcome *o) {
  if (o->rejected) return CH_TRACE_HOOK_REJECTED;
  switch (o->result) {
    case CH_HOOK_OK:
      return CH_TRACE_HOOK_OK;
    case CH_HOOK_TIMEOUT:
      return CH_TRACE_HOOK_TIMEOUT;
    case CH_HOOK_BAD_ANSWER:
      return CH_TRACE_HOOK_BAD_ANSWER;
    default:
      return CH_TRACE_HOOK_ERROR;
  }
}

static void fill_trace(const ch_hook_outcome *o, ch_trace_hook *h) {
  *h = (ch_trace_hook){.hook = o->hook, .result = trace_result(o), .ms = o->seconds * 1e3};
  snprintf(h->plugin, sizeof h->plugin, "%s", o->plugin);
  snprintf(h->cause, sizeof h->cause, "%s", o->cause ? o->cause : "");
  size_t n = o->changes_len <= sizeof h->changes ? o->changes_len : 0;
  if (n) memcpy(h->changes, o->changes, n);
  h->change_count = n ? o->change_count : 0;
}

void ch_observe_hook(const ch_hook_outcome *o, ch_trace_hook *trace) {
  bool ok = o->result == CH_HOOK_OK;
  ch_metrics_hook_call(o->plugin, o->hook, o->result, o->rejected, o->seconds);
  ch_plugin_stats_record(o->plugin, ok, ok ? NULL : o->cause);
  if (trace) fill_trace(o, trace);
}
