/* SPDX-License-Identifier: Apache-2.0 */
/* detect.h: choosing the backend runtime.
 *
 * `--backend auto` probes the default sockets of the known kinds
 * (backend.h, in the order of ch_backend_kinds) and takes the first that
 * answers a CRI Version call (runtime.v1, then v1alpha2). The candidate
 * list is a parameter so tests can point it at fake sockets. */
#pragma once

#include <stddef.h>

#include "backend.h"
#include "error.h"

typedef struct ch_backend_candidate {
  const char *name; /* "containerd", "k3s", ... */
  const char *path;
} ch_backend_candidate;

/* The most default sockets over all kinds. */
#define CH_MAX_DEFAULT_CANDIDATES 8

/* Fills `out` (room for `cap`) with every kind's default sockets in probe
 * order (containerd, k3s, CRI-O, cri-dockerd); returns how many. */
size_t ch_default_candidates(ch_backend_candidate *out, size_t cap);

/* Asks one socket for its CRI Version within timeout_ms (ch_backend_identify
 * on a fresh connection, after checking that the path is a socket). */
void ch_probe_backend(const char *path, int timeout_ms, ch_probe_result *out);

/* Returns the index of the first candidate that answers, filling `chosen`;
 * or -1 with an error that lists every path tried and what each said. */
int ch_detect_backend(const ch_backend_candidate *list, size_t count, int timeout_ms,
                      ch_probe_result *chosen, ch_error *err);

/* The longest pause between two probing rounds of ch_detect_backend_wait. */
#define CH_DETECT_MAX_DELAY_S 8

/* ch_detect_backend until a candidate answers: probes again after 1, 2, 4,
 * then every CH_DETECT_MAX_DELAY_S seconds, logging each failed round (what
 * every path said) and telling systemd in STATUS=. Never gives up: under
 * systemd, the unit's TimeoutStartSec bounds the wait (then the unit is
 * restarted and kubelet, which only Wants= it, starts anyway); SIGTERM ends
 * it (the default action: no handler is installed yet). */
int ch_detect_backend_wait(const ch_backend_candidate *list, size_t count, int timeout_ms,
                           ch_probe_result *chosen);
