/* SPDX-License-Identifier: Apache-2.0 */
/* merge.c: the merge rules of merge.h, generic over protobuf-c descriptors
 * where the same rule applies to several message types. */
#include "merge.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbutil.h"

#define MEMBER(type, msg, offset) ((type *)((char *)(msg) + (offset)))

/* Records that `plugin` set `what`; notes an overwrite if another plugin
 * had set it earlier in the same call. */
static void trace_note(ch_merge_trace *t, const char *what, const char *plugin) {
  if (!t) return;
  for (size_t i = 0; i < t->count; i++) {
    if (strcmp(t->notes[i].what, what) != 0) continue;
    if (strcmp(t->notes[i].plugin, plugin) != 0) {
      size_t used = strlen(t->overwrites);
      snprintf(t->overwrites + used, sizeof t->overwrites - used, "%s%s (%s -> %s)",
               used ? ", " : "", what, t->notes[i].plugin, plugin);
      t->notes[i].plugin = plugin;
    }
    return;
  }
  if (t->count == CH_MERGE_TRACE_MAX) return;
  snprintf(t->notes[t->count].what, sizeof t->notes[0].what, "%s", what);
  t->notes[t->count++].plugin = plugin;
}

/* ---- the change list (want_changes) ---- */

void ch_merge_trace_clear_changes(ch_merge_trace *t) {
  t->changes_len = 0;
  t->change_count = 0;
}

static void change_note(ch_merge_trace *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void change_note(ch_merge_trace *t, const char *fmt, ...) {
  static const char more[] = "...";
  char entry[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(entry, sizeof entry, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof entry ? (size_t)n : sizeof entry - 1;
  size_t room = sizeof t->changes - t->changes_len;
  if (room < sizeof more) return; /* already ended with "..." */
  if (len + 1 > room - sizeof more) {
    memcpy(t->changes + t->changes_len, more, sizeof more);
    t->changes_len = sizeof t->changes;
  } else {
    memcpy(t->changes + t->changes_len, entry, len + 1);
    t->changes_len += len + 1;
  }
  t->change_count++;
}

static bool want_changes(const ch_merge_trace *t) { return t && t->want_changes; }

/* "labels" -> "label", "annotations" -> "annotation", "envs" -> "env";
 * dotted names (resources.unified) stay. Returns the length to print. */
static int singular_length(const char *label) {
  size_t n = strlen(label);
  return (int)(n > 1 && label[n - 1] == 's' && !strchr(label, '.') ? n - 1 : n);
}

static void note_key_change(ch_merge_trace *t, const char *label, const char *key, const char *old,
                            const char *value) {
  if (!want_changes(t) || (old && strcmp(old, value) == 0)) return;
  if (old)
    change_note(t, "%.*s[%s] %s->%s", singular_length(label), label, key, old, value);
  else
    change_note(t, "%.*s+%s=%s", singular_length(label), label, key, value);
}

static void note_value_change(ch_merge_trace *t, const char *what, const char *old,
                              const char *value) {
  if (!want_changes(t) || strcmp(old, value) == 0) return;
  if (!old[0] || strcmp(old, "0") == 0)
    change_note(t, "%s=%s", what, value);
  else
    change_note(t, "%s %s->%s", what, old, value);
}

/* ---- merging ---- */

/* What merge_map's callback needs to note each pair. */
typedef struct pair_notes {
  ch_merge_trace *trace;
  const char *label, *plugin;
} pair_notes;

static void note_pair(void *ctx, const char *key, const char *old, const char *value) {
  const pair_notes *n = ctx;
  if (!n->trace) return;
  if (want_changes(n->trace)) note_key_change(n->trace, n->label, key, old, value);
  char what[128];
  snprintf(what, sizeof what, "%s[%s]", n->label, key);
  trace_note(n->trace, what, n->plugin);
}

/* Merges the pairs of src's map field into dst's map (or repeated KeyValue)
 * field, in time linear in both sizes (ch_pb_pairs_merge). */
static int merge_map(ProtobufCMessage *dst, const char *dst_field, const ProtobufCMessage *src,
                     const char *src_field, const char *label, ch_merge_trace *t,
                     const char *plugin) {
  pair_notes notes = {.trace = t, .label = label, .plugin = plugin};
  return ch_pb_pairs_merge(dst, dst_field, src, src_field, note_pair, &notes);
}

static int set_string(ProtobufCMessage *dst, const char *field, const char *value, const char *what,
                      ch_merge_trace *t, const char *plugin) {
  if (!value || !*value) return 0;
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(dst->descriptor, field);
  if (!f || f->type != PROTOBUF_C_TYPE_STRING) return -1;
  trace_note(t, what, plugin);
  char **slot = MEMBER(char *, dst, f->offset);
  if (want_changes(t)) note_value_change(t, what, *slot ? *slot : "", value);
  return ch_pb_set_string(slot, value);
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d) {
  size_t len = strlen(d->name);
  return d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0;
}

static bool scalar_is_set(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
      return *MEMBER(uint64_t, m, f->offset) != 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_ENUM:
      return *MEMBER(uint32_t, m, f->offset) != 0;
    case PROTOBUF_C_TYPE_BOOL:
      return *MEMBER(protobuf_c_boolean, m, f->offset) != 0;
    default:
      return false;
  }
}

static size_t scalar_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    default:
      return 4;
  }
}

/* The scalar field as text, for the change list. */
static void scalar_text(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m, char *buf,
                        size_t size) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
      snprintf(buf, size, "%lld", (long long)*MEMBER(int64_t, m, f->offset));
      return;
    case PROTOBUF_C_TYPE_UINT64:
      snprintf(buf, size, "%llu", (unsigned long long)*MEMBER(uint64_t, m, f->offset));
      return;
    case PROTOBUF_C_TYPE_UINT32:
      snprintf(buf, size, "%u", *MEMBER(uint32_t, m, f->offset));
      return;
    case PROTOBUF_C_TYPE_BOOL:
      snprintf(buf, size, "%s", *MEMBER(protobuf_c_boolean, m, f->offset) ? "true" : "false");
      return;
    default: /* int32, sint32, enum */
      snprintf(buf, size, "%d", *MEMBER(int32_t, m, f->offset));
      return;
  }
}

static void note_scalar_change(ch_merge_trace *t, const char *what,
                               const ProtobufCFieldDescriptor *df, const ProtobufCMessage *dst,
                               const ProtobufCFieldDescriptor *sf, const ProtobufCMessage *src) {
  char old[32], value[32];
  scalar_text(df, dst, old, sizeof old);
  scalar_text(sf, src, value, sizeof value);
  note_value_change(t, what, strcmp(old, "false") == 0 ? "" : old, value);
}

/* Replaces dst's repeated message field with converted copies of src's. */
static int replace_list(ProtobufCMessage *dst, const ProtobufCFieldDescriptor *df,
                        const ProtobufCMessage *src, const ProtobufCFieldDescriptor *sf) {
  size_t n = *MEMBER(size_t, src, sf->quantifier_offset);
  ProtobufCMessage **from = *MEMBER(ProtobufCMessage **, src, sf->offset);
  ProtobufCMessage **to = calloc(n, sizeof *to);
  if (!to) return -1;
  for (size_t i = 0; i < n; i++) {
    to[i] = ch_pb_convert(from[i], df->descriptor);
    if (!to[i]) {
      while (i--) protobuf_c_message_free_unpacked(to[i], NULL);
      free(to);
      return -1;
    }
  }
  size_t *dn = MEMBER(size_t, dst, df->quantifier_offset);
  ProtobufCMessage **old = *MEMBER(ProtobufCMessage **, dst, df->offset);
  for (size_t i = 0; i < *dn; i++) protobuf_c_message_free_unpacked(old[i], NULL);
  free(old);
  *MEMBER(ProtobufCMessage **, dst, df->offset) = to;
  *dn = n;
  return 0;
}

static int merge_one_field(ProtobufCMessage *dst, const ProtobufCMessage *src,
                           const ProtobufCFieldDescriptor *sf, const char *prefix,
                           ch_merge_trace *t, const char *plugin) {
  const ProtobufCFieldDescriptor *df =
      protobuf_c_message_descriptor_get_field_by_name(dst->descriptor, sf->name);
  if (!df || df->type != sf->type || df->label != sf->label) return 0;
  char what[128];
  snprintf(what, sizeof what, "%s.%s", prefix, sf->name);
  if (sf->label == PROTOBUF_C_LABEL_REPEATED) {
    if (sf->type != PROTOBUF_C_TYPE_MESSAGE || *MEMBER(size_t, src, sf->quantifier_offset) == 0)
      return 0;
    if (is_map_entry(sf->descriptor))
      return merge_map(dst, df->name, src, sf->name, what, t, plugin);
    trace_note(t, what, plugin);
    if (want_changes(t))
      change_note(t, "%s replaced (%zu)", what, *MEMBER(size_t, src, sf->quantifier_offset));
    return replace_list(dst, df, src, sf);
  }
  if (sf->type == PROTOBUF_C_TYPE_STRING)
    return set_string(dst, df->name, *MEMBER(char *, src, sf->offset), what, t, plugin);
  if (!scalar_is_set(sf, src)) return 0;
  trace_note(t, what, plugin);
  if (want_changes(t)) note_scalar_change(t, what, df, dst, sf, src);
  memcpy(MEMBER(char, dst, df->offset), MEMBER(char, src, sf->offset), scalar_size(sf));
  return 0;
}

int ch_merge_fields(ProtobufCMessage *dst, const ProtobufCMessage *src, const char *prefix,
                    ch_merge_trace *t, const char *plugin) {
  const ProtobufCMessageDescriptor *d = src->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++)
    if (merge_one_field(dst, src, &d->fields[i], prefix, t, plugin) != 0) return -1;
  return 0;
}

static int merge_resources_into(ProtobufCMessage *parent, const char *field,
                                const ProtobufCMessage *resources, const char *prefix,
                                ch_merge_trace *t, const char *plugin) {
  if (!resources) return 0;
  ProtobufCMessage *dst = ch_pb_submessage(parent, field);
  return dst ? ch_merge_fields(dst, resources, prefix, t, plugin) : -1;
}

int ch_merge_pod_answer(Runtime__V1__PodSandboxConfig *config,
                        const Runtime__V1alpha1__PodSandboxHookResponse *answer, ch_merge_trace *t,
                        const char *plugin) {
  ProtobufCMessage *c = &config->base;
  const ProtobufCMessage *a = &answer->base;
  if (merge_map(c, "labels", a, "labels", "labels", t, plugin) != 0 ||
      merge_map(c, "annotations", a, "annotations", "annotations", t, plugin) != 0)
    return -1;
  if ((answer->cgroup_parent && *answer->cgroup_parent) || answer->resources) {
    ProtobufCMessage *linux_ = ch_pb_submessage(c, "linux");
    if (!linux_) return -1;
    if (set_string(linux_, "cgroup_parent", answer->cgroup_parent, "cgroup_parent", t, plugin) ||
        merge_resources_into(linux_, "resources",
                             answer->resources ? &answer->resources->base : NULL, "resources", t,
                             plugin))
      return -1;
  }
  return 0;
}

int ch_merge_env(Runtime__V1__ContainerConfig *config, const char *key, const char *value) {
  for (size_t i = 0; i < config->n_envs; i++) {
    Runtime__V1__KeyValue *kv = config->envs[i];
    if (strcmp(kv->key, key) != 0) continue;
    if (strcmp(kv->value, value) == 0) return 0;
    return ch_pb_set_string(&kv->value, value) == 0 ? 1 : -1;
  }
  Runtime__V1__KeyValue *kv = malloc(sizeof *kv);
  Runtime__V1__KeyValue **grown = realloc(config->envs, (config->n_envs + 1) * sizeof *grown);
  if (grown) config->envs = grown;
  if (!kv || !grown) {
    free(kv);
    return -1;
  }
  runtime__v1__key_value__init(kv);
  if (ch_pb_set_string(&kv->key, key) != 0 || ch_pb_set_string(&kv->value, value) != 0) {
    runtime__v1__key_value__free_unpacked(kv, NULL);
    return -1;
  }
  config->envs[config->n_envs++] = kv;
  return 0;
}

static int merge_envs(Runtime__V1__ContainerConfig *config,
                      const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                      ch_merge_trace *t, const char *plugin) {
  return merge_map(&config->base, "envs", &answer->base, "container_envs", "envs", t, plugin);
}

int ch_merge_container_answer(Runtime__V1__ContainerConfig *config,
                              Runtime__V1__PodSandboxConfig *sandbox,
                              const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                              ch_merge_trace *t, const char *plugin) {
  ProtobufCMessage *c = &config->base;
  const ProtobufCMessage *a = &answer->base;
  if (merge_map(c, "annotations", a, "container_annotations", "annotations", t, plugin) != 0 ||
      merge_envs(config, answer, t, plugin) != 0)
    return -1;
  if (answer->container_resources) {
    ProtobufCMessage *linux_ = ch_pb_submessage(c, "linux");
    if (!linux_ || merge_resources_into(linux_, "resources", &answer->container_resources->base,
                                        "resources", t, plugin) != 0)
      return -1;
  }
  if (sandbox && answer->pod_cgroup_parent && *answer->pod_cgroup_parent) {
    ProtobufCMessage *linux_ = ch_pb_submessage(&sandbox->base, "linux");
    if (!linux_ || set_string(linux_, "cgroup_parent", answer->pod_cgroup_parent,
                              "pod_cgroup_parent", t, plugin) != 0)
      return -1;
  }
  return 0;
}

int ch_merge_update_answer(Runtime__V1__UpdateContainerResourcesRequest *request,
                           const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                           ch_merge_trace *t, const char *plugin) {
  ProtobufCMessage *r = &request->base;
  const ProtobufCMessage *a = &answer->base;
  if (merge_map(r, "annotations", a, "container_annotations", "annotations", t, plugin) != 0)
    return -1;
  if (!answer->container_resources) return 0;
  return merge_resources_into(r, "linux", &answer->container_resources->base, "resources", t,
                              plugin);
}

int ch_merge_record_answer(Runtime__V1alpha1__ContainerResourceHookRequest *record,
                           const Runtime__V1alpha1__ContainerResourceHookResponse *answer,
                           ch_merge_trace *t, const char *plugin) {
  ProtobufCMessage *r = &record->base;
  const ProtobufCMessage *a = &answer->base;
  if (merge_map(r, "container_annotations", a, "container_annotations", "annotations", t, plugin) !=
          0 ||
      merge_map(r, "container_envs", a, "container_envs", "envs", t, plugin) != 0 ||
      set_string(r, "pod_cgroup_parent", answer->pod_cgroup_parent, "pod_cgroup_parent", t,
                 plugin) != 0)
    return -1;
  if (!answer->container_resources) return 0;
  return merge_resources_into(r, "container_resources", &answer->container_resources->base,
                              "resources", t, plugin);
}
