/* SPDX-License-Identifier: Apache-2.0 */
/* hooked.c: one hooked call from the relay's hold of its request to the
 * end of its Post hooks (hooked.h).
 *
 * Why the Post phase starts from a timer: the relay reports a stream's end
 * from inside its own teardown (a connection closing frees its streams one
 * by one), and a forward or a refusal can end the stream from inside the
 * Pre hooks' resume. Starting the Post hooks, and freeing the call, on the
 * loop's next turn keeps both out of those call stacks. */
#include "hooked.h"

#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"
#include "log.h"
#include "methods.h"

typedef struct hooked_call {
  ch_hooked_env *env;
  h2r_call *call; /* NULL once the relay's stream ended */
  ch_intercept *ic;
  bool resumed; /* the Pre hooks are done */
  h2r_stream_end end;
  char *path;    /* end.path's copy */
  char *message; /* end.grpc_message's copy */
  ch_hooked_record_fn record;
  uv_timer_t later; /* the Post phase; its close frees the call */
} hooked_call;

/* ---- gRPC framing ---- */

/* `msg` with its prefix, malloc'd. */
static uint8_t *framed(const uint8_t *msg, size_t n) {
  uint8_t *out = malloc(n + CH_GRPC_PREFIX);
  if (!out) return NULL;
  ch_grpc_frame_put(out, (uint32_t)n);
  memcpy(out + CH_GRPC_PREFIX, msg, n);
  return out;
}

/* ---- the end ---- */

static void call_freed(uv_handle_t *h) {
  hooked_call *hc = h->data;
  hc->env->live--;
  free(hc->path);
  free(hc->message);
  free(hc);
}

static void post_done(void *owner) {
  hooked_call *hc = owner;
  if (hc->record) hc->record(&hc->end, hc->ic);
  ch_intercept_free(hc->ic);
  hc->ic = NULL;
  uv_close((uv_handle_t *)&hc->later, call_freed);
}

static void post_start(uv_timer_t *t) {
  hooked_call *hc = t->data;
  if (hc->ic)
    ch_intercept_post(hc->ic, post_done);
  else
    post_done(hc);
}

void ch_hooked_end(const h2r_stream_end *end, ch_hooked_record_fn record) {
  hooked_call *hc = end->call_data;
  hc->end = *end;
  hc->path = strndup(end->path, end->path_len);
  hc->end.path = hc->path ? hc->path : "";
  hc->end.path_len = hc->path ? end->path_len : 0;
  hc->message = end->grpc_message ? strndup(end->grpc_message, end->grpc_message_len) : NULL;
  hc->end.grpc_message = hc->message; /* the relay's goes with the stream */
  hc->end.grpc_message_len = hc->message ? end->grpc_message_len : 0;
  hc->record = record;
  hc->call = NULL;
  if (hc->resumed) uv_timer_start(&hc->later, post_start, 0, 0);
}

/* ---- the Pre hooks' end ---- */

static void forward_changed(hooked_call *hc) {
  size_t n;
  uint8_t *changed = ch_intercept_request(hc->ic, &n);
  if (!changed) {
    h2r_call_forward(hc->call, NULL, 0);
    return;
  }
  uint8_t *body = framed(changed, n);
  free(changed);
  if (body)
    h2r_call_forward(hc->call, body, n + CH_GRPC_PREFIX);
  else
    h2r_call_refuse(hc->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "crihookd: out of memory");
  free(body);
}

static void pre_done(void *owner) {
  hooked_call *hc = owner;
  hc->resumed = true;
  if (!hc->call) { /* the client left while the hooks ran */
    uv_timer_start(&hc->later, post_start, 0, 0);
    return;
  }
  grpc_status_code code;
  const char *message;
  if (ch_intercept_rejected(hc->ic, &code, &message))
    h2r_call_refuse(hc->call, (int)code, message);
  else
    forward_changed(hc);
}

/* ---- the request and the answer ---- */

static ch_intercept_kind kind_of(const char *path) {
  ch_method_info info = ch_method_classify(path, strlen(path));
  return info.known_unary ? ch_intercept_kind_of(info.cri_name, info.cri_name_len)
                          : CH_INTERCEPT_NONE;
}

static hooked_call *call_new(ch_hooked_env *env, h2r_call *call) {
  hooked_call *hc = calloc(1, sizeof *hc);
  if (!hc) return NULL;
  env->live++;
  hc->env = env;
  hc->call = call;
  uv_timer_init(env->loop, &hc->later);
  hc->later.data = hc;
  h2r_call_set_data(call, hc);
  return hc;
}

void ch_hooked_request(ch_hooked_env *env, h2r_call *call, const uint8_t *body, size_t len) {
  const char *path = h2r_call_path(call);
  ch_intercept_kind kind = kind_of(path);
  size_t n = 0;
  /* a compressed message is taken as it is: it will not decode */
  const uint8_t *msg = ch_grpc_one_message(body, len, &n);
  if (!msg) {
    ch_info("hooked", "request message missing or truncated method=%s bytes=%zu", path, len);
    h2r_call_refuse(call, GRPC_STATUS_INTERNAL, "crihookd: request message missing or truncated");
    return;
  }
  hooked_call *hc = kind != CH_INTERCEPT_NONE ? call_new(env, call) : NULL;
  if (!hc) { /* not hooked after all, or out of memory: untouched */
    h2r_call_forward(call, NULL, 0);
    return;
  }
  ch_intercept_env ie = {.loop = env->loop,
                         .conns = env->conns,
                         .registry = env->registry,
                         .store = env->store,
                         .backend_path = env->backend_path,
                         .method = path,
                         .method_len = strlen(path)};
  if (ch_intercept_begin(kind, &ie, msg, n, h2r_call_deadline_ns(call), pre_done, hc, &hc->ic) !=
      0) { /* out of memory: forwarded untouched, nothing recorded */
    ch_intercept_free(hc->ic);
    hc->ic = NULL;
    hc->resumed = true;
    h2r_call_forward(call, NULL, 0);
  }
}

void ch_hooked_answer(h2r_call *call, const h2r_answer *a) {
  hooked_call *hc = h2r_call_data(call);
  if (!hc || !hc->ic) return;
  grpc_status_code status =
      a->grpc_status >= 0 ? (grpc_status_code)a->grpc_status : GRPC_STATUS_UNKNOWN;
  size_t n = 0;
  const uint8_t *msg = status == GRPC_STATUS_OK ? ch_grpc_one_message(a->body, a->len, &n) : NULL;
  if (status == GRPC_STATUS_OK && (!msg || a->body[0] != 0)) {
    ch_warn("hooked", "answer is not one uncompressed message; the store learns nothing method=%s",
            h2r_call_path(call));
    msg = NULL;
    n = 0;
  }
  ch_intercept_record(hc->ic, status, msg, n); /* before the client sees the answer */
}
