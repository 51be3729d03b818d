/* SPDX-License-Identifier: Apache-2.0 */
/* dispatch.c: the hook-call chain of dispatch.h.
 *
 * Each plugin call is one unary call of crihook's gRPC client (rpc.h) on
 * the loop's connection to the plugin's socket (rpc_pool.h): on_message
 * keeps the answer, on_end judges the call (plugin_failed, apply_answer,
 * record) and starts the next plugin's. The connections to plugins refuse
 * an answer larger than a hook answer may be (answer_check.h) at its
 * prefix, before it is read.
 *
 * Every chain with a call in flight is on its loop thread's list (a
 * thread-local list: a chain only ever runs on the loop that started it,
 * so no lock), so that a forced shutdown can cancel the hook calls, which
 * have no parent call for anything else to reach. */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_check.h"
#include "hook.pb-c.h"
#include "log.h"
#include "outcome.h"

static void call_next(ch_dispatch *d);
static int on_message(void *ud, const uint8_t *msg, size_t len);
static void on_end(void *ud, const ch_rpc_result *res);

static const ch_rpc_call_ops call_ops = {on_message, on_end};

#define SHUTDOWN_CAUSE "crihookd is shutting down: hook calls cancelled"

/* This loop thread's chains with a call in flight, and whether it has been
 * told to cancel them (then no new hook call starts on this thread). */
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

/* ch_rpc_call_cancel ends the call (on_end, then done()) before it
 * returns, and on_end takes the chain off the list first; so the list is
 * taken from its head each time, and a chain done() freed is never read
 * again. No chain joins the list meanwhile: `cancelling` stops new calls. */
int ch_dispatch_cancel_all(void) {
  int n = 0;
  cancelling = true;
  for (ch_dispatch *d; (d = in_flight_head) != NULL; n++) {
    d->aborted = true;
    ch_rpc_call_cancel(d->call, SHUTDOWN_CAUSE);
    if (in_flight_head == d) in_flight_remove(d); /* (on_end always removes it) */
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

void ch_dispatch_start(ch_dispatch *d, const ch_dispatch_env *env, const ch_registry *registry,
                       ch_hook_point hook, uint64_t deadline_ns, const char *subject,
                       const ch_dispatch_ops *ops, void *ctx) {
  memset(d, 0, sizeof *d);
  d->env = *env;
  d->registry = registry;
  d->hook = hook;
  d->deadline_ns = deadline_ns;
  d->subject = subject ? subject : "";
  d->ops = ops;
  d->ctx = ctx;
  call_next(d);
}

/* The plugin call's timeout: the plugin's timeout-ms, but never past the
 * CRI call's deadline; at least 1 ms (a deadline already past ends the
 * call DEADLINE_EXCEEDED at once, as any other timeout; 0 would mean none). */
static int64_t plugin_timeout_ms(const ch_dispatch *d, const ch_plugin *p, uint64_t now_ns) {
  int64_t ms = p->timeout_ms;
  if (d->deadline_ns) {
    int64_t left_ns = d->deadline_ns > now_ns ? (int64_t)(d->deadline_ns - now_ns) : 0;
    int64_t left = (left_ns + 999999) / 1000000;
    if (left < ms) ms = left;
  }
  return ms > 0 ? ms : 1;
}

/* Forgets the call and its answer (the call has ended or never started). */
static void reset_call(ch_dispatch *d) {
  free(d->answer);
  d->answer = NULL;
  d->answer_len = 0;
  d->call = NULL;
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

/* The loop's connection to the plugin; its answers are bounded as a hook
 * answer is (answer_check.h). */
static ch_rpc_conn *plugin_conn(const ch_dispatch *d, const ch_plugin *p, ch_error *err) {
  ch_rpc_opts opts = {.max_recv = CH_ANSWER_MAX_BYTES};
  return ch_rpc_pool_get(d->env.conns, p->endpoint.path, &opts, err);
}

/* Starts the plugin's call; false if the chain must stop (a Fail plugin
 * that could not be called). d->call is set when the call is in flight. */
static bool start_call(ch_dispatch *d, const ch_plugin *p) {
  size_t len;
  uint8_t *bytes = d->ops->build(d->ctx, &len);
  if (!bytes) return failed_to_start(d, "cannot build the hook request");
  ch_error err;
  ch_rpc_conn *conn = plugin_conn(d, p, &err);
  d->started_ns = uv_hrtime();
  ch_rpc_request req = {.path = ch_hook_method(d->hook),
                        .message = bytes,
                        .len = len,
                        .timeout_ms = plugin_timeout_ms(d, p, d->started_ns),
                        .unary = true};
  d->call = conn ? ch_rpc_call_start(conn, &req, &call_ops, d, &err) : NULL;
  free(bytes); /* the call has its copy */
  if (d->call) {
    in_flight_add(d);
    return true;
  }
  char cause[sizeof err.msg + 40];
  snprintf(cause, sizeof cause, "cannot start the hook call: %s", err.msg);
  return failed_to_start(d, cause);
}

/* Starts the next plugin's call, skipping (or stopping at) plugins that fail
 * before a call is in flight; ends the chain when none is left. */
static void call_next(ch_dispatch *d) {
  if (cancelling && !d->rejected && d->next < d->registry->hook_count[d->hook]) abort_chain(d);
  while (!d->rejected && d->next < d->registry->hook_count[d->hook]) {
    d->plugin = d->registry->by_hook[d->hook][d->next++];
    d->called++;
    d->retried = false;
    if (start_call(d, d->plugin) && d->call) return; /* in flight: on_end continues */
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
  size_t len = d->answer ? d->answer_len : 0;
  const uint8_t *data = d->answer ? d->answer : (const uint8_t *)"";
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

/* The plugin's answer message (unary: at most one), kept for on_end. */
static int on_message(void *ud, const uint8_t *msg, size_t len) {
  ch_dispatch *d = ud;
  free(d->answer);
  d->answer_len = 0;
  if (!(d->answer = malloc(len ? len : 1))) return -1; /* ends the call CANCELLED */
  memcpy(d->answer, msg, len);
  d->answer_len = len;
  return 0;
}

/* Judges an ended call: its status, else its answer; returns true if the
 * chain must stop, with the cause (empty when the call succeeded). */
static bool judge(ch_dispatch *d, const ch_rpc_result *res, ch_hook_result *result, char *cause,
                  size_t size) {
  *result = CH_HOOK_OK;
  if (res->status != GRPC_STATUS_OK) {
    snprintf(cause, size, "%s: %s", ch_status_name(res->status), res->message);
    *result = res->status == GRPC_STATUS_DEADLINE_EXCEEDED ? CH_HOOK_TIMEOUT : CH_HOOK_ERROR;
    return plugin_failed(d, res->status, cause);
  }
  if (!apply_answer(d, cause, size)) {
    *result = CH_HOOK_BAD_ANSWER;
    return plugin_failed(d, GRPC_STATUS_INTERNAL, cause);
  }
  return false;
}

/* The plugin never processed the call (its connection was gone before the
 * call went out, or it refused the stream: a hook server going away
 * gracefully sends GOAWAY): sent once more, on a new connection, as grpc
 * core's transparent retry did, so a plugin's restart costs no failed hook
 * call. Not recorded: the plugin was not asked. */
static void resend(ch_dispatch *d, const ch_rpc_result *res) {
  d->retried = true;
  ch_debug("dispatch", "hook call not processed, sent again plugin=%s hook=%s %s cause=\"%s\"",
           d->plugin->name, ch_hook_name(d->hook), d->subject, res->message);
  reset_call(d);
  if (start_call(d, d->plugin) && d->call) return; /* in flight again */
  call_next(d); /* it could not start: recorded, the chain goes on or stops */
}

static void on_end(void *ud, const ch_rpc_result *res) {
  ch_dispatch *d = ud;
  in_flight_remove(d);
  d->call = NULL; /* freed by rpc when this returns */
  if (d->aborted) {
    on_aborted(d);
    return;
  }
  if (res->unprocessed && !d->retried && !cancelling) {
    resend(d, res);
    return;
  }
  double ms = (double)(uv_hrtime() - d->started_ns) / 1e6;
  char cause[768] = "";
  ch_hook_result result;
  bool stop = judge(d, res, &result, cause, sizeof cause);
  record(d, result, ms / 1e3, cause);
  ch_debug("dispatch", "hook called plugin=%s hook=%s %s status=%s ms=%.2f", d->plugin->name,
           ch_hook_name(d->hook), d->subject, ch_status_name(res->status), ms);
  reset_call(d);
  if (stop)
    finish(d);
  else
    call_next(d);
}
