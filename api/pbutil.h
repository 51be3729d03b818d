/* SPDX-License-Identifier: Apache-2.0 */
/* pbutil.h: editing unpacked protobuf-c messages in place.
 *
 * The dispatcher changes decoded requests (labels, annotations, envs,
 * resources) before they are packed again. These helpers do it generically
 * through the message descriptors, with the same allocator protobuf-c's
 * unpack uses, so the result is still freed by free_unpacked(msg, NULL):
 * every string is malloc'd except the shared empty string, every repeated
 * field is a malloc'd array of malloc'd entries.
 *
 * Maps are protobuf-c's repeated entry messages ({key, value}); the helpers
 * handle map<string, string> fields only. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* Replaces the string in *slot (freeing the old one unless it is the shared
 * empty string). Returns 0, or -1 if out of memory. */
int ch_pb_set_string(char **slot, const char *value);

/* The value of `key` in map field `field`, or NULL. */
const char *ch_pb_map_get(const ProtobufCMessage *msg, const char *field, const char *key);

/* Sets `key` in map field `field`: an existing entry is changed in place, a
 * new one is appended. Returns 1 if the key existed with another value, 0 if
 * it was added or unchanged, -1 on error (no such field, out of memory). */
int ch_pb_map_set(ProtobufCMessage *msg, const char *field, const char *key, const char *value);

/* Called for each pair before it is set: old is the key's value before
 * (NULL if the key is new). */
typedef void (*ch_pb_pair_fn)(void *ctx, const char *key, const char *old, const char *value);

/* Sets every {key, value} of src's field in dst's field (each a map<string,
 * string> or a repeated {string key, string value}, such as CRI's envs):
 * existing keys changed in place, new ones appended in src's order. One
 * pass over each list through a hash index: linear in their sizes. `fn`
 * (may be NULL) sees each pair. Returns 0, or -1 on error (no such field,
 * out of memory). */
int ch_pb_pairs_merge(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                      const char *src_field, ch_pb_pair_fn fn, void *ctx);

/* ch_pb_pairs_merge without a callback. */
int ch_pb_map_merge(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                    const char *src_field);

/* The sub-message in field `field`, allocated (empty) if unset; NULL only
 * if out of memory or the field is not a message. */
ProtobufCMessage *ch_pb_submessage(ProtobufCMessage *msg, const char *field);

/* A new message of type `to` with src's content, through pack and unpack:
 * exact for messages that share field numbers (CRI's and the hook API's
 * LinuxContainerResources). Free with protobuf_c_message_free_unpacked. */
ProtobufCMessage *ch_pb_convert(const ProtobufCMessage *src, const ProtobufCMessageDescriptor *to);

/* Packs into a malloc'd buffer; returns NULL if out of memory. */
uint8_t *ch_pb_pack(const ProtobufCMessage *msg, size_t *len);
