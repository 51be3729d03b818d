/* SPDX-License-Identifier: Apache-2.0 */
/* pbutil.c: generic in-place edits of unpacked protobuf-c messages (pbutil.h). */
#include "pbutil.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

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

/* ---- merging a whole list of pairs in one pass ---- */

/* A field whose entries are {string key, string value}: a map<string,
 * string> or a repeated KeyValue (CRI's envs). */
static bool is_pair_list(const ProtobufCFieldDescriptor *f) {
  const ProtobufCMessageDescriptor *d =
      f ? (const ProtobufCMessageDescriptor *)f->descriptor : NULL;
  return d && d->n_fields == 2 && d->fields[0].type == PROTOBUF_C_TYPE_STRING &&
         d->fields[1].type == PROTOBUF_C_TYPE_STRING &&
         d->fields[0].offset == offsetof(string_entry, key) &&
         d->fields[1].offset == offsetof(string_entry, value);
}

typedef struct key_slot {
  string_entry *entry;
  UT_hash_handle hh;
} key_slot;

/* The index of dst's keys; the first of duplicate keys wins, as in
 * ch_pb_map_set. `slots` has room for the keys to come. */
static key_slot *index_keys(string_entry **list, size_t n, key_slot *slots) {
  key_slot *index = NULL;
  for (size_t i = 0; i < n; i++) {
    key_slot *found;
    const char *key = list[i]->key;
    HASH_FIND(hh, index, key, strlen(key), found);
    if (found) continue;
    slots[i].entry = list[i];
    HASH_ADD_KEYPTR(hh, index, key, strlen(key), &slots[i]);
  }
  return index;
}

static string_entry *new_entry(const ProtobufCFieldDescriptor *f, const char *key,
                               const char *value) {
  const ProtobufCMessageDescriptor *d = f->descriptor;
  string_entry *e = malloc(d->sizeof_message);
  if (!e) return NULL;
  protobuf_c_message_init(d, e);
  if (ch_pb_set_string(&e->key, key) != 0 || ch_pb_set_string(&e->value, value) != 0) {
    protobuf_c_message_free_unpacked(&e->base, NULL);
    return NULL;
  }
  return e;
}

/* Sets one pair through the index: in place, or appended to the list (which
 * has room). */
static int merge_pair(key_slot **index, key_slot *slot, string_entry **list, size_t *n,
                      const ProtobufCFieldDescriptor *f, const string_entry *pair, ch_pb_pair_fn fn,
                      void *ctx) {
  key_slot *found;
  HASH_FIND(hh, *index, pair->key, strlen(pair->key), found);
  if (fn) fn(ctx, pair->key, found ? found->entry->value : NULL, pair->value);
  if (found) {
    if (strcmp(found->entry->value, pair->value) == 0) return 0;
    return ch_pb_set_string(&found->entry->value, pair->value);
  }
  string_entry *e = new_entry(f, pair->key, pair->value);
  if (!e) return -1;
  list[(*n)++] = e;
  slot->entry = e;
  HASH_ADD_KEYPTR(hh, *index, e->key, strlen(e->key), slot);
  return 0;
}

int ch_pb_pairs_merge(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                      const char *src_field, ch_pb_pair_fn fn, void *ctx) {
  const ProtobufCFieldDescriptor *df = map_field(dst, dst_field);
  const ProtobufCFieldDescriptor *sf = map_field(src, src_field);
  if (!is_pair_list(df) || !is_pair_list(sf)) return -1;
  size_t *sn, *dn;
  string_entry **from = entries(src, sf, &sn);
  string_entry **list = entries(dst, df, &dn);
  if (*sn == 0) return 0;
  string_entry **grown = realloc(list, (*dn + *sn) * sizeof *grown);
  key_slot *slots = calloc(*dn + *sn, sizeof *slots);
  if (grown) *MEMBER(string_entry **, dst, df->offset) = grown;
  if (!grown || !slots) {
    free(slots);
    return -1;
  }
  key_slot *index = index_keys(grown, *dn, slots);
  int rc = 0;
  for (size_t i = 0; i < *sn && rc == 0; i++)
    rc = merge_pair(&index, &slots[*dn], grown, dn, df, from[i], fn, ctx);
  HASH_CLEAR(hh, index);
  free(slots);
  return rc;
}

int ch_pb_map_merge(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                    const char *src_field) {
  return ch_pb_pairs_merge(dst, dst_field, src, src_field, NULL, NULL);
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
