/* SPDX-License-Identifier: Apache-2.0 */
/* options.h: crihookd's command line.
 *
 * Every flag can also be set by an environment variable (CRIHOOK_LISTEN,
 * CRIHOOK_BACKEND, ...); a flag given on the command line wins. */
#pragma once

#include <stdbool.h>

#include "error.h"
#include "log.h"

#define CH_DEFAULT_LISTEN "unix:///run/crihook/crihook.sock"
#define CH_DEFAULT_HOOK_DIR "/etc/runtime/hookserver.d"
#define CH_DEFAULT_ADMIN "unix:///run/crihook/admin.sock"

typedef struct crihookd_options {
  char listen[256];
  char backend[256];       /* "auto" or an endpoint */
  char image_backend[256]; /* "" = same as backend */
  char hook_dir[256];
  char admin_socket[256];
  int max_msg_size;
  ch_log_level log_level;
  ch_log_format log_format;
  char metrics_address[128]; /* host of --metrics-address; "" = all */
  int metrics_port;          /* 0 = no HTTP metrics listener */
  bool metrics;              /* --metrics on|off */
  int workers;
  bool relay_verbatim; /* --relay verbatim (the default) */
  int shutdown_grace_ms;
  bool help;
  bool version;
} crihookd_options;

/* Fills `opts` from defaults, then the environment, then argv. */
int crihookd_options_parse(crihookd_options *opts, int argc, char **argv, ch_error *err);

/* Parses "16MiB", "16M", "512KiB", "1048576"; -1 with err if malformed. */
int ch_parse_size(const char *text, int *out, ch_error *err);

const char *crihookd_usage(void);
