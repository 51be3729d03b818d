/* SPDX-License-Identifier: Apache-2.0 */
/* dispatch.c: the hook-call chain of dispatch.h.
 *
 * Every chain with a call in flight is on its worker thread's list (a
 * thread-local list: a chain only ever runs on the worker that started it,
 * so no lock), so that a forced shutdown can cancel the hook calls, which
 * have no parent call for grpc_server_cancel_all_calls to reach. */
#include "dispatch.h"

#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_check.h"
#include "grpc_util.h"
#include "hook.pb-c.h"
#include "log.h"
#include "outcome.h"

static void call_next(ch_dispatch *d);
static void on_answer(ch_tag *t, bool ok);

#define SHUTDOWN_CAUSE "crihookd is shutting down: hook calls cancelled"

/* This worker's chains with a call in flight, and whether it has been told
 * to cancel them (then no new hook call starts on this thread). */
static _Thread_local ch_dispatch *in_flight_head;
static _Thread_local bool cancelling;

static void in_flight_add(ch_dispatch *d) {
  d->prev_in_flight = NULL;
  d->next_in_flight = in_flight_head;
  if (in_flight_head) in_flight_head->prev_in_flight = d;
  in_flight_head = d;
}

static void in_flight_remove(ch_dispatch *d) {
  if (d->prev_in_flight)
    d->prev_in_flight->next_in_flight = d->next_in_flight;
  else if (in_flight_head == d)
    in_flight_head = d->next_in_flight;
  if (d->next_in_flight) d->next_in_flight->prev_in_flight = d->prev_in_flight;
  d->next_in_flight = d->prev_in_flight = NULL;
}

int ch_dispatch_cancel_all(void) {
  int n = 0;
  cancelling = true;
  for (ch_dispatch *d = in_flight_head; d; d = d->next_in_flight, n++) {
    d->aborted = true;
    grpc_call_cancel_with_status(d->call, GRPC_STATUS_UNAVAILABLE, SHUTDOWN_CAUSE, NULL);
  }
  return n;
}

/* Stops the chain: the CRI call is refused (never forwarded past a plugin
 * that did not answer), whatever the plugins' policies. */
static void abort_chain(ch_dispatch *d) {
  d->aborted = true;
  d->rejected = true;
  d->reject_code = GRPC_STATUS_UNAVAILABLE;
  snprintf(d->reject_message, sizeof d->reject_message, "crihook: %s (%s)", SHUTDOWN_CAUSE,
           ch_hook_name(d->hook));
}

bool ch_dispatch_wanted(const ch_registry *registry, ch_hook_point hook) {
  return registry && registry->hook_count[hook] > 0;
}

void ch_dispatch_start(ch_dispatch *d, grpc_completion_queue *cq, const ch_registry *registry,
                       ch_hook_point hook, gpr_timespec deadline, const char *subject,
                       const ch_dispatch_ops *ops, void *ctx) {
  memset(d, 0, sizeof *d);
  d->tag.fn = on_answer;
  d->cq = cq;
  d->registry = registry;
  d->hook = hook;
  d->deadline = deadline;
  d->subject = subject ? subject : "";
  d->ops = ops;
  d->ctx = ctx;
  call_next(d);
}

static gpr_timespec plugin_deadline(const ch_dispatch *d, const ch_plugin *p) {
  gpr_timespec own = ch_deadline_ms(p->timeout_ms);
  gpr_timespec call = gpr_convert_clock_type(d->deadline, GPR_CLOCK_MONOTONIC);
  return gpr_time_cmp(own, call) < 0 ? own : call;
}

static void reset_call(ch_dispatch *d) {
  if (d->call) grpc_call_unref(d->call);
  if (d->request) grpc_byte_buffer_destroy(d->request);
  if (d->answer) grpc_byte_buffer_destroy(d->answer);
  grpc_metadata_array_destroy(&d->initial_md);
  grpc_metadata_array_destroy(&d->trailing_md);
  grpc_slice_unref(d->details);
  grpc_metadata_array_init(&d->initial_md); /* so a second reset is harmless */
  grpc_metadata_array_init(&d->trailing_md);
  d->details = grpc_empty_slice();
  d->call = NULL;
  d->request = d->answer = NULL;
}

/* Records a failed call; returns true if the chain must stop (Fail on Pre). */
static bool plugin_failed(ch_dispatch *d, grpc_status_code code, const char *cause) {
  const ch_plugin *p = d->plugin;
  bool reject = ch_hook_is_pre(d->hook) && p->fail_closed;
  if (reject) {
    d->rejected = true;
    d->reject_code = code == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : code;
    snprintf(d->reject_message, sizeof d->reject_message,
             "crihook: plugin %s failed on %s (failure-policy Fail): %s", p->name,
             ch_hook_name(d->hook), cause);
    ch_warn("dispatch", "hook rejected the call plugin=%s hook=%s %s cause=\"%s\"", p->name,
            ch_hook_name(d->hook), d->subject, cause);
  } else {
    ch_warn("dispatch", "hook failed, ignored plugin=%s hook=%s policy=%s %s cause=\"%s\"", p->name,
            ch_hook_name(d->hook), p->fail_closed ? "Fail" : "Ignore", d->subject, cause);
  }
  return reject;
}

/* Records the plugin's call attempt, once (observe/outcome.h): the metrics,
 * the stats and, while someone watches, the live trace (ops->traced) all
 * from this one value, with the changes its answer made (then forgets
 * them, for the next plugin). */
static void record(ch_dispatch *d, ch_hook_result result, double seconds, const char *cause) {
  ch_hook_outcome o = {.plugin = d->plugin->name,
                       .hook = ch_hook_name(d->hook),
                       .result = result,
                       .rejected = d->rejected,
                       .seconds = seconds,
                       .cause = cause,
                       .changes = d->trace.changes,
                       .changes_len = d->trace.changes_len,
                       .change_count = d->trace.change_count};
  bool traced = d->ops->traced && ch_trace_active();
  ch_trace_hook entry;
  ch_observe_hook(&o, traced ? &entry : NULL);
  if (traced) d->ops->traced(d->ctx, &entry);
  ch_merge_trace_clear_changes(&d->trace);
}

static void finish(ch_dispatch *d) {
  reset_call(d);
  d->ops->done(d->ctx);
}

/* A plugin that failed before its call was in flight. */
static bool failed_to_start(ch_dispatch *d, const char *cause) {
  bool stop = plugin_failed(d, GRPC_STATUS_INTERNAL, cause);
  record(d, CH_HOOK_ERROR, 0, cause);
  return !stop;
}

static bool start_call(ch_dispatch *d, const ch_plugin *p) {
  size_t len;
  uint8_t *bytes = d->ops->build(d->ctx, &len);
  if (!bytes) return failed_to_start(d, "cannot build the hook request");
  grpc_slice slice = grpc_slice_new(bytes, len, free);
  d->request = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  grpc_metadata_array_init(&d->initial_md);
  grpc_metadata_array_init(&d->trailing_md);
  d->details = grpc_empty_slice();
  d->call = grpc_channel_create_call(p->channel->channel, NULL, GRPC_PROPAGATE_DEFAULTS, d->cq,
                                     grpc_slice_from_static_string(ch_hook_method(d->hook)), NULL,
                                     plugin_deadline(d, p), NULL);
  grpc_op ops[6];
  ch_unary_client_ops(ops, NULL, 0, d->request, &d->initial_md, &d->answer, &d->status, &d->details,
                      &d->trailing_md);
  d->started = gpr_now(GPR_CLOCK_MONOTONIC);
  if (grpc_call_start_batch(d->call, ops, 6, &d->tag, NULL) == GRPC_CALL_OK) {
    in_flight_add(d);
    return true;
  }
  reset_call(d);
  return failed_to_start(d, "grpc refused the hook call");
}

/* Starts the next plugin's call, skipping (or stopping at) plugins that fail
 * before a call is in flight; ends the chain when none is left. */
static void call_next(ch_dispatch *d) {
  if (cancelling && !d->rejected && d->next < d->registry->hook_count[d->hook]) abort_chain(d);
  while (!d->rejected && d->next < d->registry->hook_count[d->hook]) {
    d->plugin = d->registry->by_hook[d->hook][d->next++];
    d->called++;
    if (start_call(d, d->plugin) && d->call) return; /* in flight: on_answer continues */
  }
  finish(d);
}

static const ProtobufCMessageDescriptor *answer_type(ch_hook_point hook) {
  return ch_hook_is_pod_level(hook)
             ? &runtime__v1alpha1__pod_sandbox_hook_response__descriptor
             : &runtime__v1alpha1__container_resource_hook_response__descriptor;
}

/* The answer decoded if it meets the bounds and rules of answer_check.h;
 * NULL with the cause in `cause` otherwise. The caller frees it. */
static ProtobufCMessage *decode_answer(const ch_dispatch *d, char *cause, size_t size) {
  size_t len = 0;
  uint8_t *bytes = d->answer ? ch_byte_buffer_flatten(d->answer, &len) : NULL;
  const uint8_t *data = bytes ? bytes : (const uint8_t *)"";
  const ProtobufCMessageDescriptor *type = answer_type(d->hook);
  ch_error err;
  ProtobufCMessage *answer = NULL;
  if (ch_answer_check_wire(type, data, len, &ch_answer_default_limits, &err) != 0) {
    snprintf(cause, size, "its answer is refused: %s", err.msg);
  } else if (!(answer = protobuf_c_message_unpack(type, NULL, len, data))) {
    snprintf(cause, size, "its answer is not a valid hook response");
  } else if (ch_answer_check_values(answer, &err) != 0) {
    snprintf(cause, size, "its answer is refused: %s", err.msg);
    protobuf_c_message_free_unpacked(answer, NULL);
    answer = NULL;
  }
  free(bytes);
  return answer;
}

/* Checks, decodes and applies a successful answer; returns false with the
 * cause in `cause` when the answer is refused or cannot be applied. */
static bool apply_answer(ch_dispatch *d, char *cause, size_t size) {
  if (!ch_hook_is_pre(d->hook)) return true;
  ProtobufCMessage *answer = decode_answer(d, cause, size);
  if (!answer) return false;
  ch_merge_trace_clear_changes(&d->trace);
  d->trace.want_changes = ch_trace_active();
  int rc = d->ops->apply(d->ctx, answer, d->plugin, &d->trace);
  protobuf_c_message_free_unpacked(answer, NULL);
  if (rc != 0) {
    snprintf(cause, size, "its answer could not be applied");
    return false;
  }
  if (d->trace.overwrites[0]) {
    ch_debug("dispatch", "plugin overwrote earlier plugins' values hook=%s %s fields=\"%s\"",
             ch_hook_name(d->hook), d->subject, d->trace.overwrites);
    d->trace.overwrites[0] = '\0';
  }
  return true;
}

/* A hook call cancelled by the shutdown: not the plugin's failure. */
static void on_aborted(ch_dispatch *d) {
  ch_info("dispatch", "hook call cancelled by the shutdown plugin=%s hook=%s %s", d->plugin->name,
          ch_hook_name(d->hook), d->subject);
  abort_chain(d);
  reset_call(d);
  finish(d);
}

static void on_answer(ch_tag *t, bool ok) {
  ch_dispatch *d = ch_container_of(t, ch_dispatch, tag);
  (void)ok; /* a client batch with RECV_STATUS always reports a status */
  in_flight_remove(d);
  if (d->aborted) {
    on_aborted(d);
    return;
  }
  double ms = gpr_timespec_to_micros(gpr_time_sub(gpr_now(GPR_CLOCK_MONOTONIC), d->started)) / 1e3;
  bool stop = false;
  char cause[768] = "";
  ch_hook_result result = CH_HOOK_OK;
  if (d->status != GRPC_STATUS_OK) {
    snprintf(cause, sizeof cause, "%s: %.*s", ch_status_name(d->status),
             (int)GRPC_SLICE_LENGTH(d->details), (const char *)GRPC_SLICE_START_PTR(d->details));
    result = d->status == GRPC_STATUS_DEADLINE_EXCEEDED ? CH_HOOK_TIMEOUT : CH_HOOK_ERROR;
    stop = plugin_failed(d, d->status, cause);
  } else if (!apply_answer(d, cause, sizeof cause)) {
    result = CH_HOOK_BAD_ANSWER;
    stop = plugin_failed(d, GRPC_STATUS_INTERNAL, cause);
  }
  record(d, result, ms / 1e3, cause);
  ch_debug("dispatch", "hook called plugin=%s hook=%s %s status=%s ms=%.2f", d->plugin->name,
           ch_hook_name(d->hook), d->subject, ch_status_name(d->status), ms);
  reset_call(d);
  if (stop)
    finish(d);
  else
    call_next(d);
}
