/* SPDX-License-Identifier: Apache-2.0 */
/* fake_cri_server.c: a tiny CRI server (fake_cri_server.h): a handler for
 * fake_grpc_server.h that answers by mode and records each method. */
#include "fake_cri_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.pb-c.h"
#include "fake_grpc_server.h"

#define FAKE_MAX_CALLS 64

struct fake_cri_server {
  fake_grpc_server *grpc;
  fake_cri_mode mode;
  char runtime_name[64];
  char runtime_version[64];
  pthread_mutex_t mu;
  int calls;
  char methods[FAKE_MAX_CALLS][128];
};

static int method_is(const char *method, const char *api, const char *name) {
  char want[128];
  snprintf(want, sizeof want, "/runtime.%s.RuntimeService/%s", api, name);
  return strcmp(method, want) == 0;
}

static void answer_version(const fake_cri_server *s, const char *api, fake_answer *a) {
  Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
  v.version = "0.1.0";
  v.runtime_name = (char *)s->runtime_name;
  v.runtime_version = (char *)s->runtime_version;
  v.runtime_api_version = (char *)api;
  fake_answer_message(a, &v.base);
}

static void record(fake_cri_server *s, const char *method) {
  pthread_mutex_lock(&s->mu);
  if (s->calls < FAKE_MAX_CALLS) snprintf(s->methods[s->calls], sizeof s->methods[0], "%s", method);
  s->calls++;
  pthread_mutex_unlock(&s->mu);
}

static void handle(void *data, const char *method, const uint8_t *request, size_t request_len,
                   fake_answer *a) {
  (void)request;
  (void)request_len;
  fake_cri_server *s = data;
  record(s, method);
  const char *api = NULL;
  switch (s->mode) {
    case FAKE_CRI_OK:
      if (method_is(method, "v1", "Version")) api = "v1";
      if (method_is(method, "v1alpha2", "Version")) api = "v1alpha2";
      break;
    case FAKE_CRI_V1_UNIMPLEMENTED:
      if (method_is(method, "v1alpha2", "Version")) api = "v1alpha2";
      break;
    case FAKE_CRI_ALL_UNIMPLEMENTED:
      break;
    case FAKE_CRI_HANG:
      a->hang = true;
      return;
    case FAKE_CRI_UNAVAILABLE:
      fake_answer_error(a, GRPC_STATUS_UNAVAILABLE, FAKE_CRI_UNAVAILABLE_TEXT);
      return;
  }
  if (api)
    answer_version(s, api, a);
  else
    fake_answer_error(a, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
}

fake_cri_server *fake_cri_start(const char *path, fake_cri_mode mode, const char *runtime_name,
                                const char *runtime_version) {
  fake_cri_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->mode = mode;
  snprintf(s->runtime_name, sizeof s->runtime_name, "%s", runtime_name);
  snprintf(s->runtime_version, sizeof s->runtime_version, "%s", runtime_version);
  pthread_mutex_init(&s->mu, NULL);
  if (!(s->grpc = fake_grpc_start(path, handle, s))) {
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
  }
  return s;
}

void fake_cri_stop(fake_cri_server *s) {
  if (!s) return;
  fake_grpc_stop(s->grpc);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int fake_cri_call_count(fake_cri_server *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->calls;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void fake_cri_call_method(fake_cri_server *s, int i, char *buf, size_t len) {
  pthread_mutex_lock(&s->mu);
  snprintf(buf, len, "%s", i >= 0 && i < s->calls && i < FAKE_MAX_CALLS ? s->methods[i] : "");
  pthread_mutex_unlock(&s->mu);
}
