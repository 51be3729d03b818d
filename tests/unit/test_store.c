/* SPDX-License-Identifier: Apache-2.0 */
/* test_store.c: the pod/container store (store/store.c): put, get, replace,
 * remove (a pod's removal drops its containers), container requests merged
 * with their pod's fields, unknown IDs, counts, JSON snapshots, unknown
 * protobuf fields surviving the store, many threads at once, and staying
 * true while calls race: update only if present, a sync's install adding,
 * dropping and not bringing back what was removed meanwhile. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "pbjson.h"
#include "store.h"
#include "store_internal.h"
#include "test_clock.h"

typedef Runtime__V1alpha1__LinuxContainerResources resources;

/* ---- building records -------------------------------------------------- */

/* A map entry of any hook map<string,string> (all are {base, key, value}). */
typedef Runtime__V1alpha1__PodSandboxHookRequest__LabelsEntry map_entry;

/* Owned fixtures: each test builds records from these and frees nothing it
 * did not unpack (the fixtures live on the test's stack). */
typedef struct pod_fixture {
  ch_pod_record msg;
  Runtime__V1alpha1__PodSandboxMetadata meta;
  map_entry labels[2], annotations[1];
  map_entry *label_ptrs[2], *annotation_ptrs[1];
  resources overhead, res;
  Runtime__V1alpha1__HugepageLimit huge;
  Runtime__V1alpha1__HugepageLimit *huge_ptrs[1];
  map_entry unified[1];
  map_entry *unified_ptrs[1];
} pod_fixture;

static void entry_init(map_entry *e, const ProtobufCMessageDescriptor *d, const char *k,
                       const char *v) {
  protobuf_c_message_init(d, e);
  e->key = (char *)k;
  e->value = (char *)v;
}

/* A pod named `name` with every field of PodSandboxHookRequest set. */
static void pod_fixture_init(pod_fixture *f, const char *name) {
  memset(f, 0, sizeof *f);
  runtime__v1alpha1__pod_sandbox_hook_request__init(&f->msg);
  runtime__v1alpha1__pod_sandbox_metadata__init(&f->meta);
  f->meta.name = (char *)name;
  f->meta.uid = "uid-1";
  f->meta.namespace_ = "ns";
  f->meta.attempt = 3;
  f->msg.pod_meta = &f->meta;
  f->msg.runtime_handler = "runc";
  const ProtobufCMessageDescriptor *le =
      &runtime__v1alpha1__pod_sandbox_hook_request__labels_entry__descriptor;
  const ProtobufCMessageDescriptor *ae =
      &runtime__v1alpha1__pod_sandbox_hook_request__annotations_entry__descriptor;
  entry_init(&f->labels[0], le, "app", "web");
  entry_init(&f->labels[1], le, "tier", "front");
  entry_init(&f->annotations[0], ae, "a.b/c", "d");
  for (int i = 0; i < 2; i++) f->label_ptrs[i] = &f->labels[i];
  f->annotation_ptrs[0] = &f->annotations[0];
  f->msg.n_labels = 2;
  f->msg.labels = (void *)f->label_ptrs;
  f->msg.n_annotations = 1;
  f->msg.annotations = (void *)f->annotation_ptrs;
  f->msg.cgroup_parent = "/kubepods/pod-1";
  runtime__v1alpha1__linux_container_resources__init(&f->overhead);
  f->overhead.cpu_shares = 10;
  runtime__v1alpha1__linux_container_resources__init(&f->res);
  f->res.cpu_quota = 50000;
  f->res.memory_limit_in_bytes = 1 << 27;
  f->res.cpuset_cpus = "0-1";
  runtime__v1alpha1__hugepage_limit__init(&f->huge);
  f->huge.page_size = "2MB";
  f->huge.limit = UINT64_MAX;
  f->huge_ptrs[0] = &f->huge;
  f->res.n_hugepage_limits = 1;
  f->res.hugepage_limits = f->huge_ptrs;
  entry_init(&f->unified[0],
             &runtime__v1alpha1__linux_container_resources__unified_entry__descriptor,
             "memory.high", "max");
  f->unified_ptrs[0] = &f->unified[0];
  f->res.n_unified = 1;
  f->res.unified = (void *)f->unified_ptrs;
  f->msg.overhead = &f->overhead;
  f->msg.resources = &f->res;
}

typedef struct ctr_fixture {
  ch_container_record msg;
  Runtime__V1alpha1__ContainerMetadata meta;
  Runtime__V1alpha1__PodSandboxMetadata bogus_pod_meta;
  map_entry annotations[1], envs[3], pod_labels[1];
  map_entry *annotation_ptrs[1], *env_ptrs[3], *pod_label_ptrs[1];
  resources res;
} ctr_fixture;

/* A container named `name` with its own fields set, and pod fields that the
 * store must drop (they come from the pod's entry). */
static void ctr_fixture_init(ctr_fixture *f, const char *name) {
  memset(f, 0, sizeof *f);
  ch_container_record *m = &f->msg;
  runtime__v1alpha1__container_resource_hook_request__init(m);
  runtime__v1alpha1__container_metadata__init(&f->meta);
  f->meta.name = (char *)name;
  f->meta.attempt = 1;
  m->container_meta = &f->meta;
  m->container_image = "img:1";
  entry_init(
      &f->annotations[0],
      &runtime__v1alpha1__container_resource_hook_request__container_annotations_entry__descriptor,
      "ca", "cv");
  f->annotation_ptrs[0] = &f->annotations[0];
  m->n_container_annotations = 1;
  m->container_annotations = (void *)f->annotation_ptrs;
  const ProtobufCMessageDescriptor *ee =
      &runtime__v1alpha1__container_resource_hook_request__container_envs_entry__descriptor;
  entry_init(&f->envs[0], ee, "Z", "1");
  entry_init(&f->envs[1], ee, "A", "two words");
  entry_init(&f->envs[2], ee, "M", "");
  for (int i = 0; i < 3; i++) f->env_ptrs[i] = &f->envs[i];
  m->n_container_envs = 3;
  m->container_envs = (void *)f->env_ptrs;
  runtime__v1alpha1__linux_container_resources__init(&f->res);
  f->res.cpu_shares = 512;
  f->res.memory_limit_in_bytes = 67108864;
  m->container_resources = &f->res;
  /* pod fields the store must not keep */
  runtime__v1alpha1__pod_sandbox_metadata__init(&f->bogus_pod_meta);
  f->bogus_pod_meta.name = "not-the-pod";
  m->pod_meta = &f->bogus_pod_meta;
  m->pod_cgroup_parent = "/bogus";
  entry_init(&f->pod_labels[0],
             &runtime__v1alpha1__container_resource_hook_request__pod_labels_entry__descriptor,
             "bogus", "label");
  f->pod_label_ptrs[0] = &f->pod_labels[0];
  m->n_pod_labels = 1;
  m->pod_labels = (void *)f->pod_label_ptrs;
}

/* ---- comparing ----------------------------------------------------------- */

static void assert_json_equal(json_t *got, json_t *want) {
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
    print_error("got:\n%s\nwant:\n%s\n", g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
    fail();
  }
}

static void assert_msg_json(const ProtobufCMessage *msg, const char *want_text) {
  json_error_t jerr;
  json_t *want = json_loads(want_text, 0, &jerr);
  if (!want) fail_msg("bad expected JSON: %s", jerr.text);
  json_t *got = ch_pb_to_json(msg);
  assert_json_equal(got, want);
  json_decref(got);
  json_decref(want);
}

static void assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  json_t *ja = ch_pb_to_json(a), *jb = ch_pb_to_json(b);
  assert_json_equal(ja, jb);
  json_decref(ja);
  json_decref(jb);
}

static void free_pod(ch_pod_record *p) {
  runtime__v1alpha1__pod_sandbox_hook_request__free_unpacked(p, NULL);
}

static void free_ctr(ch_container_record *c) {
  runtime__v1alpha1__container_resource_hook_request__free_unpacked(c, NULL);
}

/* ---- put, get, replace, remove -------------------------------------------- */

static void put_pod_ok(ch_store *s, const char *id, const ch_pod_record *pod) {
  ch_error err = {{0}};
  assert_int_equal(ch_store_put_pod(s, id, pod, &err), 0);
}

static void put_ctr_ok(ch_store *s, const char *id, const char *pod_id,
                       const ch_container_record *c) {
  ch_error err = {{0}};
  assert_int_equal(ch_store_put_container(s, id, pod_id, c, &err), 0);
}

static void test_pod_put_get(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture f;
  pod_fixture_init(&f, "pod-a");
  put_pod_ok(s, "p1", &f.msg);
  f.meta.name = "changed-after-put"; /* the store has its own copy */
  ch_pod_record *got = ch_store_get_pod(s, "p1");
  assert_non_null(got);
  f.meta.name = "pod-a";
  assert_same_message(&got->base, &f.msg.base);
  assert_int_equal(got->resources->hugepage_limits[0]->limit, UINT64_MAX);
  /* a second get is a second, independent copy */
  ch_pod_record *again = ch_store_get_pod(s, "p1");
  assert_ptr_not_equal(again, got);
  free_pod(got);
  free_pod(again);
  ch_store_free(s);
}

static void test_pod_replace(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture f;
  pod_fixture_init(&f, "first");
  put_pod_ok(s, "p1", &f.msg);
  ch_pod_record second = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  second.cgroup_parent = "/second";
  put_pod_ok(s, "p1", &second);
  assert_int_equal(ch_store_pod_count(s), 1);
  ch_pod_record *got = ch_store_get_pod(s, "p1");
  assert_non_null(got);
  assert_msg_json(&got->base, "{\"cgroup_parent\": \"/second\"}");
  free_pod(got);
  ch_store_free(s);
}

static void test_unknown_ids(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  assert_null(ch_store_get_pod(s, "nope"));
  char *pod_id = (char *)"untouched";
  assert_null(ch_store_container_request(s, "nope", &pod_id));
  assert_string_equal(pod_id, "untouched");
  ch_store_remove_container(s, "nope");
  ch_store_remove_pod(s, "nope");
  pod_fixture f;
  pod_fixture_init(&f, "a");
  put_pod_ok(s, "p1", &f.msg);
  assert_null(ch_store_get_pod(s, "p2"));
  assert_null(ch_store_get_pod(s, "p")); /* no prefix match */
  assert_null(ch_store_get_pod(s, ""));
  assert_null(ch_store_container_request(s, "p1", NULL)); /* pods are not containers */
  ch_store_free(s);
}

static const char *const merged_container_json =
    "{\"pod_meta\": {\"name\": \"pod-a\", \"uid\": \"uid-1\", \"namespace\": \"ns\", "
    "\"attempt\": 3},"
    " \"container_meta\": {\"name\": \"ctr-a\", \"attempt\": 1, \"id\": \"c1\"},"
    " \"container_image\": \"img:1\","
    " \"container_annotations\": {\"ca\": \"cv\"},"
    " \"container_resources\": {\"cpu_shares\": 512, \"memory_limit_in_bytes\": 67108864},"
    " \"pod_resources\": {\"cpu_quota\": 50000, \"memory_limit_in_bytes\": 134217728,"
    "   \"cpuset_cpus\": \"0-1\", \"hugepage_limits\": [{\"page_size\": \"2MB\","
    "   \"limit\": \"18446744073709551615\"}], \"unified\": {\"memory.high\": \"max\"}},"
    " \"pod_annotations\": {\"a.b/c\": \"d\"},"
    " \"pod_labels\": {\"app\": \"web\", \"tier\": \"front\"},"
    " \"pod_cgroup_parent\": \"/kubepods/pod-1\","
    " \"container_envs\": {\"Z\": \"1\", \"A\": \"two words\", \"M\": \"\"}}";

static void test_container_request_merges_pod(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture p;
  pod_fixture_init(&p, "pod-a");
  put_pod_ok(s, "p1", &p.msg);
  ctr_fixture c;
  ctr_fixture_init(&c, "ctr-a");
  c.meta.id = "some-other-id"; /* the request's id is the key */
  put_ctr_ok(s, "c1", "p1", &c.msg);
  char *pod_id = NULL;
  ch_container_record *got = ch_store_container_request(s, "c1", &pod_id);
  assert_non_null(got);
  assert_string_equal(pod_id, "p1");
  assert_msg_json(&got->base, merged_container_json);
  /* envs keep their order */
  assert_int_equal(got->n_container_envs, 3);
  assert_string_equal(got->container_envs[0]->key, "Z");
  assert_string_equal(got->container_envs[1]->key, "A");
  assert_string_equal(got->container_envs[2]->key, "M");
  free(pod_id);
  free_ctr(got);
  ch_store_free(s);
}

static void test_container_without_pod(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  ctr_fixture c;
  ctr_fixture_init(&c, "ctr-a");
  c.msg.container_meta = NULL; /* the store still sets container_meta.id */
  put_ctr_ok(s, "c1", "unknown-pod", &c.msg);
  char *pod_id = NULL;
  ch_container_record *got = ch_store_container_request(s, "c1", &pod_id);
  assert_non_null(got);
  assert_string_equal(pod_id, "unknown-pod");
  assert_msg_json(&got->base,
                  "{\"container_meta\": {\"id\": \"c1\"}, \"container_image\": \"img:1\", "
                  "\"container_annotations\": {\"ca\": "
                  "\"cv\"}, \"container_resources\": {\"cpu_shares\": 512, "
                  "\"memory_limit_in_bytes\": 67108864}, \"container_envs\": {\"Z\": \"1\", "
                  "\"A\": \"two words\", \"M\": \"\"}}");
  free(pod_id);
  free_ctr(got);
  /* without pod_id_out */
  got = ch_store_container_request(s, "c1", NULL);
  assert_non_null(got);
  free_ctr(got);
  ch_store_free(s);
}

static void test_container_replace_and_remove(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  ctr_fixture c;
  ctr_fixture_init(&c, "first");
  put_ctr_ok(s, "c1", "p1", &c.msg);
  c.meta.name = "second";
  put_ctr_ok(s, "c1", "p2", &c.msg);
  assert_int_equal(ch_store_container_count(s), 1);
  char *pod_id = NULL;
  ch_container_record *got = ch_store_container_request(s, "c1", &pod_id);
  assert_string_equal(got->container_meta->name, "second");
  assert_string_equal(pod_id, "p2");
  free(pod_id);
  free_ctr(got);
  ch_store_remove_container(s, "c1");
  assert_null(ch_store_container_request(s, "c1", NULL));
  assert_int_equal(ch_store_container_count(s), 0);
  ch_store_free(s);
}

static void test_remove_pod_drops_its_containers(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture p;
  pod_fixture_init(&p, "pod");
  put_pod_ok(s, "p1", &p.msg);
  put_pod_ok(s, "p2", &p.msg);
  ctr_fixture c;
  ctr_fixture_init(&c, "ctr");
  put_ctr_ok(s, "c1", "p1", &c.msg);
  put_ctr_ok(s, "c2", "p1", &c.msg);
  put_ctr_ok(s, "c3", "p2", &c.msg);
  put_ctr_ok(s, "c4", "p1", &c.msg);
  assert_int_equal(ch_store_pod_count(s), 2);
  assert_int_equal(ch_store_container_count(s), 4);
  ch_store_remove_pod(s, "p1");
  assert_int_equal(ch_store_pod_count(s), 1);
  assert_int_equal(ch_store_container_count(s), 1);
  assert_null(ch_store_get_pod(s, "p1"));
  assert_null(ch_store_container_request(s, "c1", NULL));
  assert_null(ch_store_container_request(s, "c2", NULL));
  assert_null(ch_store_container_request(s, "c4", NULL));
  ch_container_record *left = ch_store_container_request(s, "c3", NULL);
  assert_non_null(left);
  free_ctr(left);
  ch_pod_record *p2 = ch_store_get_pod(s, "p2");
  assert_non_null(p2);
  free_pod(p2);
  ch_store_free(s);
}

static void test_counts(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  assert_int_equal(ch_store_pod_count(s), 0);
  assert_int_equal(ch_store_container_count(s), 0);
  ch_pod_record empty_pod = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
  ch_container_record empty_ctr = RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
  char id[32];
  for (int i = 0; i < 100; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    put_pod_ok(s, id, &empty_pod); /* an empty message packs to 0 bytes */
    put_ctr_ok(s, id, id, &empty_ctr);
  }
  assert_int_equal(ch_store_pod_count(s), 100);
  assert_int_equal(ch_store_container_count(s), 100);
  ch_pod_record *got = ch_store_get_pod(s, "id-7");
  assert_non_null(got);
  free_pod(got);
  for (int i = 0; i < 100; i += 2) {
    snprintf(id, sizeof id, "id-%d", i);
    ch_store_remove_pod(s, id);
  }
  assert_int_equal(ch_store_pod_count(s), 50);
  assert_int_equal(ch_store_container_count(s), 50);
  ch_store_free(s);
}

/* ---- snapshots ------------------------------------------------------------ */

static void assert_json_text(json_t *got, const char *want_text) {
  json_error_t jerr;
  json_t *want = json_loads(want_text, 0, &jerr);
  if (!want) fail_msg("bad expected JSON: %s", jerr.text);
  assert_json_equal(got, want);
  json_decref(want);
}

static void test_json_snapshots(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  json_t *j = ch_store_pods_json(s);
  assert_json_text(j, "[]");
  json_decref(j);
  j = ch_store_containers_json(s);
  assert_json_text(j, "[]");
  json_decref(j);

  const char *ids[] = {"b", "c", "a"};
  for (int i = 0; i < 3; i++) {
    ch_pod_record pod = RUNTIME__V1ALPHA1__POD_SANDBOX_HOOK_REQUEST__INIT;
    pod.cgroup_parent = (char *)ids[i];
    put_pod_ok(s, ids[i], &pod);
    ch_container_record ctr = RUNTIME__V1ALPHA1__CONTAINER_RESOURCE_HOOK_REQUEST__INIT;
    Runtime__V1alpha1__ContainerMetadata meta = RUNTIME__V1ALPHA1__CONTAINER_METADATA__INIT;
    meta.name = (char *)ids[i];
    ctr.container_meta = &meta;
    ctr.pod_cgroup_parent = "/dropped";
    char cid[8];
    snprintf(cid, sizeof cid, "c-%s", ids[i]);
    put_ctr_ok(s, cid, ids[i], &ctr);
  }
  j = ch_store_pods_json(s);
  assert_json_text(j,
                   "[{\"id\": \"a\", \"pod\": {\"cgroup_parent\": \"a\"}},"
                   " {\"id\": \"b\", \"pod\": {\"cgroup_parent\": \"b\"}},"
                   " {\"id\": \"c\", \"pod\": {\"cgroup_parent\": \"c\"}}]");
  json_decref(j);
  j = ch_store_containers_json(s);
  assert_json_text(
      j,
      "[{\"id\": \"c-a\", \"pod_id\": \"a\", \"container\": {\"container_meta\": {\"name\": "
      "\"a\"}}},"
      " {\"id\": \"c-b\", \"pod_id\": \"b\", \"container\": {\"container_meta\": {\"name\": "
      "\"b\"}}},"
      " {\"id\": \"c-c\", \"pod_id\": \"c\", \"container\": {\"container_meta\": {\"name\": "
      "\"c\"}}}]");
  json_decref(j);
  ch_store_free(s);
}

/* ---- unknown fields --------------------------------------------------------- */

/* Field 100 (varint 7) and field 101 (bytes "hi"): fields a newer hook API
 * might have. */
static const uint8_t unknown_tail[] = {0xa0, 0x06, 0x07, 0xaa, 0x06, 0x02, 'h', 'i'};

/* `msg` packed, followed by the unknown fields, unpacked again: a message
 * of the same type that carries two unknown fields. */
static ProtobufCMessage *with_unknown_fields(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len + sizeof unknown_tail);
  assert_non_null(buf);
  protobuf_c_message_pack(msg, buf);
  memcpy(buf + len, unknown_tail, sizeof unknown_tail);
  ProtobufCMessage *out =
      protobuf_c_message_unpack(msg->descriptor, NULL, len + sizeof unknown_tail, buf);
  free(buf);
  assert_non_null(out);
  assert_int_equal(out->n_unknown_fields, 2);
  return out;
}

static void assert_unknown_fields_kept(const ProtobufCMessage *msg) {
  assert_int_equal(msg->n_unknown_fields, 2);
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len);
  assert_non_null(buf);
  protobuf_c_message_pack(msg, buf);
  assert_true(len >= sizeof unknown_tail);
  assert_non_null(memmem(buf, len, unknown_tail + 3, 5)); /* field 101 */
  free(buf);
}

static void test_unknown_fields_survive(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture p;
  pod_fixture_init(&p, "pod-a");
  ProtobufCMessage *pod = with_unknown_fields(&p.msg.base);
  put_pod_ok(s, "p1", (ch_pod_record *)pod);
  ch_pod_record *got = ch_store_get_pod(s, "p1");
  assert_non_null(got);
  assert_unknown_fields_kept(&got->base);
  assert_same_message(&got->base, pod);
  free_pod(got);
  protobuf_c_message_free_unpacked(pod, NULL);

  ctr_fixture c;
  ctr_fixture_init(&c, "ctr-a");
  ProtobufCMessage *ctr = with_unknown_fields(&c.msg.base);
  put_ctr_ok(s, "c1", "p1", (ch_container_record *)ctr);
  ch_container_record *req = ch_store_container_request(s, "c1", NULL);
  assert_non_null(req);
  assert_unknown_fields_kept(&req->base);
  assert_string_equal(req->pod_meta->name, "pod-a");
  free_ctr(req);
  protobuf_c_message_free_unpacked(ctr, NULL);
  ch_store_free(s);
}

/* ---- threads -------------------------------------------------------------- */

#define THREADS 8
#define IDS 16
#define RUN_MS 1000

typedef struct worker {
  ch_store *store;
  unsigned seed;
  long ops;
  int bad; /* records that did not match their key */
} worker;

/* Every pod record is named after its ID, every container after its own, so
 * a reader can check it got a whole record of the right key. */
static void op_put_pod(worker *w, const char *pod) {
  pod_fixture f;
  pod_fixture_init(&f, pod);
  ch_error err;
  if (ch_store_put_pod(w->store, pod, &f.msg, &err) != 0) w->bad++;
}

static void op_put_container(worker *w, const char *ctr, const char *pod) {
  ctr_fixture f;
  ctr_fixture_init(&f, ctr);
  ch_error err;
  if (ch_store_put_container(w->store, ctr, pod, &f.msg, &err) != 0) w->bad++;
}

static void op_get_pod(worker *w, const char *pod) {
  ch_pod_record *got = ch_store_get_pod(w->store, pod);
  if (!got) return;
  if (!got->pod_meta || strcmp(got->pod_meta->name, pod) != 0 || got->n_labels != 2) w->bad++;
  free_pod(got);
}

static void op_get_container(worker *w, const char *ctr) {
  char *pod_id = NULL;
  ch_container_record *got = ch_store_container_request(w->store, ctr, &pod_id);
  if (!got) return;
  if (strcmp(got->container_meta->name, ctr) != 0 || strcmp(got->container_meta->id, ctr) != 0 ||
      got->n_container_envs != 3)
    w->bad++;
  if (got->pod_meta && strcmp(got->pod_meta->name, pod_id) != 0) w->bad++;
  free(pod_id);
  free_ctr(got);
}

static void one_op(worker *w) {
  char pod[16], ctr[16];
  snprintf(pod, sizeof pod, "p%d", rand_r(&w->seed) % IDS);
  snprintf(ctr, sizeof ctr, "c%d", rand_r(&w->seed) % IDS);
  int op = rand_r(&w->seed) % 100;
  if (op < 15)
    op_put_pod(w, pod);
  else if (op < 30)
    op_put_container(w, ctr, pod);
  else if (op < 55)
    op_get_pod(w, pod);
  else if (op < 85)
    op_get_container(w, ctr);
  else if (op < 92)
    ch_store_remove_container(w->store, ctr);
  else if (op < 97)
    ch_store_remove_pod(w->store, pod);
  else if (op < 99)
    (void)(ch_store_pod_count(w->store) + ch_store_container_count(w->store));
  else
    json_decref(rand_r(&w->seed) % 2 ? ch_store_pods_json(w->store)
                                     : ch_store_containers_json(w->store));
  w->ops++;
}

static void *work(void *arg) {
  worker *w = arg;
  int64_t end = now_ms() + RUN_MS;
  while (now_ms() < end)
    for (int i = 0; i < 64; i++) one_op(w);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pthread_t threads[THREADS];
  worker workers[THREADS];
  for (int i = 0; i < THREADS; i++) {
    workers[i] = (worker){.store = s, .seed = (unsigned)(i * 7919 + 1)};
    assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
  }
  long ops = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(workers[i].bad, 0);
    ops += workers[i].ops;
  }
  assert_true(ops > 1000);
  assert_true(ch_store_pod_count(s) <= IDS);
  assert_true(ch_store_container_count(s) <= IDS);
  json_t *pods = ch_store_pods_json(s);
  assert_int_equal(json_array_size(pods), ch_store_pod_count(s));
  json_decref(pods);
  ch_store_free(s);
}

/* ---- staying true ----------------------------------------------------- */

static const char *ctr_name(ch_store *s, const char *id) {
  static char name[64];
  ch_container_record *c = ch_store_container_request(s, id, NULL);
  if (!c) return NULL;
  snprintf(name, sizeof name, "%s", c->container_meta->name);
  free_ctr(c);
  return name;
}

/* A slow Update or Start that finishes after the Remove: not brought back. */
static void test_update_only_if_present(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  ctr_fixture c;
  ctr_fixture_init(&c, "created");
  put_ctr_ok(s, "c1", "p1", &c.msg);
  c.meta.name = "updated";
  c.res.cpu_shares = 777;
  ch_error err = {{0}};
  assert_int_equal(ch_store_update_container(s, "c1", &c.msg, &err), 0);
  char *pod_id = NULL;
  ch_container_record *got = ch_store_container_request(s, "c1", &pod_id);
  assert_non_null(got);
  assert_string_equal(got->container_meta->name, "updated");
  assert_int_equal(got->container_resources->cpu_shares, 777);
  assert_string_equal(pod_id, "p1"); /* kept */
  free(pod_id);
  free_ctr(got);
  ch_store_remove_container(s, "c1");
  assert_int_equal(ch_store_update_container(s, "c1", &c.msg, &err), 1);
  assert_null(ch_store_container_request(s, "c1", NULL));
  assert_int_equal(ch_store_container_count(s), 0);
  ch_store_free(s);
}

/* What a sync read from the runtime (`fresh`) meets what calls did meanwhile. */
static void test_sync_install(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  pod_fixture p;
  pod_fixture_init(&p, "pod");
  ctr_fixture c;
  ctr_fixture_init(&c, "live");
  put_pod_ok(s, "p-gone", &p.msg);       /* the runtime no longer has it */
  put_ctr_ok(s, "c-both", "p1", &c.msg); /* both have it: the live record wins */
  put_ctr_ok(s, "c-removed", "p1", &c.msg);
  put_ctr_ok(s, "c-in-pod", "p-removed", &c.msg);
  uint64_t mark = ch_store_sync_begin(s);
  /* ... the runtime is read here; meanwhile calls are served: */
  ch_store_remove_container(s, "c-removed");
  ch_store_remove_pod(s, "p-removed");
  put_pod_ok(s, "p-new", &p.msg); /* created after the read */

  ch_store *fresh = ch_store_new();
  ctr_fixture r;
  ctr_fixture_init(&r, "runtime");
  put_ctr_ok(fresh, "c-both", "p1", &r.msg);
  put_ctr_ok(fresh, "c-removed", "p1", &r.msg);
  put_ctr_ok(fresh, "c-in-pod", "p-removed", &r.msg);
  put_ctr_ok(fresh, "c-lost", "p1", &r.msg); /* a call cut off mid-way */
  put_pod_ok(fresh, "p-removed", &p.msg);
  ch_store_sync_install(s, fresh, mark, true);
  ch_store_free(fresh);
  ch_store_sync_end(s);

  assert_null(ch_store_get_pod(s, "p-gone"));
  assert_null(ch_store_get_pod(s, "p-removed"));
  ch_pod_record *kept = ch_store_get_pod(s, "p-new");
  assert_non_null(kept);
  free_pod(kept);
  assert_int_equal(ch_store_pod_count(s), 1);
  assert_string_equal(ctr_name(s, "c-both"), "live");
  assert_string_equal(ctr_name(s, "c-lost"), "runtime");
  assert_null(ctr_name(s, "c-removed"));
  assert_null(ctr_name(s, "c-in-pod"));
  assert_int_equal(ch_store_container_count(s), 2);

  /* the sync has ended: its tombstones are gone, a later one may add */
  mark = ch_store_sync_begin(s);
  fresh = ch_store_new();
  put_ctr_ok(fresh, "c-removed", "p1", &r.msg);
  ch_store_sync_install(s, fresh, mark, false); /* a fill: nothing dropped */
  ch_store_free(fresh);
  ch_store_sync_end(s);
  assert_string_equal(ctr_name(s, "c-removed"), "runtime");
  assert_string_equal(ctr_name(s, "c-both"), "live");
  assert_int_equal(ch_store_container_count(s), 3);
  ch_store_free(s);
}

/* Two syncs overlapping: the tombstones live until the last one ends. */
static void test_overlapping_syncs(void **state) {
  (void)state;
  ch_store *s = ch_store_new();
  ctr_fixture c;
  ctr_fixture_init(&c, "c");
  put_ctr_ok(s, "c1", "p1", &c.msg);
  uint64_t first = ch_store_sync_begin(s);
  uint64_t second = ch_store_sync_begin(s);
  ch_store_remove_container(s, "c1");
  ch_store_sync_end(s); /* the first ends without installing */
  (void)first;
  ch_store *fresh = ch_store_new();
  put_ctr_ok(fresh, "c1", "p1", &c.msg);
  ch_store_sync_install(s, fresh, second, true);
  ch_store_free(fresh);
  ch_store_sync_end(s);
  assert_null(ch_store_container_request(s, "c1", NULL));
  ch_store_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pod_put_get),
      cmocka_unit_test(test_pod_replace),
      cmocka_unit_test(test_unknown_ids),
      cmocka_unit_test(test_container_request_merges_pod),
      cmocka_unit_test(test_container_without_pod),
      cmocka_unit_test(test_container_replace_and_remove),
      cmocka_unit_test(test_remove_pod_drops_its_containers),
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_json_snapshots),
      cmocka_unit_test(test_unknown_fields_survive),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_update_only_if_present),
      cmocka_unit_test(test_sync_install),
      cmocka_unit_test(test_overlapping_syncs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
