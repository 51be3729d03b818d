/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_events.c: events: streams GetContainerEvents, one compact JSON line per
 * event, until SIGINT/SIGTERM or the end of the stream. A runtime without
 * the method (containerd before 1.7) answers UNIMPLEMENTED: printed as any
 * failed call, exit 1. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cri.pb-c.h"
#include "ctl.h"
#include "pbjson.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static int should_stop(void *user) {
  (void)user;
  return interrupted;
}

static int print_event(const ProtobufCMessage *msg, void *user) {
  (void)user;
  json_t *json = ch_pb_to_json(msg);
  ctl_print_json(json, true);
  json_decref(json);
  fflush(stdout);
  return ferror(stdout) ? 1 : 0; /* a closed pipe ends the stream */
}

static void catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* The stream itself has no deadline (it is open-ended); the global timeout
 * still bounds how long a missing or silent backend can hold the start,
 * through the channel's connect behaviour (fails fast when nothing listens). */
int ctl_cmd_events(ctl_ctx *ctx, int argc, char **argv) {
  if (argc != 1) return ctl_usage(argv[0]);
  catch_signals();
  Runtime__V1__GetEventsRequest req = RUNTIME__V1__GET_EVENTS_REQUEST__INIT;
  cri_stream_handler handler = {.on_message = print_event, .should_stop = should_stop};
  ch_error err;
  if (cri_call_stream(ctx->client, "GetContainerEvents", &req.base, 0, &handler, NULL, NULL, 0,
                      &err) < 0)
    return ctl_fail("%s", err.msg);
  return CTL_EXIT_OK;
}
