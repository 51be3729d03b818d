/* SPDX-License-Identifier: Apache-2.0 */
/* pbjson.c: protobuf-c <-> JSON through descriptors (contract in pbjson.h).
 *
 * The file has four parts:
 * - field access: where a field's value, count or presence flag lives in a
 *   generated struct, and whether a repeated field is really a map;
 * - text helpers: UTF-8 checking (common/utf8.c's sequence rule) and repair,
 *   base64, lowerCamelCase names;
 * - to JSON: message -> object, one field at a time, one value at a time;
 * - from JSON: object -> message, same structure, with a path buffer that
 *   names the field being read in every error message.
 *
 * Memory for parsed messages follows protobuf_c_message_unpack() with the
 * default allocator (malloc): every string, bytes block, array and
 * sub-message is malloc'd and hung on its parent as soon as it is complete,
 * so protobuf_c_message_free_unpacked() can free a half-built message on
 * any error. */
#include "pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---- field access -------------------------------------------------------- */

static void *member(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  return (char *)msg + f->offset;
}

static void *quantifier(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  return (char *)msg + f->quantifier_offset;
}

static bool is_pointer_type(ProtobufCType type) {
  return type == PROTOBUF_C_TYPE_STRING || type == PROTOBUF_C_TYPE_MESSAGE;
}

/* Size of one element of a repeated field of this type in the C struct. */
static size_t element_size(ProtobufCType type) {
  switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return 8;
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
      return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* protoc turns `map<K, V> f` into `repeated FEntry f` with key = 1 and
 * value = 2; protobuf-c keeps no map flag, so recognise that shape. */
static bool is_map_field(const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return false;
  const ProtobufCMessageDescriptor *entry = f->descriptor;
  return entry->n_fields == 2 && ends_with(entry->short_name, "Entry") &&
         entry->fields[0].id == 1 && strcmp(entry->fields[0].name, "key") == 0 &&
         entry->fields[1].id == 2 && strcmp(entry->fields[1].name, "value") == 0;
}

/* A proto3 plain field counts as present when it differs from its zero. */
static bool value_is_nonzero(ProtobufCType type, const void *p) {
  switch (type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)p;
      return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
      return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE:
      return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_FLOAT:
      return *(const float *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      return *(const double *)p != 0;
    default: {
      static const uint8_t zeros[8];
      return memcmp(p, zeros, element_size(type)) != 0;
    }
  }
}

/* Mirrors protobuf-c's own pack rules, so JSON shows what the wire carries
 * (minus proto3 zero values, which the wire omits too). */
static bool field_is_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(size_t *)quantifier(msg, f) > 0;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) return *(uint32_t *)quantifier(msg, f) == f->id;
  if (f->label == PROTOBUF_C_LABEL_NONE) return value_is_nonzero(f->type, member(msg, f));
  if (is_pointer_type(f->type)) {
    const void *p = *(void *const *)member(msg, f);
    return p != NULL && p != f->default_value;
  }
  if (f->label == PROTOBUF_C_LABEL_REQUIRED) return true;
  return *(protobuf_c_boolean *)quantifier(msg, f);
}

/* Records that a just-set singular field is present (has_ flag, oneof case). */
static void mark_present(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)quantifier(msg, f) = f->id;
  else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && !is_pointer_type(f->type))
    *(protobuf_c_boolean *)quantifier(msg, f) = 1;
}

/* ---- text helpers -------------------------------------------------------- */

static bool utf8_valid(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t len = ch_utf8_sequence(s + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

/* A JSON string of s with every invalid byte replaced by U+FFFD. */
static json_t *json_string_repaired(const uint8_t *s, size_t n) {
  if (utf8_valid(s, n)) return json_stringn_nocheck((const char *)s, n);
  char *buf = malloc(n * 3 + 1);
  if (!buf) return NULL;
  size_t out = 0;
  for (size_t i = 0; i < n;) {
    size_t len = ch_utf8_sequence(s + i, n - i);
    if (len == 0) {
      memcpy(buf + out, "\xEF\xBF\xBD", 3);
      out += 3;
      i++;
    } else {
      memcpy(buf + out, s + i, len);
      out += len;
      i += len;
    }
  }
  json_t *j = json_stringn_nocheck(buf, out);
  free(buf);
  return j;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *in, size_t n) {
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

static int base64_value(char c) {
  if (c == '-') return 62; /* URL-safe alphabet accepted on input */
  if (c == '_') return 63;
  const char *p = c ? strchr(b64_alphabet, c) : NULL;
  return p ? (int)(p - b64_alphabet) : -1;
}

/* Decodes standard or URL-safe base64, padding optional. Returns 0 or -1. */
static int base64_decode(const char *in, size_t n, ProtobufCBinaryData *out) {
  while (n > 0 && in[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  uint8_t *buf = malloc(n * 3 / 4 + 1);
  if (!buf) return -1;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = base64_value(in[i]);
    if (v < 0) {
      free(buf);
      return -1;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (uint8_t)(acc >> bits);
    }
  }
  out->data = buf;
  out->len = o;
  return 0;
}

/* proto3's JSON name: underscores dropped, the letter after each capitalised
 * ("pod_sandbox_id" -> "podSandboxId"). Returns false if it does not fit. */
static bool lower_camel(const char *name, char *out, size_t size) {
  size_t o = 0;
  bool upper = false;
  for (const char *p = name; *p; p++) {
    if (*p == '_') {
      upper = true;
      continue;
    }
    if (o + 1 >= size) return false;
    out[o++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
    upper = false;
  }
  out[o] = '\0';
  return true;
}

/* ---- to JSON ------------------------------------------------------------- */

static json_t *float_to_json(double v) {
  if (isnan(v)) return json_string("NaN");
  if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
  return json_real(v);
}

static json_t *uint64_to_json(uint64_t v) {
  if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return json_string(buf);
}

static json_t *enum_to_json(const ProtobufCEnumDescriptor *ed, int v) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
  return ev ? json_string(ev->name) : json_integer(v);
}

static json_t *bytes_to_json(const ProtobufCBinaryData *b) {
  if (b->len == 0 || utf8_valid(b->data, b->len))
    return json_stringn_nocheck((const char *)b->data, b->len);
  char *text = base64_encode(b->data, b->len);
  json_t *obj = text ? json_pack("{s:s}", "base64", text) : NULL;
  free(text);
  return obj;
}

static json_t *string_to_json(const char *s) {
  return s ? json_string_repaired((const uint8_t *)s, strlen(s)) : json_string("");
}

/* One value of type f->type stored at p. */
static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return uint64_to_json(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
      return float_to_json(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
      return float_to_json(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
      return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
      return enum_to_json(f->descriptor, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING:
      return string_to_json(*(char *const *)p);
    case PROTOBUF_C_TYPE_BYTES:
      return bytes_to_json(p);
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
      return sub ? ch_pb_to_json(sub) : json_object();
    }
  }
  return json_null();
}

/* A map key as JSON object key text: strings as they are, numbers in decimal. */
static char *map_key_text(const ProtobufCMessage *entry) {
  const ProtobufCFieldDescriptor *kf = &entry->descriptor->fields[0];
  json_t *k = value_to_json(kf, member(entry, kf));
  char *text = NULL;
  if (json_is_string(k))
    text = strndup(json_string_value(k), json_string_length(k));
  else if (json_is_boolean(k))
    text = strdup(json_is_true(k) ? "true" : "false");
  else if (json_is_integer(k) &&
           asprintf(&text, "%" JSON_INTEGER_FORMAT, json_integer_value(k)) < 0)
    text = NULL;
  json_decref(k);
  return text;
}

static json_t *map_to_json(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  size_t n = *(size_t *)quantifier(msg, f);
  ProtobufCMessage **entries = *(ProtobufCMessage ***)member(msg, f);
  json_t *obj = json_object();
  for (size_t i = 0; i < n && obj; i++) {
    const ProtobufCFieldDescriptor *vf = &entries[i]->descriptor->fields[1];
    char *key = map_key_text(entries[i]);
    if (key) json_object_set_new(obj, key, value_to_json(vf, member(entries[i], vf)));
    free(key);
  }
  return obj;
}

static json_t *repeated_to_json(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  size_t n = *(size_t *)quantifier(msg, f);
  const char *arr = *(char *const *)member(msg, f);
  size_t size = element_size(f->type);
  json_t *list = json_array();
  for (size_t i = 0; i < n && list; i++)
    json_array_append_new(list, value_to_json(f, arr + i * size));
  return list;
}

static json_t *field_to_json(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  if (is_map_field(f)) return map_to_json(msg, f);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) return repeated_to_json(msg, f);
  return value_to_json(f, member(msg, f));
}

json_t *ch_pb_to_json(const ProtobufCMessage *msg) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  json_t *obj = json_object();
  for (unsigned i = 0; i < desc->n_fields && obj; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    if (field_is_present(msg, f)) json_object_set_new(obj, f->name, field_to_json(msg, f));
  }
  return obj;
}

/* ---- from JSON ----------------------------------------------------------- */

/* The dotted path of the value being read, for error messages. Appending
 * returns the old length so the caller can cut back to it. */
typedef struct json_path {
  char text[512];
  size_t len;
  bool lenient; /* skip unknown keys instead of failing */
} json_path;

static size_t path_push(json_path *p, const char *fmt, const char *s, size_t index) {
  size_t old = p->len;
  int n;
  if (s)
    n = snprintf(p->text + p->len, sizeof p->text - p->len, fmt, s);
  else
    n = snprintf(p->text + p->len, sizeof p->text - p->len, fmt, index);
  if (n > 0) p->len += (size_t)n;
  if (p->len >= sizeof p->text) p->len = sizeof p->text - 1;
  return old;
}

static void path_pop(json_path *p, size_t old) {
  p->len = old;
  p->text[old] = '\0';
}

static const char *json_type_name(const json_t *j) {
  switch (json_typeof(j)) {
    case JSON_OBJECT:
      return "object";
    case JSON_ARRAY:
      return "array";
    case JSON_STRING:
      return "string";
    case JSON_INTEGER:
      return "integer";
    case JSON_REAL:
      return "real";
    case JSON_TRUE:
    case JSON_FALSE:
      return "boolean";
    case JSON_NULL:
      return "null";
  }
  return "value";
}

static int type_error(const json_path *p, const char *expected, const json_t *got, ch_error *err) {
  return ch_fail(err, "%s: expected %s, got %s", p->text, expected, json_type_name(got));
}

static int message_from_json(const ProtobufCMessageDescriptor *desc, const json_t *json,
                             ProtobufCMessage **out, json_path *p, ch_error *err);

/* Reads a signed integer in [min, max] from an integer, an integral real or a
 * decimal string. */
static int read_int64(const json_t *j, int64_t min, int64_t max, int64_t *out, const json_path *p,
                      ch_error *err) {
  if (json_is_integer(j)) {
    *out = json_integer_value(j);
  } else if (json_is_real(j)) {
    double d = json_real_value(j);
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
      return ch_fail(err, "%s: %g is not an integer in range", p->text, d);
    *out = (int64_t)d;
  } else if (json_is_string(j)) {
    const char *s = json_string_value(j);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
      return ch_fail(err, "%s: \"%s\" is not an integer", p->text, s);
    *out = v;
  } else {
    return type_error(p, "an integer", j, err);
  }
  if (*out < min || *out > max)
    return ch_fail(err, "%s: %" PRId64 " is out of range", p->text, *out);
  return 0;
}

/* Like read_int64, for unsigned fields up to max. */
static int read_uint64(const json_t *j, uint64_t max, uint64_t *out, const json_path *p,
                       ch_error *err) {
  if (json_is_string(j)) {
    const char *s = json_string_value(j);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || strchr(s, '-'))
      return ch_fail(err, "%s: \"%s\" is not an unsigned integer", p->text, s);
    *out = v;
  } else {
    int64_t v = 0; /* GCC -O3 cannot see that read_int64 sets it on success */
    if (read_int64(j, 0, INT64_MAX, &v, p, err) < 0) return -1;
    *out = (uint64_t)v;
  }
  if (*out > max) return ch_fail(err, "%s: %" PRIu64 " is out of range", p->text, *out);
  return 0;
}

static int read_double(const json_t *j, double *out, const json_path *p, ch_error *err) {
  if (json_is_number(j)) {
    *out = json_number_value(j);
    return 0;
  }
  if (!json_is_string(j)) return type_error(p, "a number", j, err);
  const char *s = json_string_value(j);
  if (strcmp(s, "NaN") == 0)
    *out = NAN;
  else if (strcmp(s, "Infinity") == 0)
    *out = INFINITY;
  else if (strcmp(s, "-Infinity") == 0)
    *out = -INFINITY;
  else {
    char *end;
    *out = strtod(s, &end);
    if (end == s || *end != '\0') return ch_fail(err, "%s: \"%s\" is not a number", p->text, s);
  }
  return 0;
}

static int read_enum(const ProtobufCEnumDescriptor *ed, const json_t *j, int *out,
                     const json_path *p, ch_error *err) {
  if (json_is_string(j)) {
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(j));
    if (!ev)
      return ch_fail(err, "%s: unknown %s value \"%s\"", p->text, ed->short_name,
                     json_string_value(j));
    *out = ev->value;
    return 0;
  }
  if (!json_is_integer(j)) return type_error(p, "an enum name or number", j, err);
  int64_t v;
  if (read_int64(j, INT32_MIN, INT32_MAX, &v, p, err) < 0) return -1;
  *out = (int)v; /* proto3 enums are open: any int32 is kept */
  return 0;
}

static int read_string(const json_t *j, char **out, const json_path *p, ch_error *err) {
  if (!json_is_string(j)) return type_error(p, "a string", j, err);
  *out = strdup(json_string_value(j));
  return *out ? 0 : ch_fail(err, "%s: out of memory", p->text);
}

static int read_bytes(const json_t *j, ProtobufCBinaryData *out, const json_path *p,
                      ch_error *err) {
  const json_t *b64 =
      json_is_object(j) && json_object_size(j) == 1 ? json_object_get(j, "base64") : NULL;
  if (json_is_string(b64)) {
    if (base64_decode(json_string_value(b64), json_string_length(b64), out) < 0)
      return ch_fail(err, "%s: invalid base64", p->text);
    return 0;
  }
  if (!json_is_string(j)) return type_error(p, "a string or {\"base64\": ...}", j, err);
  size_t n = json_string_length(j);
  out->data = malloc(n ? n : 1);
  if (!out->data) return ch_fail(err, "%s: out of memory", p->text);
  memcpy(out->data, json_string_value(j), n);
  out->len = n;
  return 0;
}

static int read_integer_value(ProtobufCType type, const json_t *j, void *dst, const json_path *p,
                              ch_error *err) {
  int64_t s;
  uint64_t u;
  switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if (read_int64(j, INT32_MIN, INT32_MAX, &s, p, err) < 0) return -1;
      *(int32_t *)dst = (int32_t)s;
      return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if (read_uint64(j, UINT32_MAX, &u, p, err) < 0) return -1;
      *(uint32_t *)dst = (uint32_t)u;
      return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if (read_uint64(j, UINT64_MAX, &u, p, err) < 0) return -1;
      *(uint64_t *)dst = u;
      return 0;
    default: /* the three 64-bit signed types */
      if (read_int64(j, INT64_MIN, INT64_MAX, &s, p, err) < 0) return -1;
      *(int64_t *)dst = s;
      return 0;
  }
}

/* Reads one value of f's type from j into dst (a struct member or an array
 * slot). Owned memory is only stored into dst once it is complete. */
static int read_value(const ProtobufCFieldDescriptor *f, const json_t *j, void *dst, json_path *p,
                      ch_error *err) {
  double d;
  switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
      if (read_double(j, &d, p, err) < 0) return -1;
      *(float *)dst = (float)d;
      return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      return read_double(j, (double *)dst, p, err);
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(j)) return type_error(p, "a boolean", j, err);
      *(protobuf_c_boolean *)dst = json_is_true(j);
      return 0;
    case PROTOBUF_C_TYPE_ENUM:
      return read_enum(f->descriptor, j, (int *)dst, p, err);
    case PROTOBUF_C_TYPE_STRING:
      return read_string(j, (char **)dst, p, err);
    case PROTOBUF_C_TYPE_BYTES:
      return read_bytes(j, (ProtobufCBinaryData *)dst, p, err);
    case PROTOBUF_C_TYPE_MESSAGE:
      return message_from_json(f->descriptor, j, (ProtobufCMessage **)dst, p, err);
    default:
      return read_integer_value(f->type, j, dst, p, err);
  }
}

/* Allocates a zeroed array for a repeated field and hangs it on the message
 * with count 0; the caller raises the count as elements are filled in. */
static void *repeated_alloc(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, size_t n) {
  void *arr = calloc(n ? n : 1, element_size(f->type));
  if (arr) {
    *(void **)member(msg, f) = arr;
    *(size_t *)quantifier(msg, f) = 0;
  }
  return arr;
}

/* One map entry message from a JSON object member. */
static int map_entry_from_json(const ProtobufCMessageDescriptor *ed, const char *key,
                               const json_t *value, ProtobufCMessage **out, json_path *p,
                               ch_error *err) {
  ProtobufCMessage *entry = calloc(1, ed->sizeof_message);
  if (!entry) return ch_fail(err, "%s: out of memory", p->text);
  protobuf_c_message_init(ed, entry);
  json_t *key_json = json_string(key);
  int rc = key_json ? read_value(&ed->fields[0], key_json, member(entry, &ed->fields[0]), p, err)
                    : ch_fail(err, "%s: map key is not valid UTF-8", p->text);
  json_decref(key_json);
  if (rc == 0 && !json_is_null(value))
    rc = read_value(&ed->fields[1], value, member(entry, &ed->fields[1]), p, err);
  if (rc < 0) {
    protobuf_c_message_free_unpacked(entry, NULL);
    return -1;
  }
  *out = entry;
  return 0;
}

static int map_from_json(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const json_t *j,
                         json_path *p, ch_error *err) {
  if (!json_is_object(j)) return type_error(p, "an object", j, err);
  ProtobufCMessage **entries = repeated_alloc(msg, f, json_object_size(j));
  if (!entries) return ch_fail(err, "%s: out of memory", p->text);
  size_t *count = quantifier(msg, f);
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)j, key, value) {
    size_t mark = path_push(p, "[\"%s\"]", key, 0);
    int rc = map_entry_from_json(f->descriptor, key, value, &entries[*count], p, err);
    path_pop(p, mark);
    if (rc < 0) return -1;
    (*count)++;
  }
  return 0;
}

static int repeated_from_json(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                              const json_t *j, json_path *p, ch_error *err) {
  if (!json_is_array(j)) return type_error(p, "an array", j, err);
  char *arr = repeated_alloc(msg, f, json_array_size(j));
  if (!arr) return ch_fail(err, "%s: out of memory", p->text);
  size_t *count = quantifier(msg, f);
  size_t size = element_size(f->type);
  for (size_t i = 0; i < json_array_size(j); i++) {
    size_t mark = path_push(p, "[%zu]", NULL, i);
    int rc = read_value(f, json_array_get(j, i), arr + i * size, p, err);
    path_pop(p, mark);
    if (rc < 0) return -1;
    (*count)++;
  }
  return 0;
}

static int field_from_json(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                           const json_t *j, json_path *p, ch_error *err) {
  if (is_map_field(f)) return map_from_json(msg, f, j, p, err);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) return repeated_from_json(msg, f, j, p, err);
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF && *(uint32_t *)quantifier(msg, f) != 0)
    return ch_fail(err, "%s: another field of the same oneof is already set", p->text);
  /* A proto2 default string is static: drop the pointer before replacing it. */
  if (f->type == PROTOBUF_C_TYPE_STRING) *(char **)member(msg, f) = NULL;
  if (read_value(f, j, member(msg, f), p, err) < 0) {
    if (f->type == PROTOBUF_C_TYPE_STRING) *(const void **)member(msg, f) = f->default_value;
    return -1;
  }
  mark_present(msg, f);
  return 0;
}

/* Finds the field a JSON key names: its proto name, or the lowerCamelCase
 * form of the key and of the name agree. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
  if (f) return f;
  char want[128], have[128];
  if (!lower_camel(key, want, sizeof want)) return NULL;
  for (unsigned i = 0; i < desc->n_fields; i++)
    if (lower_camel(desc->fields[i].name, have, sizeof have) && strcmp(want, have) == 0)
      return &desc->fields[i];
  return NULL;
}

static int members_from_json(ProtobufCMessage *msg, const json_t *json, bool *seen, json_path *p,
                             ch_error *err) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)json, key, value) {
    const ProtobufCFieldDescriptor *f = find_field(desc, key);
    if (!f && p->lenient) continue;
    if (!f) return ch_fail(err, "%s: unknown field \"%s\"", p->text, key);
    size_t index = (size_t)(f - desc->fields);
    if (seen[index]) return ch_fail(err, "%s: field \"%s\" given twice", p->text, f->name);
    seen[index] = true;
    if (json_is_null(value)) continue;
    size_t mark = path_push(p, ".%s", f->name, 0);
    int rc = field_from_json(msg, f, value, p, err);
    path_pop(p, mark);
    if (rc < 0) return -1;
  }
  return 0;
}

static int message_from_json(const ProtobufCMessageDescriptor *desc, const json_t *json,
                             ProtobufCMessage **out, json_path *p, ch_error *err) {
  *out = NULL;
  if (json && !json_is_null(json) && !json_is_object(json))
    return type_error(p, "an object", json, err);
  ProtobufCMessage *msg = calloc(1, desc->sizeof_message);
  bool *seen = calloc(desc->n_fields ? desc->n_fields : 1, sizeof *seen);
  if (!msg || !seen) {
    free(msg);
    free(seen);
    return ch_fail(err, "%s: out of memory", p->text);
  }
  protobuf_c_message_init(desc, msg);
  int rc = json_is_object(json) ? members_from_json(msg, json, seen, p, err) : 0;
  free(seen);
  if (rc < 0) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return -1;
  }
  *out = msg;
  return 0;
}

int ch_pb_from_json(const ProtobufCMessageDescriptor *desc, const json_t *json,
                    ProtobufCMessage **out, ch_error *err) {
  json_path path = {.len = 0};
  path_push(&path, "%s", desc->short_name, 0);
  return message_from_json(desc, json, out, &path, err);
}

int ch_pb_from_json_lenient(const ProtobufCMessageDescriptor *desc, const json_t *json,
                            ProtobufCMessage **out, ch_error *err) {
  json_path path = {.len = 0, .lenient = true};
  path_push(&path, "%s", desc->short_name, 0);
  return message_from_json(desc, json, out, &path, err);
}
