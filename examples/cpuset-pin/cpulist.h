/* SPDX-License-Identifier: Apache-2.0 */
/* cpulist.h: Linux CPU lists ("0-3,8,10-11"), as the kernel writes them in
 * /sys/devices/system/cpu/online and reads them from cpuset.cpus.
 *
 * A cpulist is a fixed bitmap of CPU numbers 0..CPULIST_MAX-1 (the kernel's
 * own upper bound, NR_CPUS <= 8192), so it lives on the stack and needs no
 * freeing. Parsing is strict: decimal numbers and ascending ranges joined by
 * commas, surrounding white space ignored, anything else an error that says
 * where; formatting gives the canonical form (sorted, ranges merged). */
#ifndef CRIHOOK_CPULIST_H
#define CRIHOOK_CPULIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crihook_plugin.h"

#define CPULIST_MAX 8192

typedef struct cpulist {
  uint64_t bits[CPULIST_MAX / 64];
} cpulist;

/* Parses `text` into `out`. Returns 0, or CRIHOOK_INVALID_ARGUMENT with
 * `err` saying what is wrong and where (e.g. "range 3-1 goes backwards"). */
int cpulist_parse(const char *text, cpulist *out, crihook_error *err);

/* Reads and parses a CPU list file such as /sys/devices/system/cpu/online.
 * Returns 0, or CRIHOOK_FAILED_PRECONDITION with `err` naming the file. */
int cpulist_read_file(const char *path, cpulist *out, crihook_error *err);

bool cpulist_has(const cpulist *set, unsigned cpu);
void cpulist_add(cpulist *set, unsigned cpu);
bool cpulist_is_empty(const cpulist *set);
/* Whether every CPU of `set` is also in `of`. */
bool cpulist_is_subset(const cpulist *set, const cpulist *of);

/* Writes the canonical form ("0-1,3") into buf, NUL-terminated, as snprintf
 * does: returns the length the whole list needs, truncating to len-1. */
size_t cpulist_format(const cpulist *set, char *buf, size_t len);

#endif
