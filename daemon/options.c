/* SPDX-License-Identifier: Apache-2.0 */
/* options.c: defaults < environment < flags (options.h). The flags are
 * parsed first and the environment fills only what they left unset. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grpc_util.h"

enum {
  OPT_LISTEN = 1,
  OPT_BACKEND,
  OPT_IMAGE_BACKEND,
  OPT_HOOK_DIR,
  OPT_MAX_MSG,
  OPT_LOG_LEVEL,
  OPT_WORKERS,
  OPT_GRACE,
  OPT_ADMIN,
  OPT_LOG_FORMAT,
  OPT_METRICS_ADDRESS,
  OPT_METRICS,
  OPT_RELAY
};

typedef struct option_spec {
  const char *flag;
  const char *env;
  int id;
} option_spec;

static const option_spec specs[] = {
    {"listen", "CRIHOOK_LISTEN", OPT_LISTEN},
    {"backend", "CRIHOOK_BACKEND", OPT_BACKEND},
    {"image-backend", "CRIHOOK_IMAGE_BACKEND", OPT_IMAGE_BACKEND},
    {"hook-dir", "CRIHOOK_HOOK_DIR", OPT_HOOK_DIR},
    {"max-msg-size", "CRIHOOK_MAX_MSG_SIZE", OPT_MAX_MSG},
    {"log-level", "CRIHOOK_LOG_LEVEL", OPT_LOG_LEVEL},
    {"workers", "CRIHOOK_WORKERS", OPT_WORKERS},
    {"shutdown-grace", "CRIHOOK_SHUTDOWN_GRACE", OPT_GRACE},
    {"admin-socket", "CRIHOOK_ADMIN_SOCKET", OPT_ADMIN},
    {"log-format", "CRIHOOK_LOG_FORMAT", OPT_LOG_FORMAT},
    {"metrics-address", "CRIHOOK_METRICS_ADDRESS", OPT_METRICS_ADDRESS},
    {"metrics", "CRIHOOK_METRICS", OPT_METRICS},
    {"relay", "CRIHOOK_RELAY", OPT_RELAY},
};
#define SPEC_COUNT (sizeof specs / sizeof specs[0])

const char *crihookd_usage(void) {
  return "usage: crihookd [options]\n"
         "  --listen ENDPOINT        CRI socket to serve (default " CH_DEFAULT_LISTEN
         ")\n"
         "  --backend ENDPOINT|auto  runtime to forward to (default auto: containerd, k3s,\n"
         "                           CRI-O, cri-dockerd, the first that answers Version)\n"
         "  --image-backend ENDPOINT ImageService backend (default: same as --backend)\n"
         "  --hook-dir DIR           plugin registrations (default " CH_DEFAULT_HOOK_DIR
         ")\n"
         "  --max-msg-size SIZE      largest message in either direction (default 16MiB)\n"
         "  --log-level LEVEL        debug, info, warn or error (default info)\n"
         "  --log-format FORMAT      text or json: one JSON object per line (default text)\n"
         "  --workers N              data-plane threads (default 1)\n"
         "  --relay verbatim|terminate  how calls are relayed: frames passed on as they\n"
         "                           come, or HTTP/2 ended on both sides (default\n"
         "                           verbatim; terminate where --image-backend differs)\n"
         "  --shutdown-grace MS      on SIGTERM, how long in-flight calls may finish (default "
         "5000)\n"
         "  --admin-socket ENDPOINT  crihookctl's socket (default " CH_DEFAULT_ADMIN
         ")\n"
         "  --metrics-address ADDR   also serve /metrics and /healthz over HTTP on TCP\n"
         "                           ADDR (HOST:PORT, e.g. 127.0.0.1:9464; default: off)\n"
         "  --metrics on|off         record metrics (default on)\n"
         "  --help, --version\n"
         "Each option may also be set by its environment variable, e.g. CRIHOOK_LISTEN;\n"
         "the command line wins.\n";
}

int ch_parse_size(const char *text, int *out, ch_error *err) {
  errno = 0;
  char *end = NULL;
  long long value = strtoll(text, &end, 10);
  if (end == text || errno != 0 || value <= 0) return ch_fail(err, "invalid size \"%s\"", text);
  while (isspace((unsigned char)*end)) end++;
  long long unit = 1;
  if (*end) {
    if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib"))
      unit = 1024;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib"))
      unit = 1024 * 1024;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib"))
      unit = 1024LL * 1024 * 1024;
    else
      return ch_fail(err, "invalid size \"%s\": unknown unit \"%s\"", text, end);
  }
  if (value > INT_MAX / unit) return ch_fail(err, "size \"%s\" is too large (max 2GiB-1)", text);
  *out = (int)(value * unit);
  return 0;
}

static int parse_int(const char *text, int min, int max, int *out, ch_error *err) {
  errno = 0;
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end || errno != 0 || value < min || value > max)
    return ch_fail(err, "invalid number \"%s\" (expected %d..%d)", text, min, max);
  *out = (int)value;
  return 0;
}

static int copy_text(char *dst, size_t len, const char *value, ch_error *err) {
  if (strlen(value) >= len) return ch_fail(err, "value too long: \"%s\"", value);
  snprintf(dst, len, "%s", value);
  return 0;
}

/* "on"/"off" (also true/false, 1/0). */
static int parse_on_off(const char *text, bool *out, ch_error *err) {
  if (!strcasecmp(text, "on") || !strcasecmp(text, "true") || !strcmp(text, "1"))
    *out = true;
  else if (!strcasecmp(text, "off") || !strcasecmp(text, "false") || !strcmp(text, "0"))
    *out = false;
  else
    return ch_fail(err, "expected on or off, not \"%s\"", text);
  return 0;
}

/* "HOST:PORT" or "[V6]:PORT"; HOST may be empty (all addresses). */
static int parse_host_port(const char *text, char *host, size_t len, int *port, ch_error *err) {
  const char *colon = strrchr(text, ':');
  if (!colon) return ch_fail(err, "expected HOST:PORT, not \"%s\"", text);
  const char *h = text;
  size_t hlen = (size_t)(colon - text);
  if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  if (hlen >= len) return ch_fail(err, "host too long in \"%s\"", text);
  if (parse_int(colon + 1, 1, 65535, port, err) != 0) return ch_wrap(err, "port of \"%s\"", text);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  return 0;
}

static int apply(crihookd_options *o, int id, const char *value, ch_error *err) {
  switch (id) {
    case OPT_LISTEN:
      return copy_text(o->listen, sizeof o->listen, value, err);
    case OPT_BACKEND:
      return copy_text(o->backend, sizeof o->backend, value, err);
    case OPT_IMAGE_BACKEND:
      return copy_text(o->image_backend, sizeof o->image_backend, value, err);
    case OPT_ADMIN:
      return copy_text(o->admin_socket, sizeof o->admin_socket, value, err);
    case OPT_HOOK_DIR:
      return copy_text(o->hook_dir, sizeof o->hook_dir, value, err);
    case OPT_MAX_MSG:
      return ch_parse_size(value, &o->max_msg_size, err);
    case OPT_WORKERS:
      return parse_int(value, 1, 64, &o->workers, err);
    case OPT_GRACE:
      return parse_int(value, 0, 3600 * 1000, &o->shutdown_grace_ms, err);
    case OPT_METRICS_ADDRESS:
      return parse_host_port(value, o->metrics_address, sizeof o->metrics_address, &o->metrics_port,
                             err);
    case OPT_METRICS:
      return parse_on_off(value, &o->metrics, err);
    case OPT_RELAY:
      if (strcmp(value, "verbatim") != 0 && strcmp(value, "terminate") != 0)
        return ch_fail(err, "unknown relay \"%s\" (verbatim, terminate)", value);
      o->relay_verbatim = strcmp(value, "verbatim") == 0;
      return 0;
    case OPT_LOG_FORMAT:
      if (ch_log_parse_format(value, &o->log_format) != 0)
        return ch_fail(err, "unknown log format \"%s\" (text, json)", value);
      return 0;
    case OPT_LOG_LEVEL:
      if (ch_log_parse_level(value, &o->log_level) != 0)
        return ch_fail(err, "unknown log level \"%s\" (debug, info, warn, error)", value);
      return 0;
    default:
      return ch_fail(err, "internal: unknown option id %d", id);
  }
}

static void set_defaults(crihookd_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->listen, sizeof o->listen, "%s", CH_DEFAULT_LISTEN);
  snprintf(o->backend, sizeof o->backend, "auto");
  snprintf(o->hook_dir, sizeof o->hook_dir, "%s", CH_DEFAULT_HOOK_DIR);
  snprintf(o->admin_socket, sizeof o->admin_socket, "%s", CH_DEFAULT_ADMIN);
  o->max_msg_size = CH_DEFAULT_MAX_MSG; /* kubelet's own limit */
  o->log_level = CH_LOG_INFO;
  o->log_format = CH_LOG_TEXT;
  o->metrics = true;
  o->workers = 1;
  o->relay_verbatim = true;
  o->shutdown_grace_ms = 5000;
}

/* Applies the environment to every option the command line did not set, so
 * a flag wins even over a malformed variable. */
static int apply_environment(crihookd_options *o, const bool *from_flag, ch_error *err) {
  for (size_t i = 0; i < SPEC_COUNT; i++) {
    const char *value = getenv(specs[i].env);
    if (from_flag[i] || !value || !*value) continue;
    if (apply(o, specs[i].id, value, err) != 0) return ch_wrap(err, "environment %s", specs[i].env);
  }
  return 0;
}

/* getopt leaves optopt at what it rejected: a short option's letter, the id
 * of a long option whose value is missing, or 0 for an unknown long option
 * (then named by the last argument it looked at). */
static int bad_option(char **argv, ch_error *err) {
  if (optopt >= OPT_LISTEN && optopt < OPT_LISTEN + (int)SPEC_COUNT)
    return ch_fail(err, "--%s needs a value", specs[optopt - OPT_LISTEN].flag);
  if (optopt > ' ' && optopt < 127) return ch_fail(err, "unknown option -%c", optopt);
  return ch_fail(err, "unknown option %s", argv[optind - 1]);
}

static int apply_flags(crihookd_options *o, int argc, char **argv, bool *from_flag, ch_error *err) {
  struct option longopts[SPEC_COUNT + 3];
  for (size_t i = 0; i < SPEC_COUNT; i++)
    longopts[i] = (struct option){specs[i].flag, required_argument, NULL, specs[i].id};
  longopts[SPEC_COUNT] = (struct option){"help", no_argument, NULL, 'h'};
  longopts[SPEC_COUNT + 1] = (struct option){"version", no_argument, NULL, 'V'};
  longopts[SPEC_COUNT + 2] = (struct option){0};
  optind = 0; /* GNU: full reset, so the parser can run more than once */
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
    if (c == 'h')
      o->help = true;
    else if (c == 'V')
      o->version = true;
    else if (c == '?' || c == ':')
      return bad_option(argv, err);
    else if (apply(o, c, optarg, err) != 0)
      return ch_wrap(err, "--%s", specs[c - OPT_LISTEN].flag);
    else
      from_flag[c - OPT_LISTEN] = true;
  }
  if (optind < argc) return ch_fail(err, "unexpected argument \"%s\"", argv[optind]);
  return 0;
}

int crihookd_options_parse(crihookd_options *o, int argc, char **argv, ch_error *err) {
  bool from_flag[SPEC_COUNT] = {false};
  set_defaults(o);
  if (apply_flags(o, argc, argv, from_flag, err) != 0) return -1;
  return apply_environment(o, from_flag, err);
}
