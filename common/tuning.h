/* SPDX-License-Identifier: Apache-2.0 */
/* tuning.h: process-wide settings that make grpc core cheaper per call,
 * measured with scripts/bench.sh (see the README's benchmark section). */
#pragma once

/* Call once, early in main(), before grpc_init():
 * - malloc keeps freed memory instead of giving it back to the kernel after
 *   every large message (trim and mmap thresholds raised): returning it cost
 *   an madvise, a TLB shootdown and page faults on the next receive, about
 *   half of crihookd's CPU per ListContainers call;
 * - abseil's mutex deadlock detection, which Debian's build leaves on (it is
 *   a debug aid, built without NDEBUG), is switched off for grpc's locks:
 *   6-8% of crihookd's samples. The symbol carries Debian's inline namespace;
 *   where it is not found nothing happens. */
void ch_process_tune(void);
