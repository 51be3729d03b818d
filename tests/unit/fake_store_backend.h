/* fake_store_backend.h: a scriptable CRI server on grpc core for the store
 * rebuild tests (test_rebuild.c).
 *
 * Unlike fake_cri_server.h, it reads each request before answering and
 * hands it to a handler the test supplies, so one fake can play a runtime
 * with several pods, containers that vanish between List and Status, or a
 * List that fails. Its completion queue runs in its own thread, which is
 * where the handler is called. The caller owns grpc_init()/grpc_shutdown(). */
#pragma once

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_answer {
  grpc_status_code status; /* GRPC_STATUS_OK unless the handler sets it */
  char details[128];
  uint8_t *response; /* malloc'd packed answer (the fake frees it); NULL = none */
  size_t response_len;
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

typedef struct fake_store_backend fake_store_backend;

/* Starts serving unix socket `path`; NULL if grpc would not bind it. */
fake_store_backend *fake_store_backend_start(const char *path, fake_handler handler, void *data);

/* Stops the server, joins its thread and frees everything. */
void fake_store_backend_stop(fake_store_backend *b);

/* How many calls were answered so far. */
int fake_store_backend_calls(fake_store_backend *b);
