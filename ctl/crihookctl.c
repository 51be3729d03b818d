/* SPDX-License-Identifier: Apache-2.0 */
/* crihookctl.c: entry point of the command-line CRI client.
 *
 * Parses the global options (getopt_long, stopping at the command name),
 * opens a cri_client on the endpoint and hands the rest of argv to one
 * command from the table below. The commands mirror crictl's where they
 * overlap, so the same pod/container JSON files and the same habits work
 * against crihookd, containerd or CRI-O. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crihook-config.h"
#include "ctl.h"

#define DEFAULT_ENDPOINT "unix:///run/crihook/crihook.sock"
#define DEFAULT_ADMIN "unix:///run/crihook/admin.sock"
#define DEFAULT_TIMEOUT_S 10

static const ctl_command commands[] = {
    {"version", ctl_cmd_version, "", "runtime name and version (Version)"},
    {"info", ctl_cmd_info, "", "runtime status and configuration as JSON (Status, verbose)"},
    {"runp", ctl_cmd_runp, "[-r HANDLER] POD.json", "run a pod sandbox, print its ID"},
    {"stopp", ctl_cmd_stopp, "ID", "stop a pod sandbox"},
    {"rmp", ctl_cmd_rmp, "ID", "remove a pod sandbox"},
    {"pods", ctl_cmd_pods, "[-q] [-o json|table]", "list pod sandboxes"},
    {"inspectp", ctl_cmd_inspectp, "ID", "pod sandbox status as JSON (verbose)"},
    {"create", ctl_cmd_create, "POD_ID CONTAINER.json POD.json",
     "create a container in a pod, print its ID"},
    {"start", ctl_cmd_start, "ID", "start a created container"},
    {"stop", ctl_cmd_stop, "[-t SEC] ID", "stop a container (SEC: grace period, default 0)"},
    {"rm", ctl_cmd_rm, "ID", "remove a container"},
    {"ps", ctl_cmd_ps, "[-a] [-q] [--pod ID] [-o json|table]",
     "list containers (running only unless -a)"},
    {"inspect", ctl_cmd_inspect, "ID", "container status as JSON (verbose)"},
    {"exec-sync", ctl_cmd_exec_sync, "[--timeout SEC] ID [--] CMD [ARG...]",
     "run a command in a container, relay its output and exit code"},
    {"images", ctl_cmd_images, "[-q] [-o json|table]", "list images"},
    {"events", ctl_cmd_events, "",
     "stream container events (GetContainerEvents), one JSON line each, until interrupted"},
    {"status", ctl_cmd_status, "[--json] [--expect-version V]",
     "crihookd's state: ready, backend, versions, uptime, store, plugins (admin socket; exits 1 "
     "when not ready, or when it is not version V)"},
    {"plugins", ctl_cmd_plugins, "[--json]",
     "crihookd's plugins: file, endpoint, policy, hooks, order, calls, last error (admin socket)"},
    {"store", ctl_cmd_store, "pods|containers [--json]",
     "what crihookd knows about pods or containers (admin socket)"},
    {"trace", ctl_cmd_trace, "[--method RE] [--pod NAME] [--json]",
     "live stream of the CRI calls through crihookd, one line each: time, method, pod/container, "
     "status, latency, hooks and what they changed (admin socket; until interrupted)"},
};

const ctl_command *ctl_find_command(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static void print_help(FILE *out) {
  fprintf(out,
          "usage: crihookctl [global options] COMMAND [command options] [ARGS]\n"
          "\n"
          "A CRI client for crihook (and any CRI runtime).\n"
          "\n"
          "Global options:\n"
          "  --endpoint ENDPOINT  CRI socket (default $CRIHOOK_ENDPOINT or %s)\n"
          "  --timeout SEC        deadline of every call in seconds (default %d; 0 = none)\n"
          "  --api v1|v1alpha2    CRI API version to speak (default v1)\n"
          "  --admin ENDPOINT     crihookd's admin socket (default $CRIHOOK_ADMIN or %s)\n"
          "  --help, --version\n"
          "\n"
          "Commands:\n",
          DEFAULT_ENDPOINT, DEFAULT_TIMEOUT_S, DEFAULT_ADMIN);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    fprintf(out, "  %s%s%s\n", commands[i].name, *commands[i].args ? " " : "", commands[i].args);
    fprintf(out, "      %s\n", commands[i].summary);
  }
}

typedef struct global_opts {
  const char *endpoint;
  const char *admin;
  const char *api;
  int timeout_s;
} global_opts;

static int parse_seconds(const char *text, int *out) {
  char *end;
  long v = strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 86400 * 365) return -1;
  *out = (int)v;
  return 0;
}

enum { OPT_ENDPOINT = 256, OPT_TIMEOUT, OPT_API, OPT_HELP, OPT_VERSION, OPT_ADMIN };

/* Returns -1 to continue with the command at argv[optind], else an exit code. */
static int parse_globals(int argc, char **argv, global_opts *g) {
  static const struct option longs[] = {
      {"endpoint", required_argument, NULL, OPT_ENDPOINT},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"api", required_argument, NULL, OPT_API},
      {"admin", required_argument, NULL, OPT_ADMIN},
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "+h", longs, NULL)) != -1) {
    switch (opt) {
      case OPT_ENDPOINT:
        g->endpoint = optarg;
        break;
      case OPT_TIMEOUT:
        if (parse_seconds(optarg, &g->timeout_s) < 0) {
          ctl_fail("--timeout: \"%s\" is not a number of seconds", optarg);
          return CTL_EXIT_USAGE;
        }
        break;
      case OPT_API:
        g->api = optarg;
        break;
      case OPT_ADMIN:
        g->admin = optarg;
        break;
      case 'h':
      case OPT_HELP:
        print_help(stdout);
        return CTL_EXIT_OK;
      case OPT_VERSION:
        printf("crihookctl version %s\n", CRIHOOK_VERSION);
        return CTL_EXIT_OK;
      default:
        return ctl_usage("");
    }
  }
  if (optind >= argc) {
    print_help(stderr);
    return CTL_EXIT_USAGE;
  }
  return -1;
}

static int run_command(const global_opts *g, const ctl_command *cmd, int argc, char **argv) {
  if (!cri_package_name(g->api))
    return ctl_fail("--api: unknown CRI API \"%s\" (want v1 or v1alpha2)", g->api);
  ch_error err;
  cri_client *client = cri_client_open(g->endpoint, g->api, g->timeout_s * 1000, &err);
  if (!client) return ctl_fail("%s", err.msg);
  ctl_ctx ctx = {.client = client, .timeout_s = g->timeout_s, .admin = g->admin};
  optind = 0; /* commands parse their own options from argv[1] */
  int rc = cmd->run(&ctx, argc, argv);
  fflush(stdout);
  cri_client_free(client);
  return rc;
}

int main(int argc, char **argv) {
  const char *env = getenv("CRIHOOK_ENDPOINT");
  const char *admin = getenv("CRIHOOK_ADMIN");
  global_opts g = {
      .endpoint = env && *env ? env : DEFAULT_ENDPOINT,
      .admin = admin && *admin ? admin : DEFAULT_ADMIN,
      .api = "v1",
      .timeout_s = DEFAULT_TIMEOUT_S,
  };
  int rc = parse_globals(argc, argv, &g);
  if (rc >= 0) return rc;
  const ctl_command *cmd = ctl_find_command(argv[optind]);
  if (!cmd) {
    ctl_fail("unknown command \"%s\"", argv[optind]);
    return ctl_usage("");
  }
  return run_command(&g, cmd, argc - optind, argv + optind);
}
