/* SPDX-License-Identifier: Apache-2.0 */
/* tag.h: completion-queue tags.
 *
 * A tag given to grpc_call_start_batch is a pointer to a ch_tag embedded in
 * the state it belongs to; the worker that drains the queue calls
 * tag->fn(tag, ok), and the handler finds its state with ch_container_of. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ch_tag ch_tag;
struct ch_tag {
  void (*fn)(ch_tag *self, bool ok);
};

#define ch_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
