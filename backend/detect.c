/* SPDX-License-Identifier: Apache-2.0 */
/* detect.c: the table of backend kinds, their probe, and auto-detection
 * (backend.h, detect.h); and waiting for a runtime that does not answer yet
 * (a node's boot, where containerd is slower than crihookd: exiting would
 * only make systemd restart us, and kubelet, ordered after crihookd, would
 * see a failed unit instead of one still starting). */
#include "detect.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cri.pb-c.h"
#include "cri_client.h"
#include "endpoint.h"
#include "log.h"
#include "notify.h"

/* The known kinds, in auto-detection order. A new kind is one row here. */
const ch_backend_kind *const ch_backend_kinds[] = {
    &ch_backend_containerd,
    &ch_backend_crio,
    &ch_backend_cri_dockerd,
};
const size_t ch_backend_kind_count = sizeof ch_backend_kinds / sizeof ch_backend_kinds[0];

size_t ch_default_candidates(ch_backend_candidate *out, size_t cap) {
  size_t n = 0;
  for (size_t k = 0; k < ch_backend_kind_count; k++)
    for (size_t s = 0; s < ch_backend_kinds[k]->n_sockets && n < cap; s++)
      out[n++] = (ch_backend_candidate){ch_backend_kinds[k]->sockets[s].label,
                                        ch_backend_kinds[k]->sockets[s].path};
  return n;
}

/* ---- the probe ------------------------------------------------------------ */

static void read_version(const Runtime__V1__VersionResponse *v, const char *api,
                         ch_probe_result *out) {
  out->answered = 1;
  snprintf(out->api, sizeof out->api, "%s", api);
  snprintf(out->runtime_name, sizeof out->runtime_name, "%s", v->runtime_name);
  snprintf(out->runtime_version, sizeof out->runtime_version, "%s", v->runtime_version);
  out->kind = ch_backend_kind_of(out->runtime_name);
  snprintf(out->why, sizeof out->why, "answered Version (%s %s, CRI %s)", out->runtime_name,
           out->runtime_version, api);
}

/* One Version call with the CRI client; returns its status. */
static grpc_status_code call_version(const char *path, const char *api, int timeout_ms,
                                     ch_probe_result *out, ch_error *err) {
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  cri_client *c = cri_client_open(path, api, timeout_ms, err);
  if (!c) return status;
  ProtobufCMessage *answer = NULL;
  if (cri_call(c, "Version", NULL, &answer, &status, NULL, 0, err) == 0)
    read_version((const Runtime__V1__VersionResponse *)answer, api, out);
  else
    snprintf(out->why, sizeof out->why, "%.*s", (int)sizeof out->why - 1, err->msg);
  protobuf_c_message_free_unpacked(answer, NULL);
  cri_client_free(c);
  return status;
}

int ch_backend_identify(const char *path, int timeout_ms, ch_probe_result *out, ch_error *err) {
  memset(out, 0, sizeof *out);
  if (call_version(path, "v1", timeout_ms, out, err) == GRPC_STATUS_UNIMPLEMENTED)
    call_version(path, "v1alpha2", timeout_ms, out, err);
  return out->answered ? 0 : -1;
}

void ch_probe_backend(const char *path, int timeout_ms, ch_probe_result *out) {
  memset(out, 0, sizeof *out);
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(out->why, sizeof out->why, "no such file");
    return;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(out->why, sizeof out->why, "not a socket");
    return;
  }
  ch_error ignored;
  (void)ch_backend_identify(path, timeout_ms, out, &ignored);
}

/* ---- auto-detection ------------------------------------------------------- */

int ch_detect_backend(const ch_backend_candidate *list, size_t count, int timeout_ms,
                      ch_probe_result *chosen, ch_error *err) {
  char tried[sizeof err->msg] = "";
  size_t used = 0;
  for (size_t i = 0; i < count; i++) {
    ch_probe_result r;
    ch_probe_backend(list[i].path, timeout_ms, &r);
    if (r.answered) {
      *chosen = r;
      return (int)i;
    }
    used += (size_t)snprintf(tried + used, used < sizeof tried ? sizeof tried - used : 0,
                             "%s%s %s (%s)", i ? "; " : "", list[i].name, list[i].path, r.why);
    if (used >= sizeof tried) used = sizeof tried - 1;
  }
  return ch_fail(err, "no CRI runtime answered; tried %s", count ? tried : "nothing");
}

static void sleep_seconds(int s) {
  struct timespec ts = {.tv_sec = s};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Tells systemd (if it started us) what we are waiting for; best effort. */
static void notify_waiting(const char *why) {
  char state[sizeof((ch_error *)0)->msg + 64];
  snprintf(state, sizeof state, "STATUS=waiting for a CRI runtime: %s", why);
  ch_error ignored;
  (void)ch_sd_notify(state, &ignored);
}

int ch_detect_backend_wait(const ch_backend_candidate *list, size_t count, int timeout_ms,
                           ch_probe_result *chosen) {
  int delay = 1;
  for (unsigned round = 1;; round++) {
    ch_error err;
    int index = ch_detect_backend(list, count, timeout_ms, chosen, &err);
    if (index >= 0) return index;
    ch_warn("detect",
            "waiting for a CRI runtime round=%u next_probe_in=%ds (not serving until one "
            "answers): %s",
            round, delay, err.msg);
    notify_waiting(err.msg);
    sleep_seconds(delay);
    delay = delay * 2 > CH_DETECT_MAX_DELAY_S ? CH_DETECT_MAX_DELAY_S : delay * 2;
  }
}
