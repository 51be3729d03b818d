/* SPDX-License-Identifier: Apache-2.0 */
/* grpc_util.c: channel construction and a blocking unary call (grpc_util.h). */
#include "grpc_util.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

grpc_arg ch_arg_int(const char *key, int value) {
  grpc_arg arg = {.type = GRPC_ARG_INTEGER, .key = (char *)key};
  arg.value.integer = value;
  return arg;
}

grpc_channel *ch_channel_open(const char *target) {
  const int backoff = 100;
  grpc_arg args[8];
  size_t n = 0;
  args[n++] = ch_arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, CH_DEFAULT_MAX_MSG);
  args[n++] = ch_arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, CH_DEFAULT_MAX_MSG);
  args[n++] = ch_arg_int(GRPC_ARG_MAX_METADATA_SIZE, CH_MAX_METADATA);
  args[n++] = ch_arg_int(GRPC_ARG_ENABLE_RETRIES, 0);
  args[n++] = ch_arg_int(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, backoff);
  /* the minimum backoff is also the connect timeout: a busy backend must get
   * a second to answer, while retries after a failure start at `backoff` */
  args[n++] = ch_arg_int(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, backoff < 1000 ? 1000 : backoff);
  args[n++] = ch_arg_int(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff * 10);
  args[n++] = ch_arg_int(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  grpc_channel_args channel_args = {.num_args = n, .args = args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *channel = grpc_channel_create(target, creds, &channel_args);
  grpc_channel_credentials_release(creds);
  return channel;
}

gpr_timespec ch_deadline_ms(int64_t ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

uint8_t *ch_byte_buffer_flatten(grpc_byte_buffer *bb, size_t *len) {
  grpc_byte_buffer_reader reader;
  *len = 0;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return NULL;
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  size_t n = GRPC_SLICE_LENGTH(all);
  uint8_t *out = malloc(n ? n : 1);
  if (out) {
    memcpy(out, GRPC_SLICE_START_PTR(all), n);
    *len = n;
  }
  grpc_slice_unref(all);
  return out;
}

void ch_unary_result_clear(ch_unary_result *result) {
  free(result->response);
  result->response = NULL;
  result->response_len = 0;
}

static void copy_details(ch_unary_result *result, grpc_slice details) {
  size_t n = GRPC_SLICE_LENGTH(details);
  if (n >= sizeof result->details) n = sizeof result->details - 1;
  memcpy(result->details, GRPC_SLICE_START_PTR(details), n);
  result->details[n] = '\0';
}

/* Fills ops[0..5] with one whole unary client call: send the metadata,
 * the request and the half-close; receive the initial metadata, the answer
 * and the status. Returns the number of ops (6). */
static size_t unary_client_ops(grpc_op ops[6], const grpc_metadata *md, size_t md_count,
                               grpc_byte_buffer *request, grpc_metadata_array *initial_md,
                               grpc_byte_buffer **answer, grpc_status_code *status,
                               grpc_slice *details, grpc_metadata_array *trailing_md) {
  memset(ops, 0, 6 * sizeof *ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = md_count;
  ops[0].data.send_initial_metadata.metadata = (grpc_metadata *)md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = answer;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = status;
  ops[5].data.recv_status_on_client.status_details = details;
  ops[5].data.recv_status_on_client.trailing_metadata = trailing_md;
  return 6;
}

size_t ch_unary_server_ops(grpc_op ops[4], grpc_byte_buffer *message, grpc_status_code status,
                           grpc_slice *details, int *cancelled) {
  memset(ops, 0, 4 * sizeof *ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (message) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = message;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = status;
  ops[n++].data.send_status_from_server.status_details = details;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = cancelled;
  return n;
}

int ch_unary_call(grpc_channel *channel, const char *method, const void *request,
                  size_t request_len, int timeout_ms, const grpc_metadata *md, size_t md_count,
                  ch_unary_result *result, ch_error *err) {
  memset(result, 0, sizeof *result);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  /* copied: grpc's header compressor may keep the slice past this call */
  grpc_slice method_slice = grpc_slice_from_copied_string(method);
  gpr_timespec deadline =
      timeout_ms > 0 ? ch_deadline_ms(timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
  grpc_call *call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                             method_slice, NULL, deadline, NULL);
  grpc_slice_unref(method_slice);
  grpc_slice req_slice = grpc_slice_from_copied_buffer(request, request_len);
  grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
  grpc_slice_unref(req_slice);
  grpc_metadata_array initial_md, trailing_md;
  grpc_metadata_array_init(&initial_md);
  grpc_metadata_array_init(&trailing_md);
  grpc_byte_buffer *resp_bb = NULL;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  unary_client_ops(ops, md, md_count, req_bb, &initial_md, &resp_bb, &result->status, &details,
                   &trailing_md);
  int rc = 0;
  if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
    rc = ch_fail(err, "call %s: grpc refused the batch", method);
  } else {
    grpc_event ev = grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) rc = ch_fail(err, "call %s: no completion", method);
  }
  if (rc == 0) {
    copy_details(result, details);
    if (resp_bb) result->response = ch_byte_buffer_flatten(resp_bb, &result->response_len);
  }
  if (resp_bb) grpc_byte_buffer_destroy(resp_bb);
  grpc_byte_buffer_destroy(req_bb);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&initial_md);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return rc;
}

void ch_queue_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}
