/* detect.h: choosing the backend runtime.
 *
 * `--backend auto` probes the well-known sockets in a fixed order and takes
 * the first that answers a CRI Version call (runtime.v1, then v1alpha2). The
 * candidate list is a parameter so tests can point it at fake sockets. */
#pragma once

#include <stddef.h>

#include "error.h"

typedef struct ch_backend_candidate {
  const char *name; /* "containerd", "k3s", ... */
  const char *path;
} ch_backend_candidate;

/* containerd, k3s, CRI-O, cri-dockerd, in that order. */
extern const ch_backend_candidate ch_default_candidates[];
extern const size_t ch_default_candidate_count;

typedef struct ch_probe_result {
  int answered;          /* 1 if Version answered OK */
  char api[16];          /* "v1" or "v1alpha2" when answered */
  char runtime_name[64]; /* from VersionResponse */
  char runtime_version[64];
  char why[256]; /* what the socket said, for the log */
} ch_probe_result;

/* Asks one socket for its CRI Version within timeout_ms. */
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
