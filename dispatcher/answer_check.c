/* SPDX-License-Identifier: Apache-2.0 */
/* answer_check.c: the bounds and value rules of answer_check.h.
 *
 * Two passes, both linear in the answer's size: one over the encoded bytes
 * (sizes, entry counts and NUL bytes, which decoding would hide by cutting
 * the string), guided by the message descriptors; one over the decoded
 * answer (numeric ranges, cgroup paths, cpusets, keys). Messages quote the
 * offending value with control characters and non-ASCII bytes escaped, so
 * that the cause can go into a log line and a gRPC status as is. */
#include "answer_check.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hook.pb-c.h"

const ch_answer_limits ch_answer_default_limits = {
    .max_bytes = CH_ANSWER_MAX_BYTES,
    .max_entries = CH_ANSWER_MAX_ENTRIES,
    .max_key_bytes = CH_ANSWER_MAX_KEY_BYTES,
    .max_value_bytes = CH_ANSWER_MAX_VALUE_BYTES,
};

/* The first bytes of s[0..n) for a message: quoted, with '"', '\\',
 * control characters and bytes >= 0x7f escaped, "..." when cut. */
static const char *excerpt(char *out, size_t size, const char *s, size_t n) {
  size_t used = 0;
  out[used++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (used + 8 >= size) {
      used += (size_t)snprintf(out + used, size - used, "...");
      break;
    }
    if (c == '"' || c == '\\')
      used += (size_t)snprintf(out + used, size - used, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
    else
      out[used++] = (char)c;
  }
  snprintf(out + used, size - used, "\"");
  return out;
}

/* ---- the encoded answer ---- */

typedef struct wire {
  const uint8_t *p, *end;
} wire;

static int read_varint(wire *w, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
    uint8_t b = *w->p++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

static int skip(wire *w, uint64_t n) {
  if ((uint64_t)(w->end - w->p) < n) return -1;
  w->p += n;
  return 0;
}

typedef struct walk {
  const ch_answer_limits *limits;
  ch_error *err;
} walk;

/* The current map entry's key, once seen, to name its value in messages. */
typedef struct entry_key {
  const char *p;
  size_t n;
} entry_key;

static bool is_map_entry(const ProtobufCMessageDescriptor *d) {
  size_t len = strlen(d->name);
  return d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0;
}

static int check_wire_string(const walk *wk, const char *path, bool is_key, const entry_key *key,
                             const char *s, size_t n) {
  char a[96], b[96];
  size_t bound = is_key ? wk->limits->max_key_bytes : wk->limits->max_value_bytes;
  const char *what = is_key ? "key" : "value";
  if (n > bound) {
    if (key && key->p && !is_key)
      return ch_fail(wk->err, "%s[%s] value of %zu bytes is longer than the bound of %zu", path,
                     excerpt(a, sizeof a, key->p, key->n), n, bound);
    return ch_fail(wk->err, "%s %s of %zu bytes is longer than the bound of %zu", path, what, n,
                   bound);
  }
  if (!memchr(s, '\0', n)) return 0;
  if (key && key->p && !is_key)
    return ch_fail(wk->err, "%s[%s] value contains a NUL byte: %s", path,
                   excerpt(a, sizeof a, key->p, key->n), excerpt(b, sizeof b, s, n));
  return ch_fail(wk->err, "%s %s contains a NUL byte: %s", path, what, excerpt(b, sizeof b, s, n));
}

static int walk_message(const walk *wk, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len, const char *path);

/* One length-delimited field of message d: a string, or a message walked in
 * turn. */
static int walk_field(const walk *wk, const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f, const uint8_t *data, size_t n,
                      const char *path, entry_key *key) {
  bool entry = is_map_entry(d);
  char name[256]; /* a map entry's strings are named by the map */
  snprintf(name, sizeof name, "%s%s%s", path, *path ? "." : "", entry ? "" : f->name);
  if (entry) name[strlen(path)] = '\0';
  if (f->type == PROTOBUF_C_TYPE_STRING) {
    bool is_key = entry && f->id == 1;
    if (check_wire_string(wk, name, is_key, entry ? key : NULL, (const char *)data, n) != 0)
      return -1;
    if (is_key) *key = (entry_key){(const char *)data, n};
    return 0;
  }
  if (f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
  return walk_message(wk, f->descriptor, data, n, name);
}

/* Counts one more entry of repeated field f; fails past the bound. */
static int count_entry(const walk *wk, const ProtobufCMessageDescriptor *d,
                       const ProtobufCFieldDescriptor *f, size_t *counts, const char *path) {
  size_t i = (size_t)(f - d->fields);
  if (f->label != PROTOBUF_C_LABEL_REPEATED || i >= 32) return 0;
  if (++counts[i] <= wk->limits->max_entries) return 0;
  return ch_fail(wk->err, "%s%s%s has more than %zu entries", path, *path ? "." : "", f->name,
                 wk->limits->max_entries);
}

static int walk_message(const walk *wk, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len, const char *path) {
  wire w = {p, p + len};
  size_t counts[32] = {0};
  entry_key key = {NULL, 0};
  while (w.p < w.end) {
    uint64_t tag, n;
    if (read_varint(&w, &tag) != 0) return 0; /* malformed: the decoder says so */
    switch (tag & 7) {
      case 0:
        if (read_varint(&w, &n) != 0) return 0;
        continue;
      case 1:
        if (skip(&w, 8) != 0) return 0;
        continue;
      case 5:
        if (skip(&w, 4) != 0) return 0;
        continue;
      case 2:
        break;
      default:
        return 0;
    }
    if (read_varint(&w, &n) != 0) return 0;
    const uint8_t *data = w.p;
    if (skip(&w, n) != 0) return 0;
    const ProtobufCFieldDescriptor *f =
        tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                               : NULL;
    if (!f) continue;
    if (count_entry(wk, d, f, counts, path) != 0 ||
        walk_field(wk, d, f, data, (size_t)n, path, &key) != 0)
      return -1;
  }
  return 0;
}

int ch_answer_check_wire(const ProtobufCMessageDescriptor *type, const uint8_t *bytes, size_t len,
                         const ch_answer_limits *limits, ch_error *err) {
  if (len > limits->max_bytes)
    return ch_fail(err, "the answer is %zu bytes, more than the bound of %zu", len,
                   limits->max_bytes);
  walk wk = {limits, err};
  return walk_message(&wk, type, bytes, len, "");
}

/* ---- the decoded answer ---- */

static bool has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
  return false;
}

/* "/a/b" without "." or ".." components, or "name.slice" without '/'. */
static bool cgroup_parent_ok(const char *s) {
  size_t n = strlen(s);
  if (has_control(s)) return false;
  if (s[0] != '/') return n > 6 && strcmp(s + n - 6, ".slice") == 0 && !strchr(s, '/');
  for (const char *c = s; *c;) {
    while (*c == '/') c++;
    size_t len = strcspn(c, "/");
    if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) return false;
    c += len;
  }
  return true;
}

static int check_cgroup_parent(const char *field, const char *value, ch_error *err) {
  char q[96];
  if (!value || !*value || cgroup_parent_ok(value)) return 0;
  return ch_fail(err,
                 "%s %s is not an absolute path without '.' or '..' components nor a systemd "
                 "slice name",
                 field, excerpt(q, sizeof q, value, strlen(value)));
}

/* "0-3,8,10-11": ascending ranges of numbers below 65536. */
static bool cpuset_ok(const char *s) {
  const char *p = s;
  while (*p) {
    char *end;
    if (!isdigit((unsigned char)*p)) return false;
    unsigned long lo = strtoul(p, &end, 10), hi = lo;
    p = end;
    if (*p == '-') {
      if (!isdigit((unsigned char)*++p)) return false;
      hi = strtoul(p, &end, 10);
      p = end;
    }
    if (lo > hi || hi >= 65536) return false;
    if (*p == ',' && p[1])
      p++;
    else if (*p)
      return false;
  }
  return true;
}

static int check_range(const char *prefix, const char *field, int64_t v, bool ok, const char *rule,
                       ch_error *err) {
  if (ok) return 0;
  return ch_fail(err, "%s.%s %" PRId64 " is out of range (%s)", prefix, field, v, rule);
}

static int check_numbers(const Runtime__V1alpha1__LinuxContainerResources *r, const char *p,
                         ch_error *err) {
  int64_t shares = r->cpu_shares, period = r->cpu_period, quota = r->cpu_quota;
  return check_range(p, "cpu_shares", shares, shares == 0 || (shares >= 2 && shares <= 262144),
                     "0 or 2..262144", err) ||
         check_range(p, "cpu_period", period, period == 0 || (period >= 1000 && period <= 1000000),
                     "0 or 1000..1000000", err) ||
         check_range(p, "cpu_quota", quota, quota == -1 || quota == 0 || quota >= 1000,
                     "-1, 0 or >= 1000", err) ||
         check_range(p, "memory_limit_in_bytes", r->memory_limit_in_bytes,
                     r->memory_limit_in_bytes >= 0, ">= 0", err) ||
         check_range(p, "memory_swap_limit_in_bytes", r->memory_swap_limit_in_bytes,
                     r->memory_swap_limit_in_bytes >= -1, ">= -1", err) ||
         check_range(p, "oom_score_adj", r->oom_score_adj,
                     r->oom_score_adj >= -1000 && r->oom_score_adj <= 1000, "-1000..1000", err);
}

static int check_cpuset(const char *p, const char *field, const char *v, ch_error *err) {
  char q[96];
  if (!v || cpuset_ok(v)) return 0;
  return ch_fail(err, "%s.%s %s is not a cpuset list such as \"0-3,8\"", p, field,
                 excerpt(q, sizeof q, v, strlen(v)));
}

/* "2MB", "1GB", "64KB": digits then a unit. */
static bool page_size_ok(const char *s) {
  size_t digits = strspn(s, "0123456789");
  return digits > 0 && strlen(s + digits) == 2 && strchr("KMGTP", s[digits]) &&
         s[digits + 1] == 'B';
}

static bool unified_key_ok(const char *k) {
  return *k && *k != '.' &&
         strspn(k,
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789_.") == strlen(k);
}

static int check_lists(const Runtime__V1alpha1__LinuxContainerResources *r, const char *p,
                       ch_error *err) {
  char q[96];
  for (size_t i = 0; i < r->n_hugepage_limits; i++) {
    const char *size = r->hugepage_limits[i]->page_size;
    if (!page_size_ok(size))
      return ch_fail(err, "%s.hugepage_limits page_size %s is not a size such as \"2MB\"", p,
                     excerpt(q, sizeof q, size, strlen(size)));
  }
  for (size_t i = 0; i < r->n_unified; i++) {
    const char *k = r->unified[i]->key, *v = r->unified[i]->value;
    if (!unified_key_ok(k))
      return ch_fail(err, "%s.unified key %s is not a cgroup file name", p,
                     excerpt(q, sizeof q, k, strlen(k)));
    if (has_control(v))
      return ch_fail(err, "%s.unified[%s] value %s contains control characters", p, k,
                     excerpt(q, sizeof q, v, strlen(v)));
  }
  return 0;
}

static int check_resources(const Runtime__V1alpha1__LinuxContainerResources *r, const char *p,
                           ch_error *err) {
  if (!r) return 0;
  return check_numbers(r, p, err) || check_cpuset(p, "cpuset_cpus", r->cpuset_cpus, err) ||
                 check_cpuset(p, "cpuset_mems", r->cpuset_mems, err) || check_lists(r, p, err)
             ? -1
             : 0;
}

typedef struct {
  ProtobufCMessage base;
  char *key, *value;
} pair;

/* Keys not empty; for envs, without '='. */
static int check_keys(pair **list, size_t n, const char *field, bool env, ch_error *err) {
  char q[96];
  for (size_t i = 0; i < n; i++) {
    const char *k = list[i]->key;
    if (!*k) return ch_fail(err, "%s has an empty key", field);
    if (env && strchr(k, '='))
      return ch_fail(err, "%s key %s contains '='", field, excerpt(q, sizeof q, k, strlen(k)));
  }
  return 0;
}

static int check_pod(const Runtime__V1alpha1__PodSandboxHookResponse *a, ch_error *err) {
  return check_keys((pair **)a->labels, a->n_labels, "labels", false, err) ||
                 check_keys((pair **)a->annotations, a->n_annotations, "annotations", false, err) ||
                 check_cgroup_parent("cgroup_parent", a->cgroup_parent, err) ||
                 check_resources(a->resources, "resources", err)
             ? -1
             : 0;
}

static int check_container(const Runtime__V1alpha1__ContainerResourceHookResponse *a,
                           ch_error *err) {
  return check_keys((pair **)a->container_annotations, a->n_container_annotations,
                    "container_annotations", false, err) ||
                 check_keys((pair **)a->container_envs, a->n_container_envs, "container_envs", true,
                            err) ||
                 check_cgroup_parent("pod_cgroup_parent", a->pod_cgroup_parent, err) ||
                 check_resources(a->container_resources, "container_resources", err)
             ? -1
             : 0;
}

int ch_answer_check_values(const ProtobufCMessage *answer, ch_error *err) {
  if (answer->descriptor == &runtime__v1alpha1__pod_sandbox_hook_response__descriptor)
    return check_pod((const Runtime__V1alpha1__PodSandboxHookResponse *)answer, err);
  if (answer->descriptor == &runtime__v1alpha1__container_resource_hook_response__descriptor)
    return check_container((const Runtime__V1alpha1__ContainerResourceHookResponse *)answer, err);
  return 0;
}
