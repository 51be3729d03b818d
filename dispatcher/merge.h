/* SPDX-License-Identifier: Apache-2.0 */
/* merge.h: how a hook server's answer changes a request.
 *
 * The rules (documented in the README, tested field by field):
 * - labels, annotations and envs merge key by key: a key the answer names is
 *   set (an env already present is changed in place, a new one appended, so
 *   the order of the others is kept); keys it does not name are untouched;
 * - a non-empty cgroup parent replaces the request's; an empty one changes
 *   nothing;
 * - resources merge field by field: a field the answer sets (non-zero
 *   number, non-empty string, non-empty list) replaces the request's; a
 *   field it leaves at its zero value changes nothing (unlike koordinator's
 *   proxy, which clears e.g. oom_score_adj or cpuset_cpus when a plugin
 *   omits them); `unified` merges key by key, a non-empty hugepage_limits
 *   list replaces the whole list.
 * Maps and envs merge in time linear in both sizes (ch_pb_pairs_merge, a
 * hash index by key); answers are checked against answer_check.h before
 * they reach these functions.
 * Several plugins on one hook are merged in call order, each seeing the
 * request as changed by those before it. A ch_merge_trace remembers which
 * plugin set what during one call, so that a later plugin overwriting an
 * earlier one's value can be reported (at debug level, by the caller).
 *
 * When the caller sets want_changes (someone is watching the live trace,
 * trace.h), the merges also list what they actually changed, one compact
 * entry per value, values as they were and became:
 *   env+FOO=bar               a key added (label, annotation, env,
 *                             resources.unified)
 *   annotation[x] old->new    a key whose value changed
 *   cgroup_parent=/kubepods   a field that was empty or zero
 *   resources.cpu_shares 2->512   a field that had another value
 *   resources.hugepage_limits replaced (2)   a list replaced (new length)
 * A value set to what it already was is not a change. Entries that do not
 * fit end the list with "...". */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "cri.pb-c.h"
#include "hook.pb-c.h"

#define CH_MERGE_TRACE_MAX 64

typedef struct ch_merge_trace {
  size_t count;
  struct {
    char what[128];
    const char *plugin; /* not owned: lives as long as the registry */
  } notes[CH_MERGE_TRACE_MAX];
  char overwrites[512]; /* "labels[x] (a -> b), ..." filled by the merges */
  bool want_changes;    /* set by the caller: fill `changes` */
  char changes[512];    /* entries separated by '\0', change_count of them */
  size_t changes_len;
  unsigned change_count;
} ch_merge_trace;

/* Empties the change list (between two plugins' answers). */
void ch_merge_trace_clear_changes(ch_merge_trace *trace);

/* Merges every field `src` sets into `dst`; src and dst may be different
 * message types that share field names (the hook API's and CRI's
 * LinuxContainerResources). `prefix` names dst in trace notes. */
int ch_merge_fields(ProtobufCMessage *dst, const ProtobufCMessage *src, const char *prefix,
                    ch_merge_trace *trace, const char *plugin);

/* A PreRunPodSandbox answer into RunPodSandbox's config. */
int ch_merge_pod_answer(Runtime__V1__PodSandboxConfig *config,
                        const Runtime__V1alpha1__PodSandboxHookResponse *answer,
                        ch_merge_trace *trace, const char *plugin);

/* A container hook answer into CreateContainer's config; `sandbox` (may be
 * NULL) takes pod_cgroup_parent. */
int ch_merge_container_answer(Runtime__V1__ContainerConfig *config,
                              Runtime__V1__PodSandboxConfig *sandbox,
                              const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                              ch_merge_trace *trace, const char *plugin);

/* A PreUpdateContainerResources answer into the update request. */
int ch_merge_update_answer(Runtime__V1__UpdateContainerResourcesRequest *request,
                           const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                           ch_merge_trace *trace, const char *plugin);

/* A container hook answer into a stored container record (PreStartContainer:
 * the request carries only an ID, so the answer changes what crihook
 * remembers and tells later hooks). */
int ch_merge_record_answer(Runtime__V1alpha1__ContainerResourceHookRequest *record,
                           const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                           ch_merge_trace *trace, const char *plugin);

/* Sets env `key` in a ContainerConfig: changed in place or appended.
 * Returns 1 if it replaced another value, 0 otherwise, -1 on error. */
int ch_merge_env(Runtime__V1__ContainerConfig *config, const char *key, const char *value);
