/* SPDX-License-Identifier: Apache-2.0 */
/* admin_docs.h: the JSON documents the admin socket serves (/plugins,
 * /status, /healthz), built from the registry, the store, the health
 * report and the data plane's counters. Pure functions of their inputs:
 * the transport is admin.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "health.h"
#include "registry.h"
#include "store.h"

typedef struct ch_admin_view {
  ch_registry_slot *registry;
  ch_store *store;
  const ch_backend_info *backend;
  const char *listen; /* the CRI socket's path */
  int in_flight;      /* -1 if the data plane has not started */
} ch_admin_view;

/* The registry: plugins with their counters, and the rejected files. */
json_t *ch_admin_plugins_json(ch_registry_slot *registry);

/* Ready = the backend answered the probe and the store is rebuilt. */
bool ch_admin_ready(const ch_health_report *report);

/* {"ready": bool, "backend": ..., "store": ...}: the answer of /healthz. */
json_t *ch_admin_healthz_json(const ch_health_report *report);

/* Everything `crihookctl status` shows. */
json_t *ch_admin_status_json(const ch_admin_view *view, const ch_health_report *report);
