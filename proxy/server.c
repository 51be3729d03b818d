/* SPDX-License-Identifier: Apache-2.0 */
/* server.c: the interception stage's grpc server, its worker threads and
 * the drain (server.h).
 *
 * Start: create the grpc server with the message and metadata limits and
 * the connection bounds (preface timeout, idle timeout), register one
 * completion queue per worker, start, keep a few accepts outstanding on
 * every queue, start the threads. It has no socket: the relay hands it one
 * end of a socketpair per client connection (ch_proxy_add_fd).
 *
 * Stop (ch_proxy_drain) comes after the relay in front has drained and
 * closed its connections (dataplane.c): the grace period, the linger and
 * the refusal of new calls happen there, once, for every call. What is left
 * here is the end, at once, in the only order grpc core accepts without
 * hanging or asserting: no connection is added and every new call is
 * refused; shutdown_and_notify, cancel every call (this also closes idle
 * connections), the workers cancel their hook calls (which have no parent
 * call grpc could cancel), wait for the shutdown tag, destroy the server,
 * wait for every relay to be freed, destroy the channel, shut down and
 * drain the queues, join the threads. Nothing in it waits for a peer. */
#include "server.h"

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "grpc_util.h"
#include "log.h"
#include "worker.h"

#define ACCEPTS_PER_WORKER 8
#define WORKER_TICK_MS 100
/* A connection must finish the HTTP/2 preface and SETTINGS this fast, and is
 * closed (GOAWAY) after this long without a call: neither may hold an fd for
 * good (kubelet's own connection is never idle that long, and reconnects). */
#define PREFACE_TIMEOUT_MS 10000
#define CONNECTION_IDLE_MS (5 * 60 * 1000)

typedef struct ch_proxy_full {
  ch_proxy shared;             /* first: workers see only this part */
  pthread_mutex_t server_lock; /* guards shared.server for accepts during the drain */
} ch_proxy_full;

/* Each tick of a worker: once forced, cancel the worker's hook
 * calls and backend calls (once: after that no new hook call starts, and a
 * new relay is refused). */
static void drain_tick(ch_worker *w) {
  if (!atomic_load(&w->proxy->forced) || w->cancelled) return;
  w->cancelled = true;
  ch_worker_cancel_backend_calls(w);
  int n = ch_dispatch_cancel_all();
  if (n > 0)
    ch_info("proxy", "hook calls cancelled by the shutdown worker=%d calls=%d", w->index, n);
}

static void *worker_main(void *arg) {
  ch_worker *w = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, ch_deadline_ms(WORKER_TICK_MS), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) {
      ch_tag *tag = ev.tag;
      tag->fn(tag, ev.success != 0);
    }
    ch_worker_cut_stalled(w);
    drain_tick(w);
  }
  return NULL;
}

static grpc_server *create_server(int max_msg) {
  grpc_arg args[] = {
      ch_arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_msg),
      ch_arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_msg),
      ch_arg_int(GRPC_ARG_MAX_METADATA_SIZE, CH_MAX_METADATA),
      ch_arg_int(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, PREFACE_TIMEOUT_MS),
      ch_arg_int(GRPC_ARG_MAX_CONNECTION_IDLE_MS, CONNECTION_IDLE_MS),
  };
  grpc_channel_args server_args = {.num_args = sizeof args / sizeof args[0], .args = args};
  return grpc_server_create(&server_args, NULL);
}

static void destroy_queue(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

static void free_unstarted(ch_proxy_full *full) {
  ch_proxy *p = &full->shared;
  if (p->server) grpc_server_destroy(p->server);
  for (int i = 0; i < p->worker_count; i++)
    if (p->workers[i].cq) destroy_queue(p->workers[i].cq);
  free(p->workers);
  pthread_mutex_destroy(&full->server_lock);
  free(full);
}

static void start_workers(ch_proxy *p) {
  for (int i = 0; i < p->worker_count; i++) {
    ch_worker *w = &p->workers[i];
    for (int k = 0; k < ACCEPTS_PER_WORKER; k++) ch_relay_accept_next(w);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      ch_error_log("proxy", "cannot start worker thread %d", i);
      abort(); /* a worker's queue with no thread would wedge the drain */
    }
    char name[16];
    snprintf(name, sizeof name, "ch-hooks-%d", i);
    pthread_setname_np(w->thread, name); /* for top -H, gdb, and the stall test */
  }
}

void ch_proxy_config_release(ch_proxy_config *config) {
  if (config->backend) grpc_channel_destroy(config->backend);
  config->backend = NULL;
}

int ch_proxy_start(const ch_proxy_config *config, ch_proxy **out, ch_error *err) {
  ch_proxy_config channels = *config;
  ch_proxy_full *full = calloc(1, sizeof *full);
  if (!full) {
    ch_proxy_config_release(&channels);
    return ch_fail(err, "out of memory");
  }
  ch_proxy *p = &full->shared;
  pthread_mutex_init(&full->server_lock, NULL);
  p->worker_count = config->workers > 0 ? config->workers : 1;
  p->workers = calloc((size_t)p->worker_count, sizeof *p->workers);
  p->server = create_server(config->max_msg_size);
  for (int i = 0; p->workers && i < p->worker_count; i++) {
    p->workers[i] = (ch_worker){.proxy = p, .index = i};
    p->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(p->server, p->workers[i].cq, NULL);
  }
  if (!p->workers) {
    free_unstarted(full);
    ch_proxy_config_release(&channels);
    return ch_fail(err, "out of memory");
  }
  p->backend = config->backend;
  p->registry = config->registry;
  p->store = config->store;
  grpc_server_start(p->server);
  start_workers(p);
  *out = p;
  return 0;
}

int ch_proxy_add_fd(ch_proxy *p, int fd) {
  ch_proxy_full *full = (ch_proxy_full *)p;
  pthread_mutex_lock(&full->server_lock);
  bool open = p->server && !atomic_load(&p->shut);
  if (open) {
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    grpc_server_add_channel_from_fd(p->server, fd, creds);
    grpc_server_credentials_release(creds);
  }
  pthread_mutex_unlock(&full->server_lock);
  if (!open) close(fd);
  return open ? 0 : -1;
}

static void wait_for_relays(ch_proxy *p) {
  for (int waited_ms = 0; atomic_load(&p->live_relays) > 0; waited_ms += 10) {
    if (waited_ms > 0 && waited_ms % 2000 == 0)
      ch_warn("proxy", "waiting for calls to end live=%d", atomic_load(&p->live_relays));
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
}

/* The grpc part of the end: nothing in it waits for a peer. */
static void end_server(ch_proxy_full *full) {
  ch_proxy *p = &full->shared;
  grpc_completion_queue *done = grpc_completion_queue_create_for_pluck(NULL);
  pthread_mutex_lock(&full->server_lock);
  atomic_store(&p->shut, true); /* new calls are refused, no accept is re-armed */
  grpc_server_shutdown_and_notify(p->server, done, p);
  grpc_server_cancel_all_calls(p->server); /* and closes every connection */
  pthread_mutex_unlock(&full->server_lock);
  atomic_store(&p->forced, true); /* the workers cancel their hook calls */
  grpc_completion_queue_pluck(done, p, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  pthread_mutex_lock(&full->server_lock);
  grpc_server_destroy(p->server);
  p->server = NULL;
  pthread_mutex_unlock(&full->server_lock);
  grpc_completion_queue_shutdown(done);
  grpc_completion_queue_pluck(done, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  grpc_completion_queue_destroy(done);
}

void ch_proxy_accept_again(ch_worker *w) {
  ch_proxy_full *full = (ch_proxy_full *)w->proxy;
  pthread_mutex_lock(&full->server_lock);
  if (w->proxy->server && !atomic_load(&w->proxy->shut)) ch_relay_accept_next(w);
  pthread_mutex_unlock(&full->server_lock);
}

void ch_proxy_drain(ch_proxy *p) {
  end_server((ch_proxy_full *)p);
  wait_for_relays(p);
  if (p->backend) grpc_channel_destroy(p->backend);
  p->backend = NULL;
  for (int i = 0; i < p->worker_count; i++) grpc_completion_queue_shutdown(p->workers[i].cq);
  for (int i = 0; i < p->worker_count; i++) {
    pthread_join(p->workers[i].thread, NULL);
    grpc_completion_queue_destroy(p->workers[i].cq);
  }
}

void ch_proxy_free(ch_proxy *p) {
  ch_proxy_full *full = (ch_proxy_full *)p;
  free(p->workers);
  pthread_mutex_destroy(&full->server_lock);
  free(full);
}
