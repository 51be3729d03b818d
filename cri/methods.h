/* SPDX-License-Identifier: Apache-2.0 */
/* methods.h: what the proxy knows about a method path without decoding it.
 *
 * The data plane forwards any method. It only needs to know two things:
 * - whether the method is a known unary CRI method, which gets the short
 *   four-event relay (see relay.c); everything else, including methods this
 *   build has never heard of, gets the generic streaming relay, which is
 *   correct for every call shape; a known streaming method is ended as soon
 *   as crihookd drains, where an unknown one gets the grace period;
 * - whether the method belongs to an ImageService, which is routed to the
 *   image backend. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ch_method_info {
  bool known_unary;
  bool known_streaming; /* e.g. GetContainerEvents: ended at once on drain */
  bool image_service;
  const char *cri_name; /* "RunPodSandbox" (points into the path) for CRI methods */
  size_t cri_name_len;
} ch_method_info;

ch_method_info ch_method_classify(const char *path, size_t len);
