/* SPDX-License-Identifier: Apache-2.0 */
/* tuning.h: process-wide settings that make a call cheaper, measured with
 * scripts/bench.sh and crihook-bench (see the README's benchmark section).
 * crihookd and the bench client (crihook-bench) call it; of the two
 * settings, the abseil one only acts in a process that loaded grpc core,
 * which crihookd no longer does (it is a no-op there). */
#pragma once

/* Call once, early in main() (before grpc_init() where grpc core is used):
 * - malloc keeps freed memory instead of giving it back to the kernel after
 *   every large message (trim and mmap thresholds raised): returning it cost
 *   an madvise, a TLB shootdown and page faults on the next receive, about
 *   half of crihookd's CPU per ListContainers call;
 * - abseil's mutex deadlock detection, which Debian's build leaves on (a
 *   debug aid; the package is built without NDEBUG), is switched off for
 *   grpc's locks. Measured (Version at concurrency 32 through crihookd, a
 *   release build, December 2026): with it on, 4.7% of crihookd's perf
 *   samples are in it (GraphCycles 3.5%, the rest in Mutex), none with it
 *   off; CPU per call over 20 interleaved pairs of 6 s runs on a shared
 *   2-core VM: median 6.5% lower with it off, each run scattering by
 *   +-20%. Done only through the exact symbol of Debian 12's abseil
 *   (tuning.c says how its signature is pinned); elsewhere nothing happens. */
void ch_process_tune(void);
