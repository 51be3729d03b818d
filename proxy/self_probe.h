/* SPDX-License-Identifier: Apache-2.0 */
/* self_probe.h: crihookd's CRI call to itself, through its own listen
 * socket, for /healthz, `crihookctl status` and the listener watch
 * (health.h).
 *
 * It is a CRI Version call on a fresh connection with a short deadline, so
 * it passes where kubelet's calls pass: the relay's accept loop, a relay
 * loop, the backend connection. It carries the metadata CH_SELF_PROBE_KEY,
 * and the relay (h2r_config.self_probe_header) leaves such calls out of
 * crihook_cri_calls_total and the live trace (they would show up every 5 s
 * otherwise). Version is never hooked and the probe is made from libuv's
 * thread pool, never from a relay loop, so it cannot recurse or wait on
 * itself. */
#pragma once

#include <grpc/grpc.h>
#include <stdbool.h>

#include "detect.h"

#define CH_SELF_PROBE_KEY "x-crihook-self-probe"

/* Calls Version through the socket at `path` (blocking, up to timeout_ms);
 * out->answered when the call came back through crihookd from the backend
 * (OK, or UNIMPLEMENTED from a runtime without CRI v1). *connected tells
 * whether the HTTP/2 connection was up afterwards: a call that failed on a
 * connected channel may be the backend's fault, one that never connected
 * is crihookd's. */
void ch_self_probe(const char *path, int timeout_ms, ch_probe_result *out, bool *connected);
