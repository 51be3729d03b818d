/* SPDX-License-Identifier: Apache-2.0 */
/* h2relay_main.c: crihook-h2relay, a tiny main around relay/h2relay.h so
 * scripts/bench.sh and tests/e2e/test_h2relay.py can run the relay core on
 * its own (crihookd does not use it yet).
 *
 *   crihook-h2relay --listen unix:PATH --backend unix:PATH [--hold METHOD]...
 *                   [--max-held BYTES]
 *
 * --hold METHOD exercises the hook seam: a stream whose :path is METHOD has
 * its request body held whole; the seam callback prints
 * "held METHOD LEN FIRST16HEX" on stdout before the body is forwarded;
 * --max-held bounds a held body (RESOURCE_EXHAUSTED beyond it).
 * SIGINT/SIGTERM close the relay and exit 0 (so leak checkers see a clean
 * end). Prints "ready" on stdout once listening. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "h2relay.h"

#define MAX_HOLD 16

typedef struct opts {
  const char *listen, *backend;
  const char *hold[MAX_HOLD];
  int nhold;
  size_t max_held;
} opts;

static bool hold_cb(void *ud, const char *path) {
  opts *o = ud;
  for (int i = 0; i < o->nhold; i++)
    if (strcmp(o->hold[i], path) == 0) return true;
  return false;
}

static void held_cb(void *ud, const char *path, const uint8_t *body, size_t len) {
  (void)ud;
  printf("held %s %zu ", path, len);
  for (size_t i = 0; i < len && i < 16; i++) printf("%02x", body[i]);
  printf("\n");
  fflush(stdout);
}

static const char *unix_path(const char *arg) {
  return strncmp(arg, "unix:", 5) == 0 ? arg + 5 : NULL;
}

static int parse(int argc, char **argv, opts *o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--listen") == 0)
      o->listen = unix_path(argv[i + 1]);
    else if (strcmp(argv[i], "--backend") == 0)
      o->backend = unix_path(argv[i + 1]);
    else if (strcmp(argv[i], "--hold") == 0 && o->nhold < MAX_HOLD)
      o->hold[o->nhold++] = argv[i + 1];
    else if (strcmp(argv[i], "--max-held") == 0 && atol(argv[i + 1]) > 0)
      o->max_held = (size_t)atol(argv[i + 1]);
    else
      return -1;
  }
  return o->listen && o->backend && argc % 2 == 1 ? 0 : -1;
}

static uv_signal_t sigs[2];

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  h2r_close(h->data);
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&sigs[i], NULL);
}

int main(int argc, char **argv) {
  opts o = {0};
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr,
            "usage: %s --listen unix:PATH --backend unix:PATH [--hold METHOD]... "
            "[--max-held BYTES]\n",
            argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  h2r_config cfg = {.listen_path = o.listen,
                    .backend_path = o.backend,
                    .on_request_headers = hold_cb,
                    .on_held_body = held_cb,
                    .ud = &o,
                    .max_held_bytes = o.max_held};
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
  printf("ready\n");
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
