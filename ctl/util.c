/* SPDX-License-Identifier: Apache-2.0 */
/* util.c: crihookctl's shared helpers (see ctl.h): error printing, calls with
 * the global timeout, JSON input files and JSON output. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "pbjson.h"

int ctl_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("crihookctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CTL_EXIT_FAIL;
}

int ctl_usage(const char *command) {
  const ctl_command *cmd = ctl_find_command(command);
  if (cmd) fprintf(stderr, "usage: crihookctl [global options] %s %s\n", cmd->name, cmd->args);
  fprintf(stderr, "Run 'crihookctl --help' for the commands and options.\n");
  return CTL_EXIT_USAGE;
}

int ctl_call(ctl_ctx *ctx, const char *method, const void *request, int extra_s,
             ProtobufCMessage **response) {
  ch_error err;
  int timeout_ms = ctx->timeout_s > 0 ? (ctx->timeout_s + extra_s) * 1000 : 0;
  cri_client_set_timeout(ctx->client, timeout_ms);
  if (cri_call(ctx->client, method, request, response, NULL, NULL, 0, &err) < 0) {
    ctl_fail("%s", err.msg);
    return -1;
  }
  return 0;
}

static json_t *load_json(const char *path) {
  json_error_t jerr;
  json_t *json =
      strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(path, 0, &jerr);
  if (!json) {
    if (jerr.line > 0)
      ctl_fail("%s: line %d: %s", path, jerr.line, jerr.text);
    else
      ctl_fail("%s: %s", path, jerr.text);
  }
  return json;
}

int ctl_load_message(const char *path, const ProtobufCMessageDescriptor *desc,
                     ProtobufCMessage **out) {
  json_t *json = load_json(path);
  if (!json) return -1;
  ch_error err;
  int rc = ch_pb_from_json(desc, json, out, &err);
  json_decref(json);
  if (rc < 0) ctl_fail("%s: %s", path, err.msg);
  return rc;
}

void ctl_print_json(const json_t *json, bool compact) {
  size_t flags = compact ? JSON_COMPACT : JSON_INDENT(2);
  json_dumpf(json, stdout, flags | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
}

/* An info value is JSON text; keep it as a string if it is not. */
static json_t *parse_info_value(const json_t *text) {
  json_t *parsed = json_loads(json_string_value(text), JSON_DECODE_ANY, NULL);
  return parsed ? parsed : json_copy((json_t *)text);
}

json_t *ctl_status_json(const ProtobufCMessage *response) {
  json_t *out = ch_pb_to_json(response);
  json_t *info = json_object_get(out, "info");
  if (!json_is_object(info)) return out;
  json_t *parsed = json_object();
  const char *key;
  json_t *value;
  json_object_foreach(info, key, value) json_object_set_new(parsed, key, parse_info_value(value));
  json_object_del(out, "info");
  json_object_update(out, parsed);
  json_decref(parsed);
  return out;
}

int ctl_parse_output(const char *value, bool *json) {
  if (strcmp(value, "json") == 0) {
    *json = true;
    return 0;
  }
  if (strcmp(value, "table") == 0) {
    *json = false;
    return 0;
  }
  ctl_fail("unknown output format \"%s\" (want json or table)", value);
  return -1;
}

void ctl_print_list_json(const ProtobufCMessage *response, const char *key) {
  json_t *out = ch_pb_to_json(response);
  if (!json_object_get(out, key)) json_object_set_new(out, key, json_array());
  ctl_print_json(out, false);
  json_decref(out);
}

int ctl_parse_list_options(int argc, char **argv, bool *json, bool *quiet) {
  static const struct option longs[] = {{"output", required_argument, NULL, 'o'},
                                        {"quiet", no_argument, NULL, 'q'},
                                        {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "+o:q", longs, NULL)) != -1) {
    if (opt == 'q')
      *quiet = true;
    else if (opt != 'o' || ctl_parse_output(optarg, json) < 0)
      return -1;
  }
  return optind == argc ? 0 : -1;
}

int ctl_show_status(ctl_ctx *ctx, const char *method, const ProtobufCMessage *request) {
  ProtobufCMessage *resp;
  if (ctl_call(ctx, method, request, 0, &resp) < 0) return CTL_EXIT_FAIL;
  json_t *json = ctl_status_json(resp);
  ctl_print_json(json, false);
  json_decref(json);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}
