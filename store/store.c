/* SPDX-License-Identifier: Apache-2.0 */
/* store.c: the pod and container tables of store.h.
 *
 * Two uthash tables keyed by ID hold packed hook messages (one `entry` per
 * pod or container; a container's entry also names its pod). One read-write
 * lock guards both tables. The lock covers only moving bytes in and out:
 * - put packs the message into a new entry first, then swaps it in under the
 *   write lock and frees the entry it replaced after unlocking;
 * - get copies the bytes under the read lock and unpacks the copy after;
 * - remove unlinks under the write lock and frees after;
 * - snapshots copy every entry under the read lock, then sort and convert.
 *
 * Keeping the store true while calls race (store.h, "Staying true"):
 * - every put and remove bumps `seq` (under the write lock) and a put
 *   stamps its entry with it;
 * - while a sync with the runtime runs (sync_begin .. sync_end), removals
 *   leave a tombstone (the ID and the seq of its removal), so that what the
 *   runtime listed before a removal is not brought back by the install;
 *   tombstones go when the last sync ends, so they are bounded by the
 *   removals made during syncs;
 * - update_container replaces a container only if it is still there, so an
 *   Update or Start that finishes after a Remove cannot bring it back.
 *
 * A container's full hook request is its own packed record followed by a
 * packed record holding only its pod's fields: concatenated protobuf
 * messages parse as one merged message, so the result is an ordinary
 * ContainerResourceHookRequest whose unknown fields survive too. */
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "pbjson.h"
#include "store_internal.h"

typedef struct entry {
  char *id;     /* the key */
  char *pod_id; /* containers only, else NULL */
  uint8_t *bytes;
  size_t len;
  uint64_t seq;            /* the store's seq when it was put (or removed: tombstones) */
  struct entry *next_gone; /* links entries unlinked together, to free later */
  UT_hash_handle hh;
} entry;

struct ch_store {
  pthread_rwlock_t lock;
  entry *pods;
  entry *containers;
  entry *tombstones; /* IDs removed while a sync ran; no bytes */
  uint64_t seq;      /* bumped by every put and remove */
  unsigned syncs;    /* syncs in progress */
};

/* A copy of one entry's content, made under the read lock. */
typedef struct blob {
  char *id;
  char *pod_id;
  uint8_t *bytes;
  size_t len;
} blob;

/* ---- entries ------------------------------------------------------------- */

static void entry_free(entry *e) {
  if (!e) return;
  free(e->id);
  free(e->pod_id);
  free(e->bytes);
  free(e);
}

static void entry_list_free(entry *e) {
  while (e) {
    entry *next = e->next_gone;
    entry_free(e);
    e = next;
  }
}

static entry *entry_new(const char *id, const char *pod_id, const ProtobufCMessage *msg) {
  entry *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->id = strdup(id);
  e->pod_id = pod_id ? strdup(pod_id) : NULL;
  e->len = protobuf_c_message_get_packed_size(msg);
  e->bytes = malloc(e->len ? e->len : 1);
  if (!e->id || (pod_id && !e->pod_id) || !e->bytes) {
    entry_free(e);
    return NULL;
  }
  protobuf_c_message_pack(msg, e->bytes);
  return e;
}

static void table_clear(entry **table) {
  entry *e, *tmp;
  HASH_ITER(hh, *table, e, tmp) {
    HASH_DEL(*table, e);
    entry_free(e);
  }
}

/* ---- the store ----------------------------------------------------------- */

ch_store *ch_store_new(void) {
  ch_store *s = calloc(1, sizeof *s);
  if (s && pthread_rwlock_init(&s->lock, NULL) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

void ch_store_free(ch_store *s) {
  if (!s) return;
  table_clear(&s->pods);
  table_clear(&s->containers);
  table_clear(&s->tombstones);
  pthread_rwlock_destroy(&s->lock);
  free(s);
}

void ch_store_swap_content(ch_store *s, ch_store *other) {
  pthread_rwlock_wrlock(&s->lock);
  entry *pods = s->pods, *containers = s->containers;
  s->pods = other->pods;
  s->containers = other->containers;
  other->pods = pods;
  other->containers = containers;
  pthread_rwlock_unlock(&s->lock);
}

/* Unlinks the entry `id` from `table`; the caller holds the write lock. */
static entry *table_unlink(entry **table, const char *id) {
  entry *e;
  HASH_FIND_STR(*table, id, e);
  if (e) HASH_DEL(*table, e);
  return e;
}

/* Links `e` into `table` stamped with a new seq; write lock held. */
static void table_link(ch_store *s, entry **table, entry *e) {
  e->seq = ++s->seq;
  HASH_ADD_KEYPTR(hh, *table, e->id, strlen(e->id), e);
}

/* Puts `e` in `table`, replacing (and freeing) the entry with its ID. */
static void table_put(ch_store *s, entry **table, entry *e) {
  pthread_rwlock_wrlock(&s->lock);
  entry *old = table_unlink(table, e->id);
  table_link(s, table, e);
  pthread_rwlock_unlock(&s->lock);
  entry_free(old);
}

/* Notes the removal of `id` if a sync runs; write lock held. A tombstone
 * that cannot be allocated is skipped (the next sync corrects the store). */
static void bury(ch_store *s, const char *id) {
  s->seq++;
  if (s->syncs == 0) return;
  entry *t;
  HASH_FIND_STR(s->tombstones, id, t);
  if (!t) {
    t = calloc(1, sizeof *t);
    if (!t || !(t->id = strdup(id))) {
      free(t);
      return;
    }
    HASH_ADD_KEYPTR(hh, s->tombstones, t->id, strlen(t->id), t);
  }
  t->seq = s->seq;
}

/* ---- syncing with the runtime --------------------------------------------- */

uint64_t ch_store_sync_begin(ch_store *s) {
  pthread_rwlock_wrlock(&s->lock);
  s->syncs++;
  uint64_t mark = s->seq;
  pthread_rwlock_unlock(&s->lock);
  return mark;
}

void ch_store_sync_end(ch_store *s) {
  entry *gone = NULL;
  pthread_rwlock_wrlock(&s->lock);
  if (s->syncs > 0 && --s->syncs == 0) {
    gone = s->tombstones;
    s->tombstones = NULL;
  }
  pthread_rwlock_unlock(&s->lock);
  table_clear(&gone);
}

static bool removed_since(ch_store *s, const char *id, uint64_t mark) {
  entry *t;
  HASH_FIND_STR(s->tombstones, id, t);
  return t && t->seq > mark;
}

/* Moves the entries of *from that `to` lacks and that were not removed since
 * `mark`; with `drop`, unlinks onto *gone the entries of `to` put before
 * `mark` that *from lacks. Write lock of `s` held. */
static void table_sync(ch_store *s, entry **to, entry **from, uint64_t mark, bool drop,
                       entry **gone) {
  entry *e, *tmp, *have;
  HASH_ITER(hh, *to, e, tmp) {
    HASH_FIND_STR(*from, e->id, have);
    if (have || !drop || e->seq > mark) continue;
    HASH_DEL(*to, e);
    e->next_gone = *gone;
    *gone = e;
  }
  HASH_ITER(hh, *from, e, tmp) {
    HASH_FIND_STR(*to, e->id, have);
    if (have || removed_since(s, e->id, mark)) continue;
    HASH_DEL(*from, e);
    table_link(s, to, e);
  }
}

void ch_store_sync_install(ch_store *s, ch_store *fresh, uint64_t mark, bool drop) {
  entry *gone = NULL;
  pthread_rwlock_wrlock(&s->lock);
  table_sync(s, &s->pods, &fresh->pods, mark, drop, &gone);
  table_sync(s, &s->containers, &fresh->containers, mark, drop, &gone);
  pthread_rwlock_unlock(&s->lock);
  entry_list_free(gone);
}

/* ---- put ----------------------------------------------------------------- */

int ch_store_put_pod(ch_store *s, const char *pod_id, const ch_pod_record *pod, ch_error *err) {
  entry *e = entry_new(pod_id, NULL, &pod->base);
  if (!e) return ch_fail(err, "store pod %s: out of memory", pod_id);
  table_put(s, &s->pods, e);
  return 0;
}

/* `ctr` without its pod_* fields (a shallow copy: it shares the rest). */
static ch_container_record container_part(const ch_container_record *ctr) {
  ch_container_record own = *ctr;
  own.pod_meta = NULL;
  own.pod_resources = NULL;
  own.n_pod_annotations = 0;
  own.pod_annotations = NULL;
  own.n_pod_labels = 0;
  own.pod_labels = NULL;
  own.pod_cgroup_parent = (char *)protobuf_c_empty_string;
  return own;
}

int ch_store_put_container(ch_store *s, const char *container_id, const char *pod_id,
                           const ch_container_record *ctr, ch_error *err) {
  ch_container_record own = container_part(ctr);
  entry *e = entry_new(container_id, pod_id, &own.base);
  if (!e) return ch_fail(err, "store container %s: out of memory", container_id);
  table_put(s, &s->containers, e);
  return 0;
}

int ch_store_update_container(ch_store *s, const char *container_id, const ch_container_record *ctr,
                              ch_error *err) {
  ch_container_record own = container_part(ctr);
  entry *e = entry_new(container_id, NULL, &own.base);
  if (!e) return ch_fail(err, "store container %s: out of memory", container_id);
  pthread_rwlock_wrlock(&s->lock);
  entry *old = table_unlink(&s->containers, container_id);
  if (old) { /* keeps its pod */
    e->pod_id = old->pod_id;
    old->pod_id = NULL;
    table_link(s, &s->containers, e);
    e = NULL;
  }
  pthread_rwlock_unlock(&s->lock);
  entry_free(old);
  entry_free(e);
  return old ? 0 : 1;
}

/* ---- get ----------------------------------------------------------------- */

static int blob_of(const entry *e, blob *b) {
  b->id = strdup(e->id);
  b->pod_id = e->pod_id ? strdup(e->pod_id) : NULL;
  b->len = e->len;
  b->bytes = malloc(e->len ? e->len : 1);
  if (!b->id || (e->pod_id && !b->pod_id) || !b->bytes) return -1;
  memcpy(b->bytes, e->bytes, e->len);
  return 0;
}

static void blob_clear(blob *b) {
  free(b->id);
  free(b->pod_id);
  free(b->bytes);
  memset(b, 0, sizeof *b);
}

/* Copies the entry `id` of `table` into `b`; -1 if unknown (or no memory). */
static int copy_out(ch_store *s, entry **table, const char *id, blob *b) {
  int rc = -1;
  memset(b, 0, sizeof *b);
  pthread_rwlock_rdlock(&s->lock);
  entry *e;
  HASH_FIND_STR(*table, id, e);
  if (e) rc = blob_of(e, b);
  pthread_rwlock_unlock(&s->lock);
  if (rc != 0) blob_clear(b);
  return rc;
}

ch_pod_record *ch_store_get_pod(ch_store *s, const char *pod_id) {
  blob b;
  if (copy_out(s, &s->pods, pod_id, &b) != 0) return NULL;
  ch_pod_record *pod = runtime__v1alpha1__pod_sandbox_hook_request__unpack(NULL, b.len, b.bytes);
  blob_clear(&b);
  return pod;
}

/* A record holding only the pod_* fields, taken from `pod` (may be NULL).
 * It shares the pod's memory: pack it, do not free it. The map entries keep
 * their own descriptors, which pack exactly the same (key = 1, value = 2). */
static ch_container_record pod_part(const ch_pod_record *pod) {
  ch_container_record part = RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
  if (!pod) return part;
  part.pod_meta = pod->pod_meta;
  part.n_pod_labels = pod->n_labels;
  part.pod_labels = (Runtime__V1alpha1__ContainerResourceHookRequest__PodLabelsEntry **)pod->labels;
  part.n_pod_annotations = pod->n_annotations;
  part.pod_annotations =
      (Runtime__V1alpha1__ContainerResourceHookRequest__PodAnnotationsEntry **)pod->annotations;
  part.pod_cgroup_parent = pod->cgroup_parent;
  part.pod_resources = pod->resources;
  return part;
}

/* Unpacks the container's bytes followed by the pod's fields as one message. */
static ch_container_record *merge(const blob *ctr, const ch_pod_record *pod) {
  ch_container_record part = pod_part(pod);
  size_t part_len = protobuf_c_message_get_packed_size(&part.base);
  uint8_t *all = malloc(ctr->len + part_len + 1);
  if (!all) return NULL;
  memcpy(all, ctr->bytes, ctr->len);
  protobuf_c_message_pack(&part.base, all + ctr->len);
  ch_container_record *out =
      runtime__v1alpha1__container_resource_hook_request__unpack(NULL, ctr->len + part_len, all);
  free(all);
  return out;
}

/* Sets container_meta.id (creating container_meta if needed); -1 on OOM. */
static int set_container_id(ch_container_record *r, const char *id) {
  if (!r->container_meta) {
    r->container_meta = malloc(sizeof *r->container_meta);
    if (!r->container_meta) return -1;
    runtime__v1alpha1__container_metadata__init(r->container_meta);
  }
  char *copy = strdup(id);
  if (!copy) return -1;
  if (r->container_meta->id != protobuf_c_empty_string) free(r->container_meta->id);
  r->container_meta->id = copy;
  return 0;
}

ch_container_record *ch_store_container_request(ch_store *s, const char *container_id,
                                                char **pod_id_out) {
  blob b;
  if (copy_out(s, &s->containers, container_id, &b) != 0) return NULL;
  ch_pod_record *pod = b.pod_id ? ch_store_get_pod(s, b.pod_id) : NULL;
  ch_container_record *out = merge(&b, pod);
  if (pod) runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
  if (out && set_container_id(out, container_id) != 0) {
    runtime__v1alpha1__container_resource_hook_request__free_unpacked(out, NULL);
    out = NULL;
  }
  if (out && pod_id_out) {
    *pod_id_out = b.pod_id;
    b.pod_id = NULL;
  }
  blob_clear(&b);
  return out;
}

/* ---- remove -------------------------------------------------------------- */

void ch_store_remove_container(ch_store *s, const char *container_id) {
  pthread_rwlock_wrlock(&s->lock);
  entry *e = table_unlink(&s->containers, container_id);
  bury(s, container_id);
  pthread_rwlock_unlock(&s->lock);
  entry_free(e);
}

/* Unlinks every container of `pod_id` onto the *gone list; write lock held.
 * A linear scan: removals are rare next to lookups, and this keeps entries
 * free of per-pod bookkeeping. */
static void unlink_containers_of(ch_store *s, const char *pod_id, entry **gone) {
  entry *e, *tmp;
  HASH_ITER(hh, s->containers, e, tmp) {
    if (!e->pod_id || strcmp(e->pod_id, pod_id) != 0) continue;
    HASH_DEL(s->containers, e);
    bury(s, e->id);
    e->next_gone = *gone;
    *gone = e;
  }
}

void ch_store_remove_pod(ch_store *s, const char *pod_id) {
  entry *gone = NULL;
  pthread_rwlock_wrlock(&s->lock);
  unlink_containers_of(s, pod_id, &gone);
  entry *pod = table_unlink(&s->pods, pod_id);
  bury(s, pod_id);
  pthread_rwlock_unlock(&s->lock);
  entry_free(pod);
  entry_list_free(gone);
}

/* ---- counts and snapshots ------------------------------------------------ */

static size_t count_of(ch_store *s, entry **table) {
  pthread_rwlock_rdlock(&s->lock);
  size_t n = HASH_COUNT(*table);
  pthread_rwlock_unlock(&s->lock);
  return n;
}

size_t ch_store_pod_count(ch_store *s) { return count_of(s, &s->pods); }
size_t ch_store_container_count(ch_store *s) { return count_of(s, &s->containers); }

static void blobs_free(blob *blobs, size_t n) {
  if (!blobs) return;
  for (size_t i = 0; i < n; i++) blob_clear(&blobs[i]);
  free(blobs);
}

/* Copies every entry of `table` (under the read lock); NULL on OOM. */
static blob *copy_all(ch_store *s, entry **table, size_t *n) {
  pthread_rwlock_rdlock(&s->lock);
  size_t count = HASH_COUNT(*table), i = 0;
  blob *blobs = calloc(count ? count : 1, sizeof *blobs);
  for (entry *e = *table; blobs && e; e = e->hh.next, i++) {
    if (blob_of(e, &blobs[i]) != 0) {
      blobs_free(blobs, i + 1);
      blobs = NULL;
    }
  }
  pthread_rwlock_unlock(&s->lock);
  *n = count;
  return blobs;
}

static int by_id(const void *a, const void *b) {
  return strcmp(((const blob *)a)->id, ((const blob *)b)->id);
}

/* One element of a snapshot: {"id", ["pod_id",] <key>: message as JSON}. */
static json_t *element_json(const blob *b, const ProtobufCMessageDescriptor *type,
                            const char *key) {
  ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, b->len, b->bytes);
  if (!msg) return NULL;
  json_t *out = json_pack("{s:s}", "id", b->id);
  if (out && b->pod_id) json_object_set_new(out, "pod_id", json_string(b->pod_id));
  if (out) json_object_set_new(out, key, ch_pb_to_json(msg));
  protobuf_c_message_free_unpacked(msg, NULL);
  return out;
}

static json_t *snapshot(ch_store *s, entry **table, const ProtobufCMessageDescriptor *type,
                        const char *key) {
  size_t n;
  blob *blobs = copy_all(s, table, &n);
  json_t *out = blobs ? json_array() : NULL;
  if (!out) {
    blobs_free(blobs, n);
    return NULL;
  }
  qsort(blobs, n, sizeof *blobs, by_id);
  for (size_t i = 0; i < n; i++) {
    json_t *element = element_json(&blobs[i], type, key);
    if (element) json_array_append_new(out, element);
  }
  blobs_free(blobs, n);
  return out;
}

json_t *ch_store_pods_json(ch_store *s) {
  return snapshot(s, &s->pods, &runtime__v1alpha1__pod_sandbox_hook_request__descriptor, "pod");
}

json_t *ch_store_containers_json(ch_store *s) {
  return snapshot(s, &s->containers,
                  &runtime__v1alpha1__container_resource_hook_request__descriptor, "container");
}
