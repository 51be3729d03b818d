/* SPDX-License-Identifier: Apache-2.0 */
/* answer_budget.c: see answer_budget.h. */
#include "answer_budget.h"

#include <stdatomic.h>

static atomic_size_t held;

bool ch_answer_budget_take(size_t bytes) {
  size_t before = atomic_fetch_add(&held, bytes);
  if (before + bytes <= CH_ANSWER_BUDGET_BYTES) return true;
  atomic_fetch_sub(&held, bytes);
  return false;
}

void ch_answer_budget_give(size_t bytes) { atomic_fetch_sub(&held, bytes); }

bool ch_answer_budget_tight(void) { return atomic_load(&held) > CH_ANSWER_BUDGET_BYTES / 2; }
