/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_exec.c: exec-sync: runs a command in a container through ExecSync and
 * behaves like that command: its stdout and stderr bytes go to ours, its exit
 * code becomes ours. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "ctl.h"

static void write_all(FILE *out, const ProtobufCBinaryData *data) {
  if (data->len > 0) fwrite(data->data, 1, data->len, out);
  fflush(out);
}

/* Parses [--timeout SEC] ID [--] CMD...; *first_cmd indexes CMD in argv. */
static int parse_exec(int argc, char **argv, long *timeout, int *first_cmd) {
  static const struct option longs[] = {{"timeout", required_argument, NULL, 't'},
                                        {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "+t:", longs, NULL)) != -1) {
    char *end;
    *timeout = opt == 't' ? strtol(optarg, &end, 10) : -1;
    if (opt != 't' || *end != '\0' || *timeout < 0 || *timeout > 86400) return -1;
  }
  int i = optind + 1; /* after the container ID */
  if (i < argc && strcmp(argv[i], "--") == 0) i++;
  if (i >= argc) return -1;
  *first_cmd = i;
  return 0;
}

/* The command's own time limit (--timeout, 0 = none) goes to the runtime; the
 * call's deadline is the global --timeout plus that limit, so the runtime's
 * own timeout answer arrives before ours. */
int ctl_cmd_exec_sync(ctl_ctx *ctx, int argc, char **argv) {
  long timeout = 0;
  int first_cmd;
  if (parse_exec(argc, argv, &timeout, &first_cmd) < 0) return ctl_usage(argv[0]);
  Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
  req.container_id = argv[optind];
  req.cmd = argv + first_cmd;
  req.n_cmd = (size_t)(argc - first_cmd);
  req.timeout = timeout;
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "ExecSync", &req, (int)timeout, &resp) < 0) return CTL_EXIT_FAIL;
  const Runtime__V1__ExecSyncResponse *r = (Runtime__V1__ExecSyncResponse *)resp;
  write_all(stdout, &r->stdout);
  write_all(stderr, &r->stderr);
  int code = r->exit_code;
  protobuf_c_message_free_unpacked(resp, NULL);
  return code < 0 || code > 255 ? CTL_EXIT_FAIL : code;
}
