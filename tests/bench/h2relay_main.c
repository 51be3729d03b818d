/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_main.c: crihook-h2relay, a tiny main around relay/h2relay.h so
 * scripts/bench.sh and tests/e2e/test_h2relay.py can run the relay core on
 * its own (crihookd does not use it yet).
 *
 *   crihook-h2relay --listen unix:PATH --backend unix:PATH [--hold METHOD]...
 *                   [--max-held BYTES] [--max-msg-size BYTES]
 *                   [--preface-timeout-ms MS] [--idle-ms MS]
 *                   [--max-conns N] [--engine terminate|verbatim]
 *                   [--fault steal-uv-reserve]
 *
 * --hold METHOD exercises the interception seam (h2relay.h) with a
 * scripted owner: a stream whose :path is METHOD is intercepted. Its whole
 * request is printed as "held METHOD LEN FIRST16HEX" on stdout; then, by
 * the request message's first bytes:
 *   "refuse..."  refused: FAILED_PRECONDITION "refused by the seam";
 *   "later..."   forwarded 30 ms later, from a timer (a client gone by
 *                then prints "gone METHOD" instead, and nothing is sent);
 *   anything     forwarded at once;
 * a forwarded message is rewritten to "seen:" + the message (a body that
 * is not one whole message goes unchanged). The answer is printed as
 * "answer METHOD GRPC_STATUS LEN" before the client gets it.
 * --max-held bounds a held request or answer (RESOURCE_EXHAUSTED beyond).
 * --max-msg-size makes the relay read the gRPC framing of every stream, as
 * crihookd does (h2r_config.max_msg_size; 0 or absent: it does not).
 * --preface-timeout-ms, --idle-ms and --max-conns set the accept side's
 * bounds (h2r_config; 0 or absent: the relay's defaults). On exit the
 * relay's counters (h2r_stats) go to stderr as one line
 * "counters open=N refused_over_cap=N closed_preface=N closed_idle=N
 * accept_errors=N shed=N".
 * --engine picks the relay's engine (h2r_config.verbatim; default:
 * terminate).
 * --fault steal-uv-reserve (tests only) takes libuv's own reserve
 * descriptor (loop->emfile_fd, used by its EMFILE trick) away before every
 * poll: what a multi-threaded process sees when another thread takes the
 * slot libuv freed, so the relay's own EMFILE handling is what is left.
 * SIGINT/SIGTERM close the relay and exit 0 (so leak checkers see a clean
 * end). Prints "ready" on stdout once listening. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "grpc_frame.h"
#include "h2relay.h"

#define MAX_HOLD 16

typedef struct opts {
  const char *listen, *backend;
  const char *hold[MAX_HOLD];
  int nhold;
  size_t max_held;
  unsigned preface_ms, idle_ms, max_conns, max_msg_size;
  bool steal_uv_reserve;
  bool verbatim;
} opts;

static int route_cb(void *ud, const char *path, size_t len, h2r_route_out *out) {
  (void)len;
  opts *o = ud;
  for (int i = 0; i < o->nhold; i++)
    if (strcmp(o->hold[i], path) == 0) out->intercept = true;
  return 0;
}

/* "seen:" + the message, framed, if body is one whole message. */
static void forward_rewritten(h2r_call *call, const uint8_t *body, size_t len) {
  size_t n;
  const uint8_t *msg = ch_grpc_one_message(body, len, &n);
  if (!msg || body[0] != 0) {
    h2r_call_forward(call, NULL, 0);
    return;
  }
  size_t out_len = CH_GRPC_PREFIX + 5 + n;
  uint8_t *out = malloc(out_len);
  if (!out) abort();
  ch_grpc_frame_put(out, (uint32_t)(5 + n));
  memcpy(out + CH_GRPC_PREFIX, "seen:", 5);
  memcpy(out + CH_GRPC_PREFIX + 5, msg, n);
  h2r_call_forward(call, out, out_len);
  free(out);
}

/* A "later" call: forwarded from a timer, unless its client is gone. */
typedef struct later {
  h2r_call *call;
  uv_timer_t timer;
  uint8_t *body;
  size_t len;
  bool forwarded;
} later;

static void later_free(uv_handle_t *h) {
  later *l = h->data;
  free(l->body);
  free(l);
}

static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  l->forwarded = true;
  forward_rewritten(l->call, l->body, l->len);
}

static void hold_later(h2r_call *call, const uint8_t *body, size_t len) {
  later *l = calloc(1, sizeof *l);
  if (!l || !(l->body = malloc(len ? len : 1))) abort();
  memcpy(l->body, body, len);
  l->len = len;
  l->call = call;
  uv_timer_init(uv_default_loop(), &l->timer);
  l->timer.data = l;
  uv_timer_start(&l->timer, later_fire, 30, 0);
  h2r_call_set_data(call, l);
}

static bool message_starts(const uint8_t *body, size_t len, const char *word) {
  size_t n = strlen(word);
  return len >= 5 + n && memcmp(body + 5, word, n) == 0;
}

static void on_request(void *ud, h2r_call *call, const uint8_t *body, size_t len) {
  (void)ud;
  printf("held %s %zu ", h2r_call_path(call), len);
  for (size_t i = 0; i < len && i < 16; i++) printf("%02x", body[i]);
  printf("\n");
  fflush(stdout);
  if (message_starts(body, len, "refuse"))
    h2r_call_refuse(call, 9, "refused by the seam");
  else if (message_starts(body, len, "later"))
    hold_later(call, body, len);
  else
    forward_rewritten(call, body, len);
}

static void on_answer(void *ud, h2r_call *call, const h2r_answer *a) {
  (void)ud;
  printf("answer %s %d %zu\n", h2r_call_path(call), a->grpc_status, a->len);
  fflush(stdout);
}

static void on_stream_end(void *ud, const h2r_stream_end *e) {
  (void)ud;
  later *l = e->call_data;
  if (!l) return;
  if (!l->forwarded) {
    printf("gone %.*s\n", (int)e->path_len, e->path);
    fflush(stdout);
  }
  uv_close((uv_handle_t *)&l->timer, later_free);
}

static const char *unix_path(const char *arg) {
  return strncmp(arg, "unix:", 5) == 0 ? arg + 5 : NULL;
}

static bool parse_uint(const char *arg, unsigned *out) {
  char *end;
  unsigned long v = strtoul(arg, &end, 10);
  if (!*arg || *end || v > 0xffffffffUL) return false;
  *out = (unsigned)v;
  return true;
}

/* The accept side's bounds and the message bound (h2r_config). */
static bool parse_bound(const char *name, const char *v, opts *o) {
  if (strcmp(name, "--max-msg-size") == 0) return parse_uint(v, &o->max_msg_size);
  if (strcmp(name, "--preface-timeout-ms") == 0) return parse_uint(v, &o->preface_ms);
  if (strcmp(name, "--idle-ms") == 0) return parse_uint(v, &o->idle_ms);
  if (strcmp(name, "--max-conns") == 0) return parse_uint(v, &o->max_conns);
  return false;
}

static int parse(int argc, char **argv, opts *o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *v = argv[i + 1];
    if (strcmp(argv[i], "--listen") == 0)
      o->listen = unix_path(argv[i + 1]);
    else if (strcmp(argv[i], "--backend") == 0)
      o->backend = unix_path(argv[i + 1]);
    else if (strcmp(argv[i], "--hold") == 0 && o->nhold < MAX_HOLD)
      o->hold[o->nhold++] = argv[i + 1];
    else if (strcmp(argv[i], "--max-held") == 0 && atol(argv[i + 1]) > 0)
      o->max_held = (size_t)atol(argv[i + 1]);
    else if (strcmp(argv[i], "--engine") == 0 && strcmp(v, "verbatim") == 0)
      o->verbatim = true;
    else if (strcmp(argv[i], "--engine") == 0 && strcmp(v, "terminate") == 0)
      o->verbatim = false;
    else if (strcmp(argv[i], "--fault") == 0 && strcmp(v, "steal-uv-reserve") == 0)
      o->steal_uv_reserve = true;
    else if (!parse_bound(argv[i], v, o))
      return -1;
  }
  return o->listen && o->backend && argc % 2 == 1 ? 0 : -1;
}

static uv_signal_t sigs[2];
static uv_prepare_t thief;

static void print_counters(const h2r *r) {
  h2r_counters n;
  h2r_stats(r, &n);
  fprintf(stderr,
          "counters open=%" PRIu64 " refused_over_cap=%" PRIu64 " closed_preface=%" PRIu64
          " closed_idle=%" PRIu64 " accept_errors=%" PRIu64 " shed=%" PRIu64 "\n",
          n.open, n.refused_over_cap, n.closed_preface, n.closed_idle, n.accept_errors, n.shed);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  print_counters(h->data);
  h2r_close(h->data);
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&sigs[i], NULL);
  if (uv_is_active((uv_handle_t *)&thief)) uv_close((uv_handle_t *)&thief, NULL);
}

/* --fault steal-uv-reserve: libuv 1.44 keeps loop->emfile_fd open for its
 * EMFILE trick (close it, accept and close what is pending, reopen it) and
 * reopens it in every uv_pipe_init. Before each poll this swaps it for a
 * descriptor number nobody has open: the trick's close then frees no slot,
 * which is its outcome when another thread takes the freed slot first. */
#define STOLEN_FD (1 << 30)

static void steal_uv_reserve(uv_prepare_t *h) {
  if (h->loop->emfile_fd == STOLEN_FD) return;
  if (h->loop->emfile_fd >= 0) close(h->loop->emfile_fd);
  h->loop->emfile_fd = STOLEN_FD;
}

int main(int argc, char **argv) {
  opts o = {0};
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr,
            "usage: %s --listen unix:PATH --backend unix:PATH [--hold METHOD]... "
            "[--max-held BYTES] [--max-msg-size BYTES] [--preface-timeout-ms MS] [--idle-ms MS] "
            "[--max-conns N] "
            "[--engine terminate|verbatim] [--fault steal-uv-reserve]\n",
            argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  h2r_config cfg = {.listen_path = o.listen,
                    .backend_path = o.backend,
                    .route = route_cb,
                    .on_request = on_request,
                    .on_answer = on_answer,
                    .on_stream_end = on_stream_end,
                    .ud = &o,
                    .max_held_bytes = o.max_held,
                    .max_msg_size = o.max_msg_size,
                    .preface_timeout_ms = o.preface_ms,
                    .idle_ms = o.idle_ms,
                    .max_conns = o.max_conns,
                    .verbatim = o.verbatim};
  h2r *r;
  ch_error err;
  if (h2r_start(loop, &cfg, &r, &err) != 0) {
    fprintf(stderr, "crihook-h2relay: %s\n", err.msg);
    return 1;
  }
  for (int i = 0; i < 2; i++) {
    uv_signal_init(loop, &sigs[i]);
    sigs[i].data = r;
    uv_signal_start(&sigs[i], on_signal, i ? SIGTERM : SIGINT);
  }
  if (o.steal_uv_reserve) {
    uv_prepare_init(loop, &thief);
    uv_prepare_start(&thief, steal_uv_reserve);
  }
  printf("ready\n");
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
