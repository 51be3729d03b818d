/* SPDX-License-Identifier: Apache-2.0 */
/* response.c: reading requests and building answers (crihook_plugin.h).
 *
 * Ownership: everything a response holds is malloc'd here (or is
 * protobuf-c's shared empty string), so the server frees a whole response
 * with protobuf_c_message_free_unpacked() once it is packed. Map fields are
 * reached through their descriptors: every map<string, string> entry is a
 * message with a "key" and a "value" string, whatever its generated type. */
#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk.h"

static char **string_at(const ProtobufCMessage *msg, size_t field_index) {
  return (char **)((char *)msg + msg->descriptor->fields[field_index].offset);
}

/* A map entry's key and value are its fields 0 and 1 (numbers 1 and 2). */
static char **entry_key(const ProtobufCMessage *entry) { return string_at(entry, 0); }
static char **entry_value(const ProtobufCMessage *entry) { return string_at(entry, 1); }

int crihook_fail(crihook_error *err, int code, const char *fmt, ...) {
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return code;
}

const char *crihook_map_get(void *const *map, size_t count, const char *key) {
  for (size_t i = 0; i < count; i++) {
    const ProtobufCMessage *entry = map[i];
    if (strcmp(*entry_key(entry), key) == 0) return *entry_value(entry);
  }
  return NULL;
}

int crihook_set_string(char **field, const char *value) {
  char *copy = (char *)protobuf_c_empty_string;
  if (value && value[0] != '\0' && !(copy = strdup(value))) return -1;
  if (*field && *field != protobuf_c_empty_string) free(*field);
  *field = copy;
  return 0;
}

static ProtobufCMessage *new_entry(const ProtobufCMessageDescriptor *desc, const char *key,
                                   const char *value) {
  ProtobufCMessage *entry = malloc(desc->sizeof_message);
  if (!entry) return NULL;
  protobuf_c_message_init(desc, entry);
  if (crihook_set_string(entry_key(entry), key) != 0 ||
      crihook_set_string(entry_value(entry), value) != 0) {
    protobuf_c_message_free_unpacked(entry, NULL);
    return NULL;
  }
  return entry;
}

/* Sets `key` in the map field `name` of `msg`: in place if present,
 * appended otherwise. */
static int map_set(ProtobufCMessage *msg, const char *name, const char *key, const char *value) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
  size_t *count = (size_t *)((char *)msg + f->quantifier_offset);
  ProtobufCMessage ***entries = (ProtobufCMessage ***)((char *)msg + f->offset);
  for (size_t i = 0; i < *count; i++) {
    if (strcmp(*entry_key((*entries)[i]), key) == 0)
      return crihook_set_string(entry_value((*entries)[i]), value);
  }
  ProtobufCMessage **grown = realloc(*entries, (*count + 1) * sizeof *grown);
  if (!grown) return -1;
  *entries = grown;
  ProtobufCMessage *entry = new_entry(f->descriptor, key, value);
  if (!entry) return -1;
  grown[(*count)++] = entry;
  return 0;
}

static crihook_resources *resources_at(crihook_resources **slot) {
  if (!*slot) {
    *slot = malloc(sizeof **slot);
    if (*slot) runtime__v1alpha1__linux_container_resources__init(*slot);
  }
  return *slot;
}

int crihook_set_label(crihook_pod_response *response, const char *key, const char *value) {
  return map_set(&response->base, "labels", key, value);
}

int crihook_set_pod_annotation(crihook_pod_response *response, const char *key, const char *value) {
  return map_set(&response->base, "annotations", key, value);
}

int crihook_set_cgroup_parent(crihook_pod_response *response, const char *cgroup_parent) {
  return crihook_set_string(&response->cgroup_parent, cgroup_parent);
}

crihook_resources *crihook_pod_resources(crihook_pod_response *response) {
  return resources_at(&response->resources);
}

int crihook_set_env(crihook_container_response *response, const char *key, const char *value) {
  return map_set(&response->base, "container_envs", key, value);
}

int crihook_set_annotation(crihook_container_response *response, const char *key,
                           const char *value) {
  return map_set(&response->base, "container_annotations", key, value);
}

int crihook_set_pod_cgroup_parent(crihook_container_response *response, const char *cgroup_parent) {
  return crihook_set_string(&response->pod_cgroup_parent, cgroup_parent);
}

crihook_resources *crihook_container_resources(crihook_container_response *response) {
  return resources_at(&response->container_resources);
}
