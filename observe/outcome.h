/* SPDX-License-Identifier: Apache-2.0 */
/* outcome.h: one hook call attempt, as observability sees it.
 *
 * The hook chain (dispatcher/dispatch.c) builds one ch_hook_outcome for
 * every plugin it tries, whether the call went out or failed before it
 * started, and hands it to ch_observe_hook, which updates the metrics
 * (metrics.h), the per-plugin stats (stats.h) and, when asked, the live
 * trace's entry (trace.h) from that one value. So the three cannot
 * disagree: a call is counted once, under one result, in all of them.
 *
 *   result       metrics label   stats          trace "result"
 *   ok           ok              call           ok
 *   error        error           call, failure  error    (rejected if `rejected`)
 *   timeout      timeout         call, failure  timeout  (rejected if `rejected`)
 *   bad_answer   bad_answer      call, failure  bad_answer (rejected if `rejected`)
 * `rejected` (a Pre hook failing under policy Fail: the CRI call refused)
 * is also counted in crihook_hook_rejections_total.
 *
 * observe/ knows plugins and hooks by name only (strings): it depends on
 * no other component. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "trace.h"

typedef enum ch_hook_result {
  CH_HOOK_OK,         /* answered; a Pre hook's answer applied */
  CH_HOOK_ERROR,      /* no answer: plugin absent or refusing, error status,
                         or the call could not be started */
  CH_HOOK_TIMEOUT,    /* its deadline passed */
  CH_HOOK_BAD_ANSWER, /* answered, but the answer was refused (bounds, value
                         rules, undecodable) or could not be applied */
  CH_HOOK_RESULT_COUNT
} ch_hook_result;

typedef struct ch_hook_outcome {
  const char *plugin;
  const char *hook; /* the hook point's name, a static string */
  ch_hook_result result;
  bool rejected;       /* the failure refused the CRI call (policy Fail) */
  double seconds;      /* 0 for a call that never started */
  const char *cause;   /* why it failed; "" (or NULL) if it did not */
  const char *changes; /* what the answer changed, entries separated by '\0' */
  size_t changes_len;
  unsigned change_count;
} ch_hook_outcome;

const char *ch_hook_result_name(ch_hook_result result);

/* Records the attempt in the metrics and the stats; if `trace` is not NULL
 * also fills it as the live trace's entry for this call. Thread-safe. */
void ch_observe_hook(const ch_hook_outcome *outcome, ch_trace_hook *trace);
