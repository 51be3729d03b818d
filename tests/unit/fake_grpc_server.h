/* SPDX-License-Identifier: Apache-2.0 */
/* fake_grpc_server.h: a scriptable unary gRPC server on grpc core for unit
 * tests (test_rebuild.c directly, test_detect.c through fake_cri_server.h).
 *
 * It reads each request and hands it to a handler the test supplies, so one
 * fake can play a runtime with several pods, containers that vanish between
 * List and Status, a List that fails, or a runtime that never answers. Its
 * completion queue runs in its own thread, which is where the handler is
 * called. Answers always carry initial metadata in the same batch as the
 * status, so error answers are valid trailers-only answers. The caller owns
 * grpc_init()/grpc_shutdown(). */
#pragma once

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_answer {
  grpc_status_code status; /* GRPC_STATUS_OK unless the handler sets it */
  char details[128];
  uint8_t *response; /* malloc'd packed answer (the fake frees it); NULL = none */
  size_t response_len;
  bool hang; /* do not answer: wait until the client gives up or the server stops */
} fake_answer;

/* Answers one call of `method` (e.g. "/runtime.v1.RuntimeService/ListContainers")
 * whose request bytes are `request`. A handler that does not touch `answer`
 * answers OK with no message. */
typedef void (*fake_handler)(void *data, const char *method, const uint8_t *request,
                             size_t request_len, fake_answer *answer);

/* Fills `answer` with `msg` packed (status OK). */
void fake_answer_message(fake_answer *answer, const ProtobufCMessage *msg);

/* Fills `answer` with an error status and details. */
void fake_answer_error(fake_answer *answer, grpc_status_code status, const char *details);

typedef struct fake_grpc_server fake_grpc_server;

/* Starts serving unix socket `path`; NULL if grpc would not bind it. */
fake_grpc_server *fake_grpc_start(const char *path, fake_handler handler, void *data);

/* Stops the server, joins its thread and frees everything. */
void fake_grpc_stop(fake_grpc_server *b);

/* How many calls were answered so far. */
int fake_grpc_calls(fake_grpc_server *b);
