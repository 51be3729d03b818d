/* SPDX-License-Identifier: Apache-2.0 */
/* answer_budget.h: how many bytes of answers crihookd may hold for clients
 * that have not read them yet, across all workers.
 *
 * A client that sends calls and never reads the answers makes grpc keep
 * every answer in crihookd's memory until the call ends (HTTP/2 flow
 * control lets only 64 KiB through): 40 such clients with multi-MiB
 * ListContainers answers took 330 MB. The relay (relay.c) takes an answer's
 * size from this budget before it sends it to the client and gives it back
 * once the answer is written (or the call ends):
 * - an answer that does not fit fails its call with RESOURCE_EXHAUSTED at
 *   once (the backend's answer is dropped);
 * - answers below CH_ANSWER_SMALL_BYTES are never counted (they fit in the
 *   flow-control windows and socket buffers), so small calls always work;
 * - while more than half the budget is held, a call whose answer has been
 *   waiting for the client for CH_ANSWER_STALL_MS is cut with
 *   RESOURCE_EXHAUSTED, so slow readers cannot keep the budget from others
 *   for long (a client that reads takes milliseconds for 16 MiB).
 * One atomic counter: no lock on the data plane. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CH_ANSWER_BUDGET_BYTES ((size_t)128 << 20)
#define CH_ANSWER_SMALL_BYTES ((size_t)64 << 10)
#define CH_ANSWER_STALL_MS 10000

/* Takes `bytes` (false, and nothing taken, if they do not fit). */
bool ch_answer_budget_take(size_t bytes);

void ch_answer_budget_give(size_t bytes);

/* More than half the budget is held. */
bool ch_answer_budget_tight(void);
