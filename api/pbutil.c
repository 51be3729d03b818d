/* pbutil.c: generic in-place edits of unpacked protobuf-c messages (pbutil.h). */
#include "pbutil.h"

#include <stdlib.h>
#include <string.h>

/* A map<string, string> entry as protobuf-c lays it out. */
typedef struct string_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
} string_entry;

int ch_pb_set_string(char **slot, const char *value) {
  char *copy = NULL;
  if (value && *value) {
    copy = strdup(value);
    if (!copy) return -1;
  }
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = copy ? copy : (char *)protobuf_c_empty_string;
  return 0;
}

static const ProtobufCFieldDescriptor *map_field(const ProtobufCMessage *msg, const char *field) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, field);
  if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
    return NULL;
  return f;
}

#define MEMBER(type, msg, offset) ((type *)((char *)(msg) + (offset)))

static string_entry **entries(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                              size_t **count) {
  *count = MEMBER(size_t, msg, f->quantifier_offset);
  return *MEMBER(string_entry **, msg, f->offset);
}

const char *ch_pb_map_get(const ProtobufCMessage *msg, const char *field, const char *key) {
  const ProtobufCFieldDescriptor *f = map_field(msg, field);
  if (!f) return NULL;
  size_t *n;
  string_entry **list = entries(msg, f, &n);
  for (size_t i = 0; i < *n; i++)
    if (strcmp(list[i]->key, key) == 0) return list[i]->value;
  return NULL;
}

static int append_entry(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *key,
                        const char *value) {
  size_t *n;
  string_entry **list = entries(msg, f, &n);
  const ProtobufCMessageDescriptor *entry_desc = f->descriptor;
  string_entry *e = malloc(entry_desc->sizeof_message);
  string_entry **grown = realloc(list, (*n + 1) * sizeof *grown);
  if (!e || !grown) {
    free(e);
    if (grown) *MEMBER(string_entry **, msg, f->offset) = grown;
    return -1;
  }
  protobuf_c_message_init(entry_desc, e);
  *MEMBER(string_entry **, msg, f->offset) = grown;
  if (ch_pb_set_string(&e->key, key) != 0 || ch_pb_set_string(&e->value, value) != 0) {
    protobuf_c_message_free_unpacked(&e->base, NULL);
    return -1;
  }
  grown[(*n)++] = e;
  return 0;
}

int ch_pb_map_set(ProtobufCMessage *msg, const char *field, const char *key, const char *value) {
  const ProtobufCFieldDescriptor *f = map_field(msg, field);
  if (!f) return -1;
  size_t *n;
  string_entry **list = entries(msg, f, &n);
  for (size_t i = 0; i < *n; i++) {
    if (strcmp(list[i]->key, key) != 0) continue;
    if (strcmp(list[i]->value, value) == 0) return 0;
    return ch_pb_set_string(&list[i]->value, value) == 0 ? 1 : -1;
  }
  return append_entry(msg, f, key, value);
}

int ch_pb_map_merge(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                    const char *src_field) {
  const ProtobufCFieldDescriptor *f = map_field(src, src_field);
  if (!f) return -1;
  size_t *n;
  string_entry **list = entries(src, f, &n);
  for (size_t i = 0; i < *n; i++)
    if (ch_pb_map_set(dst, dst_field, list[i]->key, list[i]->value) < 0) return -1;
  return 0;
}

ProtobufCMessage *ch_pb_submessage(ProtobufCMessage *msg, const char *field) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, field);
  if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
    return NULL;
  ProtobufCMessage **slot = MEMBER(ProtobufCMessage *, msg, f->offset);
  if (*slot) return *slot;
  const ProtobufCMessageDescriptor *desc = f->descriptor;
  ProtobufCMessage *sub = malloc(desc->sizeof_message);
  if (!sub) return NULL;
  protobuf_c_message_init(desc, sub);
  *slot = sub;
  return sub;
}

uint8_t *ch_pb_pack(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf) protobuf_c_message_pack(msg, buf);
  return buf;
}

ProtobufCMessage *ch_pb_convert(const ProtobufCMessage *src, const ProtobufCMessageDescriptor *to) {
  size_t len;
  uint8_t *buf = ch_pb_pack(src, &len);
  if (!buf) return NULL;
  ProtobufCMessage *out = protobuf_c_message_unpack(to, NULL, len, buf);
  free(buf);
  return out;
}
