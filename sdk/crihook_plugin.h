/* SPDX-License-Identifier: Apache-2.0 */
/* crihook_plugin.h: libcrihook, the C SDK for writing a crihook hook server.
 *
 * This header is the whole contract. A plugin fills a table of callbacks,
 * one per hook point it wants, and calls crihook_serve() with the socket
 * path; it gets a running hook server (grpc, the koordinator-compatible
 * RuntimeHookService of api/hook.proto) that stops gracefully on SIGTERM or
 * SIGINT, logs each call at debug level (CRIHOOK_PLUGIN_LOG=debug), and
 * says plainly why when the socket cannot be created.
 *
 *   static int add_env(void *user, const crihook_container_request *req,
 *                      crihook_container_response *resp, crihook_error *err) {
 *     return crihook_set_env(resp, "NODE_NAME", "node-1");
 *   }
 *   int main(void) {
 *     crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = add_env};
 *     crihook_error err;
 *     if (crihook_serve("/run/crihook/plugins/env.sock", &ops, NULL, &err) != 0) {
 *       fprintf(stderr, "%s\n", err.message);
 *       return 1;
 *     }
 *     return 0;
 *   }
 *
 * What a callback may change: only its response. crihookd merges it into
 * the CRI request (see the README's merge rules): on Pre hooks labels,
 * annotations and envs key by key, a non-empty cgroup parent, and the
 * resource fields that are set (non-zero); Post hooks are notifications and
 * their responses are ignored. The request is read-only and valid only during
 * the call.
 *
 * A callback returns 0 to answer, or a gRPC status code (e.g. 3 for
 * INVALID_ARGUMENT, see crihook_status) after crihook_fail() described why;
 * with failure-policy Fail that refuses the CRI call, and the message reaches
 * kubelet. Callbacks run one at a time, on the thread that called
 * crihook_serve(), so plugin state needs no locks.
 *
 * ABI policy (libcrihook.so.0; sdk/README.md says the same at length).
 * A plugin built against this header keeps running, unrebuilt, on every
 * later libcrihook.so.0. Within one soname a release may only:
 *   - append callbacks at the end of crihook_plugin_ops: the plugin's struct
 *     carries its own size (CRIHOOK_PLUGIN_OPS_INIT), the library reads only
 *     the callbacks that size covers and treats later ones as NULL;
 *   - add functions, each under a new version node in libcrihook.map (the
 *     nodes already released are never edited);
 *   - change a function incompatibly only by keeping the old one under its
 *     old symbol version (as crihook_serve@CRIHOOK_0.1, for plugins built
 *     before ops had a size, still is);
 *   - append fields at the end of a message of api/hook.proto: the
 *     request/response types below are protobuf-c's generated structs,
 *     allocated by the library (responses too: build them only with the
 *     helpers below) and read by the plugin at offsets fixed when it was
 *     compiled, so a field inserted, removed or retyped moves the others.
 * Anything else (a removed or reordered field or callback, a changed
 * signature, crihook_error's size, an incompatible libprotobuf-c, whose
 * ProtobufCMessage heads every message) takes a new soname,
 * libcrihook.so.1. A struct larger than the library knows (a plugin built
 * against a newer header) is accepted if the callbacks the library does not
 * know are all NULL, and refused with a message otherwise. */
#ifndef CRIHOOK_PLUGIN_H
#define CRIHOOK_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hook.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef Runtime__V1alpha1__PodSandboxHookRequest crihook_pod_request;
typedef Runtime__V1alpha1__PodSandboxHookResponse crihook_pod_response;
typedef Runtime__V1alpha1__ContainerResourceHookRequest crihook_container_request;
typedef Runtime__V1alpha1__ContainerResourceHookResponse crihook_container_response;
typedef Runtime__V1alpha1__LinuxContainerResources crihook_resources;

typedef struct crihook_error {
  char message[512];
} crihook_error;

/* gRPC status codes a callback may return. */
enum crihook_status {
  CRIHOOK_OK = 0,
  CRIHOOK_INVALID_ARGUMENT = 3,
  CRIHOOK_NOT_FOUND = 5,
  CRIHOOK_PERMISSION_DENIED = 7,
  CRIHOOK_RESOURCE_EXHAUSTED = 8,
  CRIHOOK_FAILED_PRECONDITION = 9,
  CRIHOOK_INTERNAL = 13,
  CRIHOOK_UNAVAILABLE = 14,
};

typedef int (*crihook_pod_hook)(void *user, const crihook_pod_request *request,
                                crihook_pod_response *response, crihook_error *err);
typedef int (*crihook_container_hook)(void *user, const crihook_container_request *request,
                                      crihook_container_response *response, crihook_error *err);

/* One callback per hook point; NULL ones answer UNIMPLEMENTED (crihookd
 * only calls the hooks a registration file names). `size` is
 * sizeof(crihook_plugin_ops) as the plugin was compiled: always initialise
 * with CRIHOOK_PLUGIN_OPS_INIT, e.g.
 *   crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = f};
 * crihook_serve() refuses a size of 0 (the initialiser was forgotten). New
 * hook points are appended at the end, never inserted. */
typedef struct crihook_plugin_ops {
  size_t size;
  crihook_pod_hook pre_run_pod_sandbox;
  crihook_pod_hook post_stop_pod_sandbox;
  crihook_pod_hook pre_remove_pod_sandbox;
  crihook_container_hook pre_create_container;
  crihook_container_hook pre_start_container;
  crihook_container_hook post_start_container;
  crihook_container_hook pre_update_container_resources;
  crihook_container_hook pre_stop_container;
  crihook_container_hook post_stop_container;
  crihook_container_hook post_remove_container;
} crihook_plugin_ops;

#define CRIHOOK_PLUGIN_OPS_INIT .size = sizeof(crihook_plugin_ops)

/* Serves on the unix socket `path` (created with its parent directory, a
 * stale socket file replaced, mode 0660) until SIGTERM or SIGINT, then
 * finishes the calls in flight and returns 0. Returns -1 with `err` filled
 * if the server cannot start (e.g. "cannot listen on /x.sock: Permission
 * denied"), or if `ops` is not what CRIHOOK_PLUGIN_OPS_INIT makes. `path`
 * is absolute, and may also be written "unix:///x.sock" or "unix:/x.sock"
 * (the spellings crihookd accepts). One crihook_serve()
 * per process at a time; it handles SIGTERM and SIGINT while it runs (a
 * second signal cancels the calls in flight at once) and puts back the
 * previous handlers when it returns. Callbacks should be quick: they run
 * one at a time, so a slow one delays the others (and crihookd's
 * timeout-ms counts from when it sent the call). */
int crihook_serve(const char *path, const crihook_plugin_ops *ops, void *user, crihook_error *err);

/* Asks a running crihook_serve() to stop, as SIGTERM does (from a callback
 * or another thread). */
void crihook_stop(void);

/* Describes a failure; returns `code` so a callback can
 * `return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "cpu %d is offline", n);` */
int crihook_fail(crihook_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- reading requests ---- */

/* The value of `key` in a request's map field, or NULL. `map`/`count` are a
 * map field and its n_ count, e.g. crihook_map_get(req->pod_labels,
 * req->n_pod_labels, "app"). */
const char *crihook_map_get(void *const *map, size_t count, const char *key);
#define CRIHOOK_MAP_GET(msg, field, key) \
  crihook_map_get((void *const *)(msg)->field, (msg)->n_##field, (key))

/* ---- building responses (each returns 0, or -1 if out of memory) ---- */

int crihook_set_label(crihook_pod_response *response, const char *key, const char *value);
int crihook_set_pod_annotation(crihook_pod_response *response, const char *key, const char *value);
int crihook_set_cgroup_parent(crihook_pod_response *response, const char *cgroup_parent);
/* The response's resources, created empty on first use; set the fields to
 * change (fields left at zero change nothing). NULL if out of memory. */
crihook_resources *crihook_pod_resources(crihook_pod_response *response);

int crihook_set_env(crihook_container_response *response, const char *key, const char *value);
int crihook_set_annotation(crihook_container_response *response, const char *key,
                           const char *value);
int crihook_set_pod_cgroup_parent(crihook_container_response *response, const char *cgroup_parent);
crihook_resources *crihook_container_resources(crihook_container_response *response);

/* Sets a string field of a resources message (cpuset_cpus, cpuset_mems). */
int crihook_set_string(char **field, const char *value);

#ifdef __cplusplus
}
#endif
#endif
