/* SPDX-License-Identifier: Apache-2.0 */
/* answer_check.h: what a hook answer may carry, checked before it is merged.
 *
 * A plugin's answer changes a request on the data plane, so an answer that
 * is too big to merge quickly, or that asks for something that cannot be
 * right, is refused: the hook has failed (the cause names the field and the
 * value), and the plugin's failure policy applies as for any other failure
 * (Fail: the CRI call is refused; Ignore: the answer is skipped, logged and
 * counted). The rules are listed in sdk/README.md ("What an answer may
 * carry"); in short:
 *
 * Bounds (ch_answer_limits; the defaults, CH_ANSWER_*, are far above any
 * real answer and keep a merge within a few milliseconds):
 *   - the encoded answer: at most 4 MiB (the dispatcher's connections to
 *     plugins have the same receive limit, so a larger one is refused as
 *     its prefix announces it, before it is read);
 *   - entries per map or list: at most 10000;
 *   - a key: at most 4096 bytes; a value (any string): at most 256 KiB.
 * Values (ch_answer_check_values):
 *   - no NUL byte in any string (checked on the wire: decoding would cut
 *     the string at it); keys of labels, annotations, envs, unified not
 *     empty; an env key without '=';
 *   - cgroup_parent / pod_cgroup_parent: empty (no change), an absolute
 *     path ("/kubepods/burstable/pod1") without "." or ".." components, or a
 *     systemd slice name ("kubepods-burstable-pod1.slice", no '/'); no
 *     control characters;
 *   - resources: cpu_shares 0 or 2..262144; cpu_period 0 or
 *     1000..1000000; cpu_quota -1, 0 or >= 1000; memory_limit_in_bytes
 *     >= 0; memory_swap_limit_in_bytes >= -1; oom_score_adj -1000..1000;
 *     cpuset_cpus / cpuset_mems a cpuset list ("0-3,8,10-11", ascending
 *     ranges, numbers < 65536); hugepage page_size like "2MB" or "1GB";
 *     unified keys are cgroup file names ("memory.high": letters, digits,
 *     '_' and '.', not starting with '.'), values without control
 *     characters. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CH_ANSWER_MAX_BYTES (4u * 1024 * 1024)
#define CH_ANSWER_MAX_ENTRIES 10000u
#define CH_ANSWER_MAX_KEY_BYTES 4096u
#define CH_ANSWER_MAX_VALUE_BYTES (256u * 1024)

typedef struct ch_answer_limits {
  size_t max_bytes;       /* the whole encoded answer */
  size_t max_entries;     /* per map or repeated field */
  size_t max_key_bytes;   /* a map key */
  size_t max_value_bytes; /* any other string */
} ch_answer_limits;

/* The CH_ANSWER_* defaults. */
extern const ch_answer_limits ch_answer_default_limits;

/* Checks the encoded answer of type `type` (a hook response) against the
 * bounds and for NUL bytes in strings, before it is decoded. A malformed
 * encoding is left to the decoder. Returns 0, or -1 with the cause. */
int ch_answer_check_wire(const ProtobufCMessageDescriptor *type, const uint8_t *bytes, size_t len,
                         const ch_answer_limits *limits, ch_error *err);

/* Checks the decoded answer's values against the rules above. Returns 0, or
 * -1 with the cause naming the field and the value. */
int ch_answer_check_values(const ProtobufCMessage *answer, ch_error *err);
