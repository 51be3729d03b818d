/* SPDX-License-Identifier: Apache-2.0 */
/* worker.h: the data plane's threads and the state they share.
 *
 * Each worker thread owns one completion queue. Every call it accepts, the
 * backend call paired with it, and (later) the hook calls made for it are
 * bound to that queue, so one call's state is only ever touched by one
 * thread and the hot path takes no locks.
 *
 * A completion-queue tag is a pointer to a ch_tag embedded in the state it
 * belongs to; the worker calls tag->fn(tag, ok) for each event. */
#pragma once

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "registry.h"
#include "store.h"
#include "tag.h"

typedef struct ch_relay ch_relay;
typedef struct ch_proxy ch_proxy;

typedef struct ch_worker {
  ch_proxy *proxy;
  int index;
  grpc_completion_queue *cq;
  pthread_t thread;
  ch_relay *relays;  /* every live relay of this worker (relay.c) */
  bool cancelled;    /* its calls were cancelled by the drain's end (server.c) */
  ch_relay *holders; /* relays holding answer bytes (answer_budget.h) */
  gpr_timespec swept_at;
} ch_worker;

/* Shared by all workers; owned by the proxy (server.c). */
struct ch_proxy {
  grpc_server *server;
  grpc_channel *backend;
  ch_registry_slot *registry; /* plugins; not owned */
  ch_store *store;            /* pod/container metadata; not owned */
  ch_worker *workers;
  int worker_count;
  atomic_bool shut;       /* the stage is ending: new calls are refused, none accepted */
  atomic_bool forced;     /* after cancel_all_calls: hook and backend calls are cancelled */
  atomic_int live_relays; /* relays allocated and not yet freed */
};

/* Requests one more incoming call on the worker's queue (relay.c). */
void ch_relay_accept_next(ch_worker *w);

/* Replaces the accept a call just used, under the lock that guards the
 * server's end (the drain may be destroying it on another thread); a no-op
 * once the stage is shut (server.c). */
void ch_proxy_accept_again(ch_worker *w);

/* Cancels the backend call of every relay of the worker: cancelling the
 * server's calls does not reach them (grpc core does not propagate
 * grpc_server_cancel_all_calls to child calls), and a runtime that never
 * answers would otherwise hold the drain until the call's deadline
 * (kubelet's is 2 minutes) (relay.c). */
void ch_worker_cancel_backend_calls(ch_worker *w);

/* Cuts the worker's calls whose answer has waited for the client too long
 * while the answer budget is tight; cheap enough for every event, it looks
 * at most every 100 ms (relay.c). */
void ch_worker_cut_stalled(ch_worker *w);
