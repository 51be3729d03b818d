/* store.c: the pod and container tables of store.h: uthash tables of packed
 * hook messages under one read-write lock. Packing and unpacking happen
 * outside the lock; the lock only guards moving bytes in and out. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "pbjson.h"

typedef struct entry {
  char *id;     /* key */
  char *pod_id; /* containers only */
  uint8_t *bytes;
  size_t len;
  UT_hash_handle hh;
} entry;

struct ch_store {
  pthread_rwlock_t lock;
  entry *pods;
  entry *containers;
};

ch_store *ch_store_new(void) {
  ch_store *s = calloc(1, sizeof *s);
  if (s) pthread_rwlock_init(&s->lock, NULL);
  return s;
}

static void entry_free(entry *e) {
  free(e->id);
  free(e->pod_id);
  free(e->bytes);
  free(e);
}

static void table_clear(entry **table) {
  entry *e, *tmp;
  HASH_ITER(hh, *table, e, tmp) {
    HASH_DEL(*table, e);
    entry_free(e);
  }
}

void ch_store_free(ch_store *s) {
  if (!s) return;
  table_clear(&s->pods);
  table_clear(&s->containers);
  pthread_rwlock_destroy(&s->lock);
  free(s);
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

/* Puts `e` in the table, replacing (and freeing) an entry with its ID. */
static void table_put(ch_store *s, entry **table, entry *e) {
  entry *old;
  pthread_rwlock_wrlock(&s->lock);
  HASH_FIND_STR(*table, e->id, old);
  if (old) HASH_DEL(*table, old);
  HASH_ADD_KEYPTR(hh, *table, e->id, strlen(e->id), e);
  pthread_rwlock_unlock(&s->lock);
  if (old) entry_free(old);
}

int ch_store_put_pod(ch_store *s, const char *pod_id, const ch_pod_record *pod, ch_error *err) {
  entry *e = entry_new(pod_id, NULL, &pod->base);
  if (!e) return ch_fail(err, "out of memory");
  table_put(s, &s->pods, e);
  return 0;
}

int ch_store_put_container(ch_store *s, const char *container_id, const char *pod_id,
                           const ch_container_record *ctr, ch_error *err) {
  /* only the container's own fields are kept; the pod's come from its entry */
  ch_container_record own = *ctr;
  own.pod_meta = NULL;
  own.pod_resources = NULL;
  own.n_pod_annotations = own.n_pod_labels = 0;
  own.pod_annotations = NULL;
  own.pod_labels = NULL;
  own.pod_cgroup_parent = (char *)protobuf_c_empty_string;
  entry *e = entry_new(container_id, pod_id, &own.base);
  if (!e) return ch_fail(err, "out of memory");
  table_put(s, &s->containers, e);
  return 0;
}

/* Copies an entry's bytes (and pod ID) out under the read lock. */
static uint8_t *copy_out(ch_store *s, entry **table, const char *id, size_t *len, char **pod_id) {
  uint8_t *bytes = NULL;
  pthread_rwlock_rdlock(&s->lock);
  entry *e;
  HASH_FIND_STR(*table, id, e);
  if (e && (bytes = malloc(e->len ? e->len : 1)) != NULL) {
    memcpy(bytes, e->bytes, e->len);
    *len = e->len;
    if (pod_id) *pod_id = e->pod_id ? strdup(e->pod_id) : NULL;
  }
  pthread_rwlock_unlock(&s->lock);
  return bytes;
}

ch_pod_record *ch_store_get_pod(ch_store *s, const char *pod_id) {
  size_t len;
  uint8_t *bytes = copy_out(s, &s->pods, pod_id, &len, NULL);
  if (!bytes) return NULL;
  ch_pod_record *pod = runtime__v1alpha1__pod_sandbox_hook_request__unpack(NULL, len, bytes);
  free(bytes);
  return pod;
}

/* Appends the pod's fields to a container record by concatenating packed
 * messages: protobuf merges, and the container entry has no pod fields. */
static ch_container_record *with_pod(const uint8_t *ctr, size_t ctr_len, ch_pod_record *pod) {
  Runtime__V1alpha1__ContainerResourceHookRequest pod_part =
      RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
  if (pod) {
    pod_part.pod_meta = pod->pod_meta;
    pod_part.n_pod_labels = pod->n_labels;
    pod_part.pod_labels = (void *)pod->labels;
    pod_part.n_pod_annotations = pod->n_annotations;
    pod_part.pod_annotations = (void *)pod->annotations;
    pod_part.pod_cgroup_parent = pod->cgroup_parent;
    pod_part.pod_resources = pod->resources;
  }
  size_t pod_len = protobuf_c_message_get_packed_size(&pod_part.base);
  uint8_t *all = malloc(ctr_len + pod_len + 1);
  if (!all) return NULL;
  memcpy(all, ctr, ctr_len);
  protobuf_c_message_pack(&pod_part.base, all + ctr_len);
  ch_container_record *out =
      runtime__v1alpha1__container_resource_hook_request__unpack(NULL, ctr_len + pod_len, all);
  free(all);
  return out;
}

ch_container_record *ch_store_container_request(ch_store *s, const char *container_id,
                                                char **pod_id_out) {
  size_t len;
  char *pod_id = NULL;
  uint8_t *bytes = copy_out(s, &s->containers, container_id, &len, &pod_id);
  if (!bytes) return NULL;
  ch_pod_record *pod = pod_id ? ch_store_get_pod(s, pod_id) : NULL;
  ch_container_record *out = with_pod(bytes, len, pod);
  free(bytes);
  if (pod) runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
  if (out) {
    if (!out->container_meta) {
      out->container_meta = malloc(sizeof *out->container_meta);
      if (out->container_meta) runtime__v1alpha1__container_metadata__init(out->container_meta);
    }
    if (out->container_meta) {
      if (out->container_meta->id != protobuf_c_empty_string) free(out->container_meta->id);
      out->container_meta->id = strdup(container_id);
    }
  }
  if (pod_id_out)
    *pod_id_out = pod_id;
  else
    free(pod_id);
  return out;
}

static void remove_from(ch_store *s, entry **table, const char *id) {
  entry *e;
  pthread_rwlock_wrlock(&s->lock);
  HASH_FIND_STR(*table, id, e);
  if (e) HASH_DEL(*table, e);
  pthread_rwlock_unlock(&s->lock);
  if (e) entry_free(e);
}

void ch_store_remove_container(ch_store *s, const char *container_id) {
  remove_from(s, &s->containers, container_id);
}

void ch_store_remove_pod(ch_store *s, const char *pod_id) {
  entry *e, *tmp, *gone = NULL;
  pthread_rwlock_wrlock(&s->lock);
  HASH_ITER(hh, s->containers, e, tmp) {
    if (e->pod_id && strcmp(e->pod_id, pod_id) == 0) {
      HASH_DEL(s->containers, e);
      e->hh.next = gone; /* reuse the handle as a list link once out of the table */
      gone = e;
    }
  }
  pthread_rwlock_unlock(&s->lock);
  while (gone) {
    entry *next = gone->hh.next;
    entry_free(gone);
    gone = next;
  }
  remove_from(s, &s->pods, pod_id);
}

static size_t count_of(ch_store *s, entry **table) {
  pthread_rwlock_rdlock(&s->lock);
  size_t n = HASH_COUNT(*table);
  pthread_rwlock_unlock(&s->lock);
  return n;
}

size_t ch_store_pod_count(ch_store *s) { return count_of(s, &s->pods); }
size_t ch_store_container_count(ch_store *s) { return count_of(s, &s->containers); }

static int by_id(const void *a, const void *b) {
  return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "id")),
                json_string_value(json_object_get(*(json_t *const *)b, "id")));
}

static json_t *sorted(json_t *array) {
  size_t n = json_array_size(array);
  json_t **items = malloc((n ? n : 1) * sizeof *items);
  if (!items) return array;
  for (size_t i = 0; i < n; i++) items[i] = json_incref(json_array_get(array, i));
  qsort(items, n, sizeof *items, by_id);
  json_array_clear(array);
  for (size_t i = 0; i < n; i++) json_array_append_new(array, items[i]);
  free(items);
  return array;
}

json_t *ch_store_pods_json(ch_store *s) {
  json_t *out = json_array();
  pthread_rwlock_rdlock(&s->lock);
  for (entry *e = s->pods; e; e = e->hh.next) {
    ch_pod_record *pod =
        runtime__v1alpha1__pod_sandbox_hook_request__unpack(NULL, e->len, e->bytes);
    if (!pod) continue;
    json_array_append_new(out,
                          json_pack("{s:s, s:o}", "id", e->id, "pod", ch_pb_to_json(&pod->base)));
    runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(pod, NULL);
  }
  pthread_rwlock_unlock(&s->lock);
  return sorted(out);
}

json_t *ch_store_containers_json(ch_store *s) {
  json_t *out = json_array();
  pthread_rwlock_rdlock(&s->lock);
  for (entry *e = s->containers; e; e = e->hh.next) {
    ch_container_record *c =
        runtime__v1alpha1__container_resource_hook_request__unpack(NULL, e->len, e->bytes);
    if (!c) continue;
    json_array_append_new(
        out, json_pack("{s:s, s:s, s:o}", "id", e->id, "pod_id", e->pod_id ? e->pod_id : "",
                       "container", ch_pb_to_json(&c->base)));
    runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
  }
  pthread_rwlock_unlock(&s->lock);
  return sorted(out);
}

/* Swaps in the tables of `from` (rebuild.c builds a whole new store). */
void ch_store_replace_with(ch_store *s, ch_store *from) {
  pthread_rwlock_wrlock(&s->lock);
  entry *pods = s->pods, *containers = s->containers;
  s->pods = from->pods;
  s->containers = from->containers;
  from->pods = pods;
  from->containers = containers;
  pthread_rwlock_unlock(&s->lock);
}
