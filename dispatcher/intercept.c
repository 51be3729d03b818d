/* SPDX-License-Identifier: Apache-2.0 */
/* intercept.c: the begin / record / post phases of intercept.h, driven by
 * the intercept table (intercept_rows.h: one row per intercepted method, in
 * intercept_pod.c and intercept_container.c), the helpers the rows share,
 * and the path of a request that does not decode (refused for a Fail
 * plugin, else forwarded and, if it created something, looked up in the
 * runtime for the store). Nothing here names a method: that is the rows'.
 *
 * The runtime's status of what an undecodable request created is one
 * unary call of crihook's gRPC client (rpc.h) on the loop's connection to
 * the runtime's socket (env.backend_path, rpc_pool.h), like the hook
 * calls on the plugins' sockets (dispatch.c). */
#include "intercept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "intercept_rows.h"
#include "log.h"
#include "metrics.h"
#include "pbutil.h"

#define NO_HOOK CH_NO_HOOK
#define STATUS_TIMEOUT_MS 2000
#define SKIP_LABEL "runtimeproxy.koordinator.sh/skip-hookserver"

/* True if a pod's label map (`field` of `msg`) says skip every hook. */
bool ch_ic_labels_say_skip(const ProtobufCMessage *msg, const char *field) {
  const char *value = msg ? ch_pb_map_get(msg, field, SKIP_LABEL) : NULL;
  return value && strcmp(value, "true") == 0;
}

/* The row groups; a new group file adds its array here. */
static const struct {
  const ch_intercept_row *rows;
  const size_t *count;
} groups[] = {
    {ch_intercept_pod_rows, &ch_intercept_pod_row_count},
    {ch_intercept_container_rows, &ch_intercept_container_row_count},
};

size_t ch_intercept_row_count(void) {
  size_t n = 0;
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) n += *groups[g].count;
  return n;
}

const ch_intercept_row *ch_intercept_row_at(size_t i) {
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
    if (i < *groups[g].count) return &groups[g].rows[i];
    i -= *groups[g].count;
  }
  return NULL;
}

/* Runs once per relayed call (dataplane.c): the groups are walked
 * directly, and a row's name is measured (at most len + 1 bytes) only when
 * its first byte matches. */
ch_intercept_kind ch_intercept_kind_of(const char *method, size_t len) {
  if (!len) return CH_INTERCEPT_NONE;
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
    for (size_t i = 0; i < *groups[g].count; i++) {
      const char *name = groups[g].rows[i].method;
      if (name[0] == method[0] && strnlen(name, len + 1) == len && memcmp(name, method, len) == 0)
        return &groups[g].rows[i];
    }
  }
  return CH_INTERCEPT_NONE;
}

static bool wanted(const ch_intercept *ic, ch_hook_point hook) {
  return hook != NO_HOOK && ch_dispatch_wanted(ic->registry, hook);
}

/* ---- decoding and context ---- */

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes,
                                size_t len) {
  return protobuf_c_message_unpack(desc, NULL, len, len ? bytes : (const uint8_t *)"");
}

/* The string field `name` of msg, or "". */
static const char *string_field(const ProtobufCMessage *msg, const char *name) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
  if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED) return "";
  const char *value = *(char *const *)((const char *)msg + f->offset);
  return value ? value : "";
}

void ch_ic_ensure_container(ch_intercept *ic) {
  if (ic->ctr) return;
  ic->ctr = ch_store_container_request(ic->env.store, ic->id, &ic->ctr_pod_id);
  if (ic->ctr) return;
  ic->ctr = malloc(sizeof *ic->ctr); /* unknown to the store: the ID is all we have */
  if (!ic->ctr) return;
  runtime__v1alpha1__container_resource_hook_request__init(ic->ctr);
  ProtobufCMessage *meta = ch_pb_submessage(&ic->ctr->base, "container_meta");
  if (meta) ch_pb_set_string(&ic->ctr->container_meta->id, ic->id);
}

void ch_ic_ensure_pod(ch_intercept *ic, const char *pod_id) {
  if (ic->pod || !pod_id || !*pod_id) return;
  ic->pod = ch_store_get_pod(ic->env.store, pod_id);
}

/* ---- the subject of log lines ---- */

/* Appends " key=value" (or "key=value" at the start) to the subject. */
void ch_ic_subject_add(ch_intercept *ic, const char *key, const char *value) {
  size_t used = strlen(ic->subject);
  snprintf(ic->subject + used, sizeof ic->subject - used, "%s%s=%s", used ? " " : "", key, value);
}

/* "pod=namespace/name" from the pod's metadata, or "pod=ID" when it is not
 * known (as the live trace names pods). */
void ch_ic_subject_pod(ch_intercept *ic, const Runtime__V1__PodSandboxMetadata *cri,
                       const Runtime__V1alpha1__PodSandboxMetadata *hook, const char *pod_id) {
  const char *ns = cri ? cri->namespace_ : hook ? hook->namespace_ : "";
  const char *name = cri ? cri->name : hook ? hook->name : "";
  char named[160];
  snprintf(named, sizeof named, "%s/%s", ns, name);
  ch_ic_subject_add(ic, "pod", *name ? named : pod_id && *pod_id ? pod_id : "?");
}

/* ---- the dispatch chain, through the row ---- */

static uint8_t *build_request(void *ctx, size_t *len) {
  ch_intercept *ic = ctx;
  return ic->row->build(ic, len);
}

static int apply_answer(void *ctx, const ProtobufCMessage *answer, const ch_plugin *plugin,
                        ch_merge_trace *trace) {
  ch_intercept *ic = ctx;
  /* no apply: nothing in the call to change (PreStopContainer, PreRemovePodSandbox) */
  return ic->row->apply ? ic->row->apply(ic, answer, plugin->name, trace) : 0;
}

static void chain_done(void *ctx) {
  ch_intercept *ic = ctx;
  ic->cb(ic->owner);
}

static void hook_traced(void *ctx, const ch_trace_hook *call) {
  ch_intercept *ic = ctx;
  ch_trace_hooks_add(&ic->traced, call);
}

static const ch_dispatch_ops dispatch_ops = {build_request, apply_answer, chain_done, hook_traced};

/* The plugins a skip label kept from being called, for the live trace. */
static void trace_skipped(ch_intercept *ic, ch_hook_point hook) {
  if (!ch_trace_active()) return;
  for (size_t i = 0; i < ic->registry->hook_count[hook]; i++) {
    ch_trace_hook h = {.hook = ch_hook_name(hook), .result = CH_TRACE_HOOK_SKIPPED};
    snprintf(h.plugin, sizeof h.plugin, "%s", ic->registry->by_hook[hook][i]->name);
    ch_trace_hooks_add(&ic->traced, &h);
  }
}

static void run_hooks(ch_intercept *ic, ch_hook_point hook, ch_intercept_cb cb) {
  ic->cb = cb;
  if (hook == NO_HOOK || ic->skip || !ic->request || !wanted(ic, hook)) {
    if (hook != NO_HOOK && ic->skip && wanted(ic, hook)) {
      ch_debug("intercept", "hooks skipped by label hook=%s %s", ch_hook_name(hook), ic->subject);
      trace_skipped(ic, hook);
    }
    cb(ic->owner);
    return;
  }
  ch_dispatch_env env = {.loop = ic->env.loop, .conns = ic->env.conns};
  ch_dispatch_start(&ic->dispatch, &env, ic->registry, hook, ic->deadline_ns, ic->subject,
                    &dispatch_ops, ic);
}

/* ---- a request that does not decode ---- */

/* Reads a varint as the runtime's Go decoders do (up to 10 bytes). */
static bool lenient_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Reads one field's key and skips or reads its value (str and len for
 * wire type 2); groups are skipped whole, up to a depth. Field numbers keep their
 * low 32 bits, as Go's do. false on bytes the runtime would refuse too. */
static bool lenient_field(const uint8_t **p, const uint8_t *end, int depth, int32_t *field,
                          unsigned *wire, const uint8_t **str, uint64_t *len) {
  uint64_t key, v;
  if (depth > 16 || !lenient_varint(p, end, &key)) return false;
  *field = (int32_t)(uint32_t)(key >> 3);
  *wire = key & 7;
  switch (*wire) {
    case 0:
      return lenient_varint(p, end, &v);
    case 1:
    case 5: {
      size_t n = *wire == 1 ? 8 : 4;
      if ((size_t)(end - *p) < n) return false;
      *p += n;
      return true;
    }
    case 2:
      if (!lenient_varint(p, end, len) || *len > (uint64_t)(end - *p)) return false;
      *str = *p;
      *p += *len;
      return true;
    case 3: { /* a group: fields up to its end */
      int32_t f;
      unsigned w;
      const uint8_t *s;
      uint64_t l;
      do {
        if (!lenient_field(p, end, depth + 1, &f, &w, &s, &l)) return false;
      } while (w != 4);
      return true;
    }
    case 4:
      return depth > 0;
    default:
      return false;
  }
}

/* Field `number` (the ID) of an intercepted request protobuf-c did not
 * decode, read as the runtime reads it (the last one wins); malloc'd, or NULL. */
static char *lenient_id(const uint8_t *bytes, size_t n, uint32_t number) {
  const uint8_t *p = bytes, *end = bytes + n, *id = NULL, *str;
  uint64_t id_len = 0, len;
  int32_t field;
  unsigned wire;
  while (p < end && lenient_field(&p, end, 0, &field, &wire, &str, &len))
    if ((uint32_t)field == number && wire == 2) id = str, id_len = len;
  return p == end && id && !memchr(id, '\0', id_len) ? strndup((const char *)id, id_len) : NULL;
}

/* After an undecodable Remove the runtime accepted: the store forgets. */
static void record_undecodable_remove(ch_intercept *ic) {
  const char *id = ic->undecoded_id;
  if (!id) return;
  ic->row->undecoded.forget(ic->env.store, id);
  ch_info("intercept", "store forgot what an undecodable %s removed id=%s", ic->row->method, id);
}

/* The Fail-policy plugins registered for `hook`, "a, b", into buf; 0 if none. */
static size_t fail_plugins(const ch_registry *r, ch_hook_point hook, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (size_t i = 0; hook != NO_HOOK && i < r->hook_count[hook]; i++) {
    const ch_plugin *p = r->by_hook[hook][i];
    if (!p->fail_closed) continue;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", n++ ? ", " : "", p->name);
  }
  return n;
}

static void undecodable(ch_intercept *ic, const uint8_t *request, size_t len) {
  const ch_intercept_row *k = ic->row;
  ch_metrics_undecodable(k->method);
  const ProtobufCFieldDescriptor *id =
      k->id_field ? protobuf_c_message_descriptor_get_field_by_name(k->request, k->id_field) : NULL;
  if (id) ic->undecoded_id = lenient_id(request, len, id->id);
  char names[512];
  if (fail_plugins(ic->registry, k->pre, names, sizeof names) == 0) {
    ch_warn("intercept",
            "request does not decode; forwarded untouched, hooks skipped (no Fail-policy plugin "
            "wants it) method=%s",
            k->method);
    return;
  }
  char message[1024];
  snprintf(message, sizeof message,
           "crihookd: the %s request does not decode as %s (an encoding crihookd's protobuf "
           "decoder refuses, e.g. a group or an over-long varint), so the Fail-policy plugin(s) "
           "registered for %s (%s) cannot see it; refused, nothing was sent to the runtime",
           k->method, k->request->name, ch_hook_name(k->pre), names);
  ic->refuse_message = strdup(message);
  ic->refused = true;
  ch_warn("intercept",
          "request does not decode; refused for Fail-policy plugins method=%s plugins=\"%s\"",
          k->method, names);
}

/* After an undecodable RunPodSandbox or CreateContainer succeeded: the
 * store will learn the new pod or container from the runtime's status. */
static void plan_lookup(ch_intercept *ic, const uint8_t *response, size_t len) {
  const ch_intercept_fallback *f = &ic->row->undecoded;
  if (!ic->env.backend_path) return;
  ic->created_id = ch_ic_response_field(response, len, f->created, f->created_field);
  if (!ic->created_id || !*ic->created_id) return;
  ic->lookup.mark = ch_store_sync_begin(ic->env.store);
  ic->lookup.syncing = true;
}

/* The status call has ended (or never started): the store's sync ends. */
static void end_lookup(ch_intercept *ic) {
  free(ic->lookup.answer);
  ic->lookup.answer = NULL;
  ic->lookup.answer_len = 0;
  if (ic->lookup.syncing) ch_store_sync_end(ic->env.store);
  ic->lookup.syncing = false;
}

static void record_looked_up(ch_intercept *ic, const ch_rpc_result *res) {
  const char *what = ic->row->what;
  const uint8_t *bytes = ic->lookup.answer ? ic->lookup.answer : (const uint8_t *)"";
  ch_error err;
  int rc = -1;
  if (res->status != GRPC_STATUS_OK)
    ch_fail(&err, "%s: %s", ch_status_name(res->status), res->message);
  else
    rc = ic->row->undecoded.put_status(ic->env.store, ic->created_id, bytes, ic->lookup.answer_len,
                                       ic->lookup.mark, &err);
  if (rc == 0)
    ch_info("intercept",
            "store learnt a %s from the runtime's status (its request did not decode) id=%s", what,
            ic->created_id);
  else
    ch_warn("intercept", "store lacks a %s whose request did not decode id=%s: %s", what,
            ic->created_id, err.msg);
}

static int on_lookup_message(void *ud, const uint8_t *msg, size_t len) {
  ch_intercept *ic = ud;
  free(ic->lookup.answer);
  ic->lookup.answer_len = 0;
  if (!(ic->lookup.answer = malloc(len ? len : 1))) return -1; /* ends it CANCELLED */
  memcpy(ic->lookup.answer, msg, len);
  ic->lookup.answer_len = len;
  return 0;
}

static void on_lookup_end(void *ud, const ch_rpc_result *res) {
  ch_intercept *ic = ud;
  ic->lookup.call = NULL;   /* freed by rpc when this returns */
  if (ic->lookup.dropped) { /* ch_intercept_free cancelled it: nobody waits */
    end_lookup(ic);
    return;
  }
  record_looked_up(ic, res);
  end_lookup(ic);
  ic->cb(ic->owner);
}

static const ch_rpc_call_ops lookup_ops = {on_lookup_message, on_lookup_end};

/* Keeps the service part of the call's path ("/runtime.v1.RuntimeService/"),
 * the runtime.v1 one when the path has none. */
static void set_service(ch_intercept *ic, const char *method, size_t len) {
  const char *slash = method && len ? memrchr(method, '/', len) : NULL;
  size_t n = slash ? (size_t)(slash - method) + 1 : 0;
  if (n == 0 || n >= sizeof ic->service) {
    snprintf(ic->service, sizeof ic->service, "/runtime.v1.RuntimeService/");
    return;
  }
  memcpy(ic->service, method, n);
  ic->service[n] = '\0';
}

/* Starts the row's status call (PodSandboxStatus / ContainerStatus,
 * verbose) for created_id; false with the cause in err if it could not
 * start (then nothing is pending). */
static bool start_lookup(ch_intercept *ic, ch_error *err) {
  const ch_intercept_fallback *f = &ic->row->undecoded;
  size_t len;
  uint8_t *bytes = f->status_request(ic->created_id, &len);
  if (!bytes) {
    ch_fail(err, "out of memory");
    return false;
  }
  char path[sizeof ic->service + 32];
  snprintf(path, sizeof path, "%s%s", ic->service, f->status_method);
  ch_rpc_request req = {
      .path = path, .message = bytes, .len = len, .timeout_ms = STATUS_TIMEOUT_MS, .unary = true};
  ch_rpc_conn *conn = ch_rpc_pool_get(ic->env.conns, ic->env.backend_path, NULL, err);
  ic->lookup.call = conn ? ch_rpc_call_start(conn, &req, &lookup_ops, ic, err) : NULL;
  free(bytes); /* the call has its copy */
  return ic->lookup.call != NULL;
}

/* ---- phases ---- */

int ch_intercept_begin(ch_intercept_kind kind, const ch_intercept_env *env, const uint8_t *request,
                       size_t len, uint64_t deadline_ns, ch_intercept_cb resume, void *owner,
                       ch_intercept **out) {
  ch_intercept *ic = calloc(1, sizeof *ic);
  *out = ic;
  if (!ic) return -1;
  const ch_intercept_row *k = kind;
  ic->row = kind;
  ic->env = *env;
  set_service(ic, env->method, env->method_len);
  ic->deadline_ns = deadline_ns;
  ic->owner = owner;
  ic->registry = ch_registry_slot_acquire(env->registry);
  ic->id = "";
  bool hooks = wanted(ic, k->pre) || wanted(ic, k->post);
  bool traced = ch_trace_active();
  if (request && (hooks || k->store_needs_request || traced)) {
    ic->request = decode(k->request, request, len);
    if (!ic->request) undecodable(ic, request, len);
  }
  if (ic->request) {
    if (k->id_field) ic->id = string_field(ic->request, k->id_field);
    ic->subject[0] = '\0';
    k->load(ic, hooks || traced);
  }
  run_hooks(ic, k->pre, resume);
  return 0;
}

bool ch_intercept_rejected(const ch_intercept *ic, grpc_status_code *code, const char **message) {
  if (ic->refused) {
    *code = GRPC_STATUS_INVALID_ARGUMENT;
    *message = ic->refuse_message ? ic->refuse_message
                                  : "crihookd: the request does not decode and a Fail-policy "
                                    "plugin wants to see it; refused";
    return true;
  }
  if (!ic->dispatch.rejected) return false;
  *code = ic->dispatch.reject_code;
  *message = ic->dispatch.reject_message;
  return true;
}

uint8_t *ch_intercept_request(ch_intercept *ic, size_t *len) {
  if (!ic->changed || !ic->request) return NULL;
  return ch_pb_pack(ic->request, len);
}

char *ch_ic_response_field(const uint8_t *response, size_t len,
                           const ProtobufCMessageDescriptor *desc, const char *field) {
  ProtobufCMessage *msg = response ? decode(desc, response, len) : NULL;
  if (!msg) return NULL;
  char *id = strdup(string_field(msg, field));
  protobuf_c_message_free_unpacked(msg, NULL);
  return id;
}

void ch_intercept_record(ch_intercept *ic, grpc_status_code status, const uint8_t *response,
                         size_t len) {
  ic->succeeded = status == GRPC_STATUS_OK;
  const ch_intercept_fallback *f = &ic->row->undecoded;
  if (ic->succeeded && !ic->request && f->put_status) plan_lookup(ic, response, len);
  if (ic->succeeded && !ic->request && f->forget) record_undecodable_remove(ic);
  if (!ic->succeeded || !ic->request) return;
  ch_error err;
  if (ic->row->record) ic->row->record(ic, response, len);
  if (!ic->ctr_changed || !ic->ctr_pod_id) return;
  /* only if still there: a Remove that finished meanwhile stays done */
  int rc = ch_store_update_container(ic->env.store, ic->id, ic->ctr, &err);
  if (rc < 0) ch_warn("intercept", "store not updated %s: %s", ic->subject, err.msg);
  if (rc > 0) ch_debug("intercept", "store not updated: removed meanwhile %s", ic->subject);
}

void ch_intercept_post(ch_intercept *ic, ch_intercept_cb finished) {
  ch_error err;
  if (ic->lookup.syncing) {
    ic->cb = finished;
    if (start_lookup(ic, &err)) return; /* on_lookup_end calls finished */
    ch_warn("intercept",
            "store lacks what an undecodable request created id=%s: cannot ask the "
            "runtime: %s",
            ic->created_id, err.msg);
    end_lookup(ic);
  }
  ch_hook_point post = ic->row->post;
  run_hooks(ic, ic->succeeded ? post : NO_HOOK, finished);
}

/* ---- the live trace's subject ---- */

void ch_ic_trace_pod(ch_trace_event *ev, const char *namespace_, const char *name) {
  if (name && *name) snprintf(ev->pod, sizeof ev->pod, "%s/%s", namespace_ ? namespace_ : "", name);
}

void ch_ic_trace_pod_meta(ch_trace_event *ev, const Runtime__V1alpha1__PodSandboxMetadata *m) {
  if (m) ch_ic_trace_pod(ev, m->namespace_, m->name);
}

void ch_intercept_trace(ch_intercept *ic, ch_trace_event *ev) {
  if (ic->request) ic->row->trace(ic, ev);
  const char *undecoded = ic->created_id ? ic->created_id : ic->undecoded_id;
  bool pod_level = ic->row->pod_level;
  if (!ic->request && undecoded) /* undecodable: the ID as the runtime read it */
    snprintf(pod_level ? ev->pod_id : ev->container_id, sizeof ev->pod_id, "%s", undecoded);
  ev->hooks = ic->traced;
  ic->traced = NULL;
}

void ch_intercept_free(ch_intercept *ic) {
  if (!ic) return;
  if (ic->lookup.call) { /* freed while the status call runs: it ends now, unheard */
    ic->lookup.dropped = true;
    ch_rpc_call_cancel(ic->lookup.call, "the intercepted call was freed");
  }
  end_lookup(ic);
  free(ic->refuse_message);
  free(ic->undecoded_id);
  free(ic->created_id);
  free(ic->traced);
  if (ic->request) protobuf_c_message_free_unpacked(ic->request, NULL);
  if (ic->pod) runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(ic->pod, NULL);
  if (ic->ctr) runtime__v1alpha1__container_resource_hook_request__free_unpacked(ic->ctr, NULL);
  free(ic->ctr_pod_id);
  ch_registry_unref(ic->registry);
  free(ic);
}
