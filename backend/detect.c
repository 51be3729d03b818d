/* detect.c: backend auto-detection (detect.h), and waiting for a runtime
 * that does not answer yet (a node's boot, where containerd is slower than
 * crihookd: exiting would only make systemd restart us, and kubelet, ordered
 * after crihookd, would see a failed unit instead of one still starting). */
#include "detect.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cri.pb-c.h"
#include "endpoint.h"
#include "grpc_util.h"
#include "log.h"
#include "notify.h"

const ch_backend_candidate ch_default_candidates[] = {
    {"containerd", "/run/containerd/containerd.sock"},
    {"k3s", "/run/k3s/containerd/containerd.sock"},
    {"cri-o", "/run/crio/crio.sock"},
    {"cri-dockerd", "/run/cri-dockerd.sock"},
};
const size_t ch_default_candidate_count =
    sizeof ch_default_candidates / sizeof ch_default_candidates[0];

static void read_version(const ch_unary_result *res, ch_probe_result *out) {
  Runtime__V1__VersionResponse *v =
      runtime__v1__version_response__unpack(NULL, res->response_len, res->response);
  if (!v) return;
  snprintf(out->runtime_name, sizeof out->runtime_name, "%s", v->runtime_name);
  snprintf(out->runtime_version, sizeof out->runtime_version, "%s", v->runtime_version);
  runtime__v1__version_response__free_unpacked(v, NULL);
}

/* One Version call; returns the status, or -1 if the call could not be made. */
static int call_version(grpc_channel *ch, const char *api, int timeout_ms, ch_probe_result *out) {
  char method[64];
  snprintf(method, sizeof method, "/runtime.%s.RuntimeService/Version", api);
  ch_unary_result res;
  ch_error err;
  if (ch_unary_call(ch, method, "", 0, timeout_ms, NULL, 0, &res, &err) != 0) {
    snprintf(out->why, sizeof out->why, "%s", err.msg);
    return -1;
  }
  if (res.status == GRPC_STATUS_OK) {
    out->answered = 1;
    snprintf(out->api, sizeof out->api, "%s", api);
    read_version(&res, out);
    snprintf(out->why, sizeof out->why, "answered Version (%s %s, CRI %s)", out->runtime_name,
             out->runtime_version, api);
  } else {
    snprintf(out->why, sizeof out->why, "Version: %s: %s", ch_status_name(res.status), res.details);
  }
  ch_unary_result_clear(&res);
  return (int)res.status;
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
  char target[CH_PATH_MAX + 8];
  snprintf(target, sizeof target, "unix:%s", path);
  grpc_channel *ch = ch_channel_open(target, NULL);
  int status = call_version(ch, "v1", timeout_ms, out);
  if (status == GRPC_STATUS_UNIMPLEMENTED) call_version(ch, "v1alpha2", timeout_ms, out);
  grpc_channel_destroy(ch);
}

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
