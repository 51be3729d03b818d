/* SPDX-License-Identifier: Apache-2.0 */
/* intercept_rows.h: the intercept table. One row per intercepted CRI method
 * carries everything crihook knows about that method; intercept.c runs the
 * phases (begin / record / post, the undecodable path) from the row alone.
 *
 * Adding a hook point on a method is adding or editing a row here:
 * intercept_pod.c has the pod-level rows, intercept_container.c the
 * container-level ones (each file exports one array; intercept.c lists the
 * arrays). tests/unit/test_hook_table.c checks that every row's hooks, the
 * hook table (registry/hooks.c) and api/hook.proto's service agree.
 *
 * Also here: the per-call state (struct ch_intercept) the row functions
 * read and fill, and the helpers the rows share (store lookups, the skip
 * label, the log subject). Internal to dispatcher/ and its unit tests. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "dispatch.h"
#include "error.h"
#include "hooks.h"
#include "intercept.h"
#include "merge.h"
#include "rpc.h"
#include "store.h"
#include "trace.h"

#define CH_NO_HOOK CH_HOOK_COUNT

/* What the store learns when the request did not decode (protobuf-c is
 * stricter than the runtime) but the runtime accepted it. */
typedef struct ch_intercept_fallback {
  /* The runtime created a pod or container: the new ID is `created_field`
   * of `created` (the response); ask `status_method` for its verbose
   * status (request built by status_request) and give it to put_status. */
  const ProtobufCMessageDescriptor *created;
  const char *created_field;
  const char *status_method; /* method name; the service is the call's own */
  uint8_t *(*status_request)(const char *id, size_t *len);
  int (*put_status)(ch_store *store, const char *id, const uint8_t *status, size_t len,
                    uint64_t mark, ch_error *err);
  /* The runtime removed one: forget the ID read leniently from the request. */
  void (*forget)(ch_store *store, const char *id);
} ch_intercept_fallback;

typedef struct ch_intercept_row {
  const char *method;                        /* CRI method name: "RunPodSandbox" */
  const ProtobufCMessageDescriptor *request; /* its request type */
  ch_hook_point pre, post;                   /* CH_NO_HOOK if none */
  const char *id_field;     /* request field naming the pod/container; NULL: it creates one */
  bool pod_level;           /* the ID names a pod (else a container) */
  bool store_needs_request; /* record() reads the request: decode it even without hooks */
  const char *what;         /* "pod" or "container", for log lines */
  /* begin: store lookups, ic->skip (the skip label), the log subject;
   * `hooks` is true when a hook or the live trace will read the context. */
  void (*load)(ch_intercept *ic, bool hooks);
  /* the hook request as it stands (malloc'd), NULL on error */
  uint8_t *(*build)(ch_intercept *ic, size_t *len);
  /* a Pre answer applied to the request or the stored record; NULL: nothing to change */
  int (*apply)(ch_intercept *ic, const ProtobufCMessage *answer, const char *plugin,
               ch_merge_trace *trace);
  /* record, after the runtime said OK to a decoded request, with its answer
   * message (NULL when there is none); NULL: nothing to learn */
  void (*record)(ch_intercept *ic, const uint8_t *response, size_t len);
  /* the live trace's pod and container fields, from a decoded request */
  void (*trace)(ch_intercept *ic, ch_trace_event *ev);
  ch_intercept_fallback undecoded;
} ch_intercept_row;

/* The row groups (intercept_pod.c, intercept_container.c). */
extern const ch_intercept_row ch_intercept_pod_rows[];
extern const size_t ch_intercept_pod_row_count;
extern const ch_intercept_row ch_intercept_container_rows[];
extern const size_t ch_intercept_container_row_count;

/* Every row, in order, for the tests (ch_intercept_kind_of walks the groups
 * itself): i < ch_intercept_row_count(). */
size_t ch_intercept_row_count(void);
const ch_intercept_row *ch_intercept_row_at(size_t i);

struct ch_intercept {
  const ch_intercept_row *row;
  ch_intercept_env env;
  ch_registry *registry;
  uint64_t deadline_ns; /* the CRI call's (uv_hrtime clock); 0: none */
  ch_intercept_cb cb;
  void *owner;
  ProtobufCMessage *request; /* decoded CRI request; NULL: forward untouched */
  const char *id;            /* the pod or container ID the request names (in request) */
  ch_pod_record *pod;        /* owned: the pod as the store knows it */
  ch_container_record *ctr;  /* owned: the container as the store knows it */
  char *ctr_pod_id;          /* owned */
  bool changed;              /* a Pre hook's answer was applied to the request */
  bool ctr_changed;          /* ... or to the stored container (PreStart) */
  bool skip;
  bool succeeded;
  char *created_id;       /* owned: the ID the runtime gave a new pod/container */
  ch_trace_hooks *traced; /* owned: hook calls for the live trace, or NULL */
  bool refused;           /* undecodable, and a Fail plugin wants it: refuse_message */
  char *refuse_message;   /* owned */
  char *undecoded_id;     /* owned: an undecodable request's ID, read leniently */
  struct {                /* the runtime's status of what an undecodable request created */
    bool syncing;         /* between ch_store_sync_begin (mark) and _end */
    uint64_t mark;
    ch_rpc_call *call; /* in flight, or NULL */
    uint8_t *answer;   /* owned: the status message, once it came */
    size_t answer_len;
    bool dropped; /* ch_intercept_free cancelled the call: nobody waits */
  } lookup;
  ch_dispatch dispatch;
  char subject[192];
  char service[64]; /* "/runtime.v1.RuntimeService/": the call's own service */
};

/* ---- helpers the rows share (intercept.c) ---- */

/* True if a pod's label map (`field` of `msg`) says skip every hook. */
bool ch_ic_labels_say_skip(const ProtobufCMessage *msg, const char *field);
/* ic->pod from the store, if pod_id is set and not loaded yet. */
void ch_ic_ensure_pod(ch_intercept *ic, const char *pod_id);
/* ic->ctr from the store, or one that knows only ic->id. */
void ch_ic_ensure_container(ch_intercept *ic);
/* Appends " key=value" to the log subject. */
void ch_ic_subject_add(ch_intercept *ic, const char *key, const char *value);
/* "pod=namespace/name" from either metadata, or "pod=ID". */
void ch_ic_subject_pod(ch_intercept *ic, const Runtime__V1__PodSandboxMetadata *cri,
                       const Runtime__V1alpha1__PodSandboxMetadata *hook, const char *pod_id);
/* The string field `field` of the `response` message decoded as `desc`
 * (malloc'd), or NULL (no response, or it does not decode). */
char *ch_ic_response_field(const uint8_t *response, size_t len,
                           const ProtobufCMessageDescriptor *desc, const char *field);
/* The trace event's pod: "namespace/name". */
void ch_ic_trace_pod(ch_trace_event *ev, const char *namespace_, const char *name);
void ch_ic_trace_pod_meta(ch_trace_event *ev, const Runtime__V1alpha1__PodSandboxMetadata *m);
