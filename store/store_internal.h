/* SPDX-License-Identifier: Apache-2.0 */
/* store_internal.h: what store.c shares with rebuild.c and nothing else.
 *
 * A rebuild fills a fresh, private ch_store with the ordinary put functions
 * and then swaps its tables with the live store's in one step, so readers
 * see either the old content or the new one, never a mix, and a failed
 * rebuild leaves the old content in place. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Exchanges the pod and container tables of `store` and `other` under the
 * write lock of `store`; `other` must not be shared with other threads. */
void ch_store_swap_content(ch_store *store, ch_store *other);

/* Brings `store` in line with `fresh` (what the runtime listed after
 * ch_store_sync_begin returned `mark`), under its write lock: moves in every
 * pod and container of `fresh` that `store` lacks, unless it was removed
 * since `mark`; with `drop`, also drops those `store` had before `mark` and
 * `fresh` lacks (the runtime no longer has them). What both have stays as
 * `store` has it (written by the calls crihookd served). `fresh` must not be
 * shared with other threads. */
void ch_store_sync_install(ch_store *store, ch_store *fresh, uint64_t mark, bool drop);
