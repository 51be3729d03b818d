/* SPDX-License-Identifier: Apache-2.0 */
/* ctl.h: what crihookctl's command files share.
 *
 * crihookctl.c parses the global options, opens the client and runs one
 * command. Each command family lives in its own file (cmd_runtime.c,
 * cmd_pod.c, cmd_container.c, cmd_exec.c, cmd_image.c, cmd_events.c) as a
 * function that takes the context and the command's own argv (argv[0] is the
 * command name) and returns the process exit code. Helpers for calls, input
 * files, JSON and tables are in util.c and table.c; commands print, helpers
 * do not (except the ctl_* error printers, which exist to print). */
#pragma once

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cri_client.h"

/* Exit codes: CTL_EXIT_FAIL for failed calls and bad input, CTL_EXIT_USAGE for
 * a command line that does not parse. exec-sync exits with the command's. */
enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

typedef struct ctl_ctx {
  cri_client *client;
  int timeout_s;     /* --timeout: the deadline of every call, in seconds */
  const char *admin; /* --admin: crihookd's admin socket */
} ctl_ctx;

typedef int (*ctl_command_fn)(ctl_ctx *ctx, int argc, char **argv);

typedef struct ctl_command {
  const char *name;
  ctl_command_fn run;
  const char *args;    /* usage after the name, e.g. "[-t SEC] ID" */
  const char *summary; /* one line */
} ctl_command;

/* ---- commands ---- */
int ctl_cmd_version(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_info(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_runp(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_stopp(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_rmp(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_pods(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_inspectp(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_create(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_start(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_stop(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_rm(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_ps(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_inspect(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_exec_sync(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_images(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_events(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_trace(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_plugins(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_store(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_status(ctl_ctx *ctx, int argc, char **argv);

/* The command table (crihookctl.c), for usage messages. */
const ctl_command *ctl_find_command(const char *name);

/* ---- admin_client.c: crihookd's admin socket ---- */

/* A connected socket to the admin endpoint, or -1 with err (which says
 * whether crihookd runs). */
int ctl_admin_connect(const char *endpoint, ch_error *err);

/* GETs `path` and parses the JSON body; -1 with err unless HTTP 200. */
int ctl_admin_get(const char *endpoint, const char *path, json_t **out, ch_error *err);

/* ---- util.c: errors, calls, input, JSON output ---- */

/* Prints "crihookctl: <message>" to stderr; returns CTL_EXIT_FAIL. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the usage line of a command to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage(const char *command);

/* A unary call with the context's timeout plus extra_s seconds (for calls
 * that wait on purpose: stop -t, exec-sync --timeout). Prints the error
 * ("crihookctl: <Method>: <STATUS>: <details>") and returns -1 on failure. */
int ctl_call(ctl_ctx *ctx, const char *method, const void *request, int extra_s,
             ProtobufCMessage **response);

/* Reads a JSON file ("-" = stdin) into a message of type desc. Prints the
 * error (file, line, or the pbjson path) and returns -1 on failure. */
int ctl_load_message(const char *path, const ProtobufCMessageDescriptor *desc,
                     ProtobufCMessage **out);

/* Prints JSON indented (2 spaces) or on one line, with a newline. */
void ctl_print_json(const json_t *json, bool compact);

/* Prints a List* response as JSON; the list under `key` is printed as []
 * when empty (pbjson omits empty lists), so scripts can index it. */
void ctl_print_list_json(const ProtobufCMessage *response, const char *key);

/* The JSON of a Status/ContainerStatus/PodSandboxStatus response with its
 * `info` map (JSON texts from the runtime) parsed and merged into the top
 * level, as crictl prints it: containerd's single "info" key becomes
 * {"status": ..., "info": {...}}; a value that is not JSON stays a string. */
json_t *ctl_status_json(const ProtobufCMessage *response);

/* Parses an -o value, "json" or "table", into *json. Returns 0, or prints
 * the error and returns -1. */
int ctl_parse_output(const char *value, bool *json);

/* Makes a verbose status call (ContainerStatus, PodSandboxStatus) and prints
 * its answer as JSON with the runtime's info parsed; returns the exit code. */
int ctl_show_status(ctl_ctx *ctx, const char *method, const ProtobufCMessage *request);

/* Parses the options of a listing command, [-q|--quiet] [-o|--output
 * json|table]; 0, or -1 when the command line does not parse. */
int ctl_parse_list_options(int argc, char **argv, bool *json, bool *quiet);

/* ---- table.c: crictl-style tables and human-readable values ---- */

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(size_t columns, const char *const *headers);
void ctl_table_add(ctl_table *t, const char *const *cells);
/* Prints with crictl's layout (columns at least 20 wide, 3 spaces apart) and
 * frees the table. */
void ctl_table_print(ctl_table *t);

/* "About a minute ago" etc. for a creation time in nanoseconds since epoch. */
void ctl_human_ago(int64_t created_ns, char *buf, size_t size);
/* "1.23MB" (decimal units, 3 significant digits). */
void ctl_human_size(uint64_t bytes, char *buf, size_t size);
/* An ID as crictl shows it: "sha256:" dropped, first 13 characters. */
void ctl_short_id(const char *id, char *buf, size_t size);
