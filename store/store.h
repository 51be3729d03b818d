/* SPDX-License-Identifier: Apache-2.0 */
/* store.h: what crihook knows about the pods and containers on this node.
 *
 * Calls such as StartContainer or StopPodSandbox carry only an ID, while
 * their hooks need the pod's metadata, labels, annotations, cgroup parent and
 * resources, and the container's. The store keeps them, keyed by ID:
 * - filled from RunPodSandbox and CreateContainer as they were after the Pre
 *   hooks changed them (and from PreStart/PreUpdate answers);
 * - read to build the hook requests of every later call;
 * - emptied by RemoveContainer and RemovePodSandbox (a pod's removal drops
 *   its containers too);
 * - rebuilt from the backend when crihookd starts (rebuild.c), so hook
 *   requests after a restart carry the same data as before it, and
 *   re-synced with it when the backend connection comes back;
 * - told of what an undecodable request created by the runtime's status.
 *
 * Values are kept as the hook API's own messages (packed), so what a hook
 * server receives and what `crihookctl store` shows are the same thing:
 * - a pod is a PodSandboxHookRequest;
 * - a container is a ContainerResourceHookRequest of which the store keeps
 *   container_meta, container_annotations, container_resources,
 *   container_envs, container_image and container_image_id, plus the ID of
 *   its pod; the pod_* fields are filled from the pod's entry when a request
 *   is built.
 *
 * Thread safety: every function may be called from any thread; lookups are
 * O(1) (hash tables under a read-write lock); getters return copies the
 * caller owns. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "hook.pb-c.h"

typedef struct ch_store ch_store;

typedef Runtime__V1alpha1__PodSandboxHookRequest ch_pod_record;
typedef Runtime__V1alpha1__ContainerResourceHookRequest ch_container_record;

ch_store *ch_store_new(void);
void ch_store_free(ch_store *store);

/* Stores (or replaces) a pod. The message is copied. */
int ch_store_put_pod(ch_store *store, const char *pod_id, const ch_pod_record *pod, ch_error *err);

/* A copy of the pod, or NULL if unknown. Free with
 * runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(p, NULL). */
ch_pod_record *ch_store_get_pod(ch_store *store, const char *pod_id);

/* Stores (or replaces) a container of pod `pod_id`. Only the container_*
 * fields of `ctr` are kept. */
int ch_store_put_container(ch_store *store, const char *container_id, const char *pod_id,
                           const ch_container_record *ctr, ch_error *err);

/* The full hook request for a container: its own fields plus pod_meta,
 * pod_labels, pod_annotations, pod_cgroup_parent and pod_resources from its
 * pod's entry (left empty if the pod is unknown), and container_meta.id set
 * to the container ID. NULL if the container is unknown. If pod_id_out is
 * not NULL it receives a malloc'd copy of the pod ID (caller frees).
 * Free with runtime__v1alpha1__container_resource_hook_request__free_unpacked. */
ch_container_record *ch_store_container_request(ch_store *store, const char *container_id,
                                                char **pod_id_out);

/* Replaces the container_* fields of a container the store has (it keeps
 * its pod); does nothing if the store lacks it, so a slow Start or Update
 * that finishes after a Remove cannot bring the record back. 0 if replaced,
 * 1 if absent, -1 on error. */
int ch_store_update_container(ch_store *store, const char *container_id,
                              const ch_container_record *ctr, ch_error *err);

void ch_store_remove_container(ch_store *store, const char *container_id);
/* Removes the pod and every container that belongs to it. */
void ch_store_remove_pod(ch_store *store, const char *pod_id);

size_t ch_store_pod_count(ch_store *store);
size_t ch_store_container_count(ch_store *store);

/* Snapshots for the admin socket and crihookctl, sorted by ID:
 *   [{"id": ..., "pod": {PodSandboxHookRequest as JSON}}, ...]
 *   [{"id": ..., "pod_id": ..., "container": {...}}, ...] */
json_t *ch_store_pods_json(ch_store *store);
json_t *ch_store_containers_json(ch_store *store);

/* Staying true while calls race a sync with the runtime. A sync reads the
 * runtime between ch_store_sync_begin (which returns a mark) and its
 * install; meanwhile every removal is remembered, so that the install does
 * not bring back what was removed after the runtime was read, and entries
 * put after the mark are never dropped by it. Every begin needs its end. */
uint64_t ch_store_sync_begin(ch_store *store);
void ch_store_sync_end(ch_store *store);

/* Replaces the store's content with what the backend on the unix socket
 * `backend` reports (rebuild.c):
 * ListPodSandbox and PodSandboxStatus(verbose) for pods, ListContainers and
 * ContainerStatus(verbose) for containers, in the API version of `found`
 * (what the backend's probe found: its api and kind); if `found` is NULL or
 * did not answer, the backend is probed first. The kind's recovery
 * (backend.h) reads the verbose info: containerd's "config" supplies cgroup
 * parent, overhead, resources and envs, and its "runtimeSpec" a container's
 * current resources (after updates). Pods
 * and containers that are not ready/running are kept too (they can still be
 * stopped and removed); ones removed between List and Status are skipped.
 * `timeout_ms` is the deadline of each call (0 = none). The new content
 * replaces the old in one step; on failure (-1) the old content stays. */
int ch_store_rebuild(ch_store *store, const char *backend, const ch_probe_result *found,
                     int timeout_ms, ch_error *err);

/* The same reads, but only adds the pods and containers the store lacks
 * (unless removed meanwhile); what the store has (written by calls already
 * served) wins. Used to retry a rebuild that failed at start while calls
 * are being served. */
int ch_store_fill_missing(ch_store *store, const char *backend, const ch_probe_result *found,
                          int timeout_ms, ch_error *err);

/* The same reads, adding what the store lacks and dropping what the runtime
 * no longer has (unless put after the reads began): the re-sync after the
 * backend connection came back (the runtime restarted, calls were cut off
 * mid-way). */
int ch_store_resync(ch_store *store, const char *backend, const ch_probe_result *found,
                    int timeout_ms, ch_error *err);

/* Records one pod or container from a PodSandboxStatus / ContainerStatus
 * (verbose) answer, `status` its packed bytes, as the rebuild would, unless
 * the store has it or it was removed since `mark` (ch_store_sync_begin):
 * for what the runtime created from a request crihookd could not decode.
 * Every kind's recovery is tried (backend.h); a container's pod is the
 * info's "sandboxID" (containerd, CRI-O). */
int ch_store_put_pod_status(ch_store *store, const char *pod_id, const uint8_t *status, size_t len,
                            uint64_t mark, ch_error *err);
int ch_store_put_container_status(ch_store *store, const char *container_id, const uint8_t *status,
                                  size_t len, uint64_t mark, ch_error *err);
