/* SPDX-License-Identifier: Apache-2.0 */
/* backend.h: what a kind of container runtime behind crihookd is.
 *
 * crihookd proxies any CRI runtime the same way; what differs between
 * runtimes is small and lives here, one file per kind behind this header
 * (containerd.c, crio.c, cri_dockerd.c, generic.c; detect.c holds the table
 * of kinds and auto-detection):
 * - its name and default socket(s) (containerd has two: its own and k3s's);
 * - how it is identified: the runtime_name of its CRI Version answer;
 * - how a pod's and a container's config are recovered from a verbose
 *   PodSandboxStatus / ContainerStatus answer (store/rebuild.c), and the
 *   pod of a container whose status alone is known (the intercept's).
 * Every kind is probed the same way (ch_backend_identify): a Version call
 * over runtime.v1, and over runtime.v1alpha2 if v1 is UNIMPLEMENTED; the
 * package that answered is the API version crihookd then speaks to it.
 * A recover function returns NULL when the answer does not carry what it
 * needs; the rebuild then uses the status alone (metadata, labels,
 * annotations, image, resources as reported), which is all the generic
 * kind ever does. Answers of both packages decode with the runtime.v1
 * types (same messages, same field numbers). */
#pragma once

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "cri.pb-c.h"
#include "error.h"

/* The deadline of one probe (a Version call, answered from memory by every
 * runtime in milliseconds): long enough for a runtime on a loaded node or
 * one still starting, short enough that an auto-detection round over every
 * default socket, and a /healthz that probes the backend, stay bounded. Used
 * by the daemon's detection and by the health probes alike. */
#define CH_BACKEND_PROBE_TIMEOUT_MS 2000

typedef struct ch_backend_socket {
  const char *label; /* for the log: "containerd", "k3s", ... */
  const char *path;
} ch_backend_socket;

typedef struct ch_backend_kind {
  const char *name;
  /* Version's runtime_name that identifies the kind; NULL: matches none */
  const char *runtime_name;
  const ch_backend_socket *sockets; /* probed by --backend auto, in order */
  size_t n_sockets;
  /* The PodSandboxConfig / ContainerConfig (a runtime__v1 message to free
   * with protobuf_c_message_free_unpacked) recovered from a verbose status
   * answer; NULL if its info does not carry one. */
  ProtobufCMessage *(*pod_config)(const Runtime__V1__PodSandboxStatusResponse *answer);
  ProtobufCMessage *(*container_config)(const Runtime__V1__ContainerStatusResponse *answer);
  /* The pod ID of a container, from its verbose status (malloc'd), or NULL. */
  char *(*container_pod_id)(const Runtime__V1__ContainerStatusResponse *answer);
} ch_backend_kind;

extern const ch_backend_kind ch_backend_containerd;  /* containerd.c (and k3s's) */
extern const ch_backend_kind ch_backend_crio;        /* crio.c */
extern const ch_backend_kind ch_backend_cri_dockerd; /* cri_dockerd.c */
extern const ch_backend_kind ch_backend_generic;     /* generic.c: any other runtime */

/* The known kinds in auto-detection order (detect.c), generic excluded. */
extern const ch_backend_kind *const ch_backend_kinds[];
extern const size_t ch_backend_kind_count;

/* The kind whose runtime_name is `runtime_name`; the generic kind if none. */
const ch_backend_kind *ch_backend_kind_of(const char *runtime_name);

typedef struct ch_probe_result {
  int answered;          /* 1 if Version answered OK */
  char api[16];          /* "v1" or "v1alpha2" when answered */
  char runtime_name[64]; /* from VersionResponse */
  char runtime_version[64];
  const ch_backend_kind *kind; /* by runtime_name when answered, else NULL */
  char why[256];               /* what the socket said, for the log */
} ch_probe_result;

/* Identifies the runtime on the unix socket `path` as the file comment says
 * (blocking, up to timeout_ms per call). Returns 0 when it answered, else
 * -1 with err filled; `out` says what happened either way. */
int ch_backend_identify(const char *path, int timeout_ms, ch_probe_result *out, ch_error *err);

/* The JSON document of a verbose answer's info["info"] (containerd's and
 * CRI-O's), or NULL (generic.c). `info` are the answer's map entries. */
json_t *ch_backend_info_doc(size_t n,
                            Runtime__V1__PodSandboxStatusResponse__InfoEntry *const *info);

/* info["info"]'s "sandboxID" (containerd and CRI-O), malloc'd, or NULL. */
char *ch_backend_sandbox_id(const Runtime__V1__ContainerStatusResponse *answer);

/* Recovery across kinds, for a status whose runtime is not known to the
 * caller: the first kind whose function recovers something, else NULL. */
ProtobufCMessage *ch_backend_any_pod_config(const Runtime__V1__PodSandboxStatusResponse *answer);
ProtobufCMessage *ch_backend_any_container_config(
    const Runtime__V1__ContainerStatusResponse *answer);
char *ch_backend_any_container_pod_id(const Runtime__V1__ContainerStatusResponse *answer);
