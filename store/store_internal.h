/* store_internal.h: what store.c shares with rebuild.c and nothing else.
 *
 * A rebuild fills a fresh, private ch_store with the ordinary put functions
 * and then swaps its tables with the live store's in one step, so readers
 * see either the old content or the new one, never a mix, and a failed
 * rebuild leaves the old content in place. */
#pragma once

#include "store.h"

/* Exchanges the pod and container tables of `store` and `other` under the
 * write lock of `store`; `other` must not be shared with other threads. */
void ch_store_swap_content(ch_store *store, ch_store *other);

/* Moves every pod and container of `other` whose ID `store` lacks into
 * `store`, under its write lock; what `store` has already wins. */
void ch_store_merge_missing(ch_store *store, ch_store *other);
