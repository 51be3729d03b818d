/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c: the series of metrics.h, rendered on demand into a
 * common/strbuf.h buffer.
 *
 * CRI calls (the hot path: once per relayed call, on the relay loops) take
 * no lock. Each thread that records has its own shard: a uthash index only
 * it reads or writes, and the same series on an append-only list that it
 * publishes with release stores. A series' counters have one writer, so a
 * relaxed load and store is an increment (no locked instruction); the
 * scrape reads them with relaxed loads and sums the shards by method name.
 * So a scrape never stalls a relay loop (with a mutex, the loop waited out
 * the whole rendering), and loops never contend with each other. A
 * histogram's count is the sum of its buckets, so a scrape that races a
 * recording still sees buckets that add up.
 *
 * Hook calls, rejections and undecodable requests (the interception
 * stage: rare, each already costs a plugin call) keep one mutex, taken by
 * the scrape too. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "grpc_util.h"
#include "strbuf.h"
#include "utf8.h"

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS (sizeof bucket_le / sizeof bucket_le[0])
#define CODES 17

typedef struct histogram {
  uint64_t bucket[BUCKETS + 1]; /* non-cumulative, last: above every le; summed when rendered */
  double sum;
} histogram;

/* A method's series in one shard: written by the shard's thread only. */
typedef struct method_series {
  char key[160];
  size_t key_len;
  _Atomic uint64_t calls[CODES + 1]; /* last slot: codes out of range */
  _Atomic uint64_t bucket[BUCKETS + 1];
  _Atomic double sum;
  struct method_series *_Atomic next; /* the shard's list, in creation order */
  UT_hash_handle hh;                  /* the shard's index (its thread only) */
} method_series;

/* One recording thread's series. */
typedef struct shard {
  struct shard *next_shard; /* set before the shard is published */
  method_series *index;     /* its thread only */
  method_series *_Atomic head;
  method_series *tail; /* its thread only */
} shard;

typedef struct hook_series {
  char key[200]; /* plugin '\0'-free "plugin|hook" */
  char plugin[128];
  const char *hook; /* static */
  uint64_t results[CH_HOOK_RESULT_COUNT];
  uint64_t rejections;
  histogram latency;
  UT_hash_handle hh;
} hook_series;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* hooks and undecodable */
static bool enabled = true;                              /* set once before the workers start */

void ch_metrics_enable(bool on) { enabled = on; }
static hook_series *hooks;

static shard *_Atomic shards;          /* every shard, newest first */
static _Thread_local shard *mine;      /* this thread's */
static atomic_uint method_series_made; /* all shards: the CH_METRICS_MAX_SERIES bound */

static size_t bucket_of(double seconds) {
  size_t i = 0;
  while (i < BUCKETS && seconds > bucket_le[i]) i++;
  return i;
}

static void observe(histogram *h, double seconds) {
  h->bucket[bucket_of(seconds)]++;
  h->sum += seconds;
}

/* An increment by the counter's only writer. */
static void bump(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

static shard *my_shard(void) {
  if (mine) return mine;
  shard *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->next_shard = atomic_load_explicit(&shards, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&shards, &s->next_shard, s, memory_order_release,
                                                memory_order_relaxed)) {
  }
  return mine = s;
}

/* A new series in the thread's shard, published to the scrape once whole. */
static method_series *series_new(shard *s, const char *name, size_t name_len) {
  method_series *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  memcpy(m->key, name, name_len);
  m->key[name_len] = '\0';
  m->key_len = name_len;
  HASH_ADD(hh, s->index, key, name_len, m);
  if (s->tail)
    atomic_store_explicit(&s->tail->next, m, memory_order_release);
  else
    atomic_store_explicit(&s->head, m, memory_order_release);
  s->tail = m;
  return m;
}

/* The series of a method in the thread's shard: looked up by the name's
 * bytes as they are (no copy, no formatting: this runs once per relayed
 * call); the key is written only when a series is first made. */
static method_series *method_for(const char *method, size_t len, bool known) {
  shard *s = my_shard();
  if (!s) return NULL;
  const char *name = known ? method : "unknown";
  size_t name_len = known ? len : 7;
  if (name_len >= sizeof s->index->key) name_len = sizeof s->index->key - 1;
  method_series *m;
  HASH_FIND(hh, s->index, name, name_len, m);
  if (m) return m;
  /* counted only while under the bound (a name invented per call must not
   * wrap the count around) */
  if (atomic_load_explicit(&method_series_made, memory_order_relaxed) >= CH_METRICS_MAX_SERIES ||
      atomic_fetch_add_explicit(&method_series_made, 1, memory_order_relaxed) >=
          CH_METRICS_MAX_SERIES) {
    HASH_FIND(hh, s->index, "other", 5, m);
    return m ? m : series_new(s, "other", 5);
  }
  return series_new(s, name, name_len);
}

void ch_metrics_cri_call(const char *method, size_t len, bool known, grpc_status_code code,
                         double seconds) {
  if (!enabled) return;
  method_series *m = method_for(method, len, known);
  if (!m) return;
  bump(&m->calls[(unsigned)code < CODES ? (unsigned)code : CODES]);
  bump(&m->bucket[bucket_of(seconds)]);
  atomic_store_explicit(&m->sum, atomic_load_explicit(&m->sum, memory_order_relaxed) + seconds,
                        memory_order_relaxed);
}

void ch_metrics_hook_call(const char *plugin, const char *hook, ch_hook_result result,
                          bool rejected, double seconds) {
  if (!enabled || (unsigned)result >= CH_HOOK_RESULT_COUNT) return;
  char key[200];
  snprintf(key, sizeof key, "%s|%s", plugin, hook);
  pthread_mutex_lock(&lock);
  hook_series *h;
  HASH_FIND_STR(hooks, key, h);
  if (!h && (h = calloc(1, sizeof *h)) != NULL) {
    snprintf(h->key, sizeof h->key, "%s", key);
    snprintf(h->plugin, sizeof h->plugin, "%s", plugin);
    h->hook = hook;
    HASH_ADD_STR(hooks, key, h);
  }
  if (h) {
    h->results[result]++;
    h->rejections += rejected;
    observe(&h->latency, seconds);
  }
  pthread_mutex_unlock(&lock);
}

/* ---- rendering ---- */

/* `in` as a label value of the exposition format: '\\', '"' and newline
 * escaped, other control characters written as a visible "\\xNN", bytes
 * that are not UTF-8 replaced by U+FFFD. Cut to fit `size`. */
static const char *label_value(char *out, size_t size, const char *in) {
  size_t used = 0, n = strlen(in);
  for (size_t i = 0; i < n && used + 8 < size;) {
    unsigned char c = (unsigned char)in[i];
    size_t seq = ch_utf8_sequence((const unsigned char *)in + i, n - i);
    if (c == '\\' || c == '"')
      used += (size_t)snprintf(out + used, size - used, "\\%c", c);
    else if (c == '\n')
      used += (size_t)snprintf(out + used, size - used, "\\n");
    else if (c < 0x20 || c == 0x7f)
      used += (size_t)snprintf(out + used, size - used, "\\\\x%02x", c);
    else if (seq == 0)
      used += (size_t)snprintf(out + used, size - used, "\xef\xbf\xbd");
    else {
      memcpy(out + used, in + i, seq);
      used += seq;
      i += seq;
      continue;
    }
    i++;
  }
  out[used] = '\0';
  return out;
}

static void put_histogram(ch_strbuf *t, const char *name, const char *labels, const histogram *h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < BUCKETS; i++) {
    cumulative += h->bucket[i];
    ch_strbuf_printf(t, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, bucket_le[i],
                     (unsigned long long)cumulative);
  }
  cumulative += h->bucket[BUCKETS];
  ch_strbuf_printf(t, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                   (unsigned long long)cumulative);
  ch_strbuf_printf(t, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                   (unsigned long long)cumulative);
}

/* A method's series summed over the shards, for one scrape. */
typedef struct merged {
  const char *key;
  uint64_t calls[CODES + 1];
  histogram latency;
  UT_hash_handle hh;
} merged;

static void merge_series(merged *into, method_series *m) {
  for (unsigned c = 0; c <= CODES; c++)
    into->calls[c] += atomic_load_explicit(&m->calls[c], memory_order_relaxed);
  for (size_t i = 0; i <= BUCKETS; i++)
    into->latency.bucket[i] += atomic_load_explicit(&m->bucket[i], memory_order_relaxed);
  into->latency.sum += atomic_load_explicit(&m->sum, memory_order_relaxed);
}

/* Every shard's series by method name, in the order names first appeared
 * in a shard; NULL (and nothing rendered) if out of memory. */
static merged *merge_shards(bool *failed) {
  merged *all = NULL;
  for (shard *s = atomic_load_explicit(&shards, memory_order_acquire); s; s = s->next_shard)
    for (method_series *m = atomic_load_explicit(&s->head, memory_order_acquire); m;
         m = atomic_load_explicit(&m->next, memory_order_acquire)) {
      merged *e;
      HASH_FIND(hh, all, m->key, m->key_len, e);
      if (!e && (e = calloc(1, sizeof *e)) != NULL) {
        e->key = m->key;
        HASH_ADD_KEYPTR(hh, all, e->key, m->key_len, e);
      }
      if (!e) {
        *failed = true;
        continue;
      }
      merge_series(e, m);
    }
  return all;
}

static void merged_free(merged *all) {
  merged *e, *tmp;
  HASH_ITER(hh, all, e, tmp) {
    HASH_DEL(all, e);
    free(e);
  }
}

static void put_methods(ch_strbuf *t) {
  bool failed = false;
  merged *methods = merge_shards(&failed);
  if (failed) t->failed = true; /* the render returns NULL */
  ch_strbuf_printf(
      t,
      "# HELP crihook_cri_calls_total CRI calls through crihookd by method and status code.\n"
      "# TYPE crihook_cri_calls_total counter\n");
  char method[640];
  for (merged *m = methods; m; m = m->hh.next)
    for (unsigned c = 0; c <= CODES; c++)
      if (m->calls[c])
        ch_strbuf_printf(t, "crihook_cri_calls_total{method=\"%s\",code=\"%s\"} %llu\n",
                         label_value(method, sizeof method, m->key),
                         c < CODES ? ch_status_name((grpc_status_code)c) : "OTHER",
                         (unsigned long long)m->calls[c]);
  ch_strbuf_printf(
      t,
      "# HELP crihook_cri_call_duration_seconds Time from accept to the end of the call.\n"
      "# TYPE crihook_cri_call_duration_seconds histogram\n");
  for (merged *m = methods; m; m = m->hh.next) {
    char labels[700];
    snprintf(labels, sizeof labels, "method=\"%s\"", label_value(method, sizeof method, m->key));
    put_histogram(t, "crihook_cri_call_duration_seconds", labels, &m->latency);
  }
  merged_free(methods);
}

static void put_hooks(ch_strbuf *t) {
  char plugin[640];
  ch_strbuf_printf(t,
                   "# HELP crihook_hook_calls_total Hook calls by plugin, hook and result.\n"
                   "# TYPE crihook_hook_calls_total counter\n");
  for (hook_series *h = hooks; h; h = h->hh.next)
    for (int r = 0; r < CH_HOOK_RESULT_COUNT; r++)
      ch_strbuf_printf(t,
                       "crihook_hook_calls_total{plugin=\"%s\",hook=\"%s\",result=\"%s\"} %llu\n",
                       label_value(plugin, sizeof plugin, h->plugin), h->hook,
                       ch_hook_result_name((ch_hook_result)r), (unsigned long long)h->results[r]);
  ch_strbuf_printf(
      t,
      "# HELP crihook_hook_rejections_total CRI calls refused by a Fail-policy plugin.\n"
      "# TYPE crihook_hook_rejections_total counter\n");
  for (hook_series *h = hooks; h; h = h->hh.next)
    ch_strbuf_printf(t, "crihook_hook_rejections_total{plugin=\"%s\",hook=\"%s\"} %llu\n",
                     label_value(plugin, sizeof plugin, h->plugin), h->hook,
                     (unsigned long long)h->rejections);
  ch_strbuf_printf(t,
                   "# HELP crihook_hook_call_duration_seconds Hook call latency.\n"
                   "# TYPE crihook_hook_call_duration_seconds histogram\n");
  for (hook_series *h = hooks; h; h = h->hh.next) {
    char labels[700];
    snprintf(labels, sizeof labels, "plugin=\"%s\",hook=\"%s\"",
             label_value(plugin, sizeof plugin, h->plugin), h->hook);
    put_histogram(t, "crihook_hook_call_duration_seconds", labels, &h->latency);
  }
}

/* ---- undecodable hooked requests (intercept.c) ---- */

#define UNDECODABLE_METHODS 16
static struct {
  const char *method; /* static */
  uint64_t count;
} undecodable[UNDECODABLE_METHODS];

void ch_metrics_undecodable(const char *method) {
  if (!enabled) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < UNDECODABLE_METHODS; i++) {
    if (undecodable[i].method && strcmp(undecodable[i].method, method) != 0) continue;
    undecodable[i].method = method;
    undecodable[i].count++;
    break;
  }
  pthread_mutex_unlock(&lock);
}

static void put_undecodable(ch_strbuf *t) {
  ch_strbuf_printf(
      t,
      "# HELP crihook_undecodable_requests_total Hooked CRI requests crihookd could not decode "
      "(refused if a Fail-policy plugin is registered for their hook, else forwarded unhooked).\n"
      "# TYPE crihook_undecodable_requests_total counter\n");
  for (size_t i = 0; i < UNDECODABLE_METHODS && undecodable[i].method; i++)
    ch_strbuf_printf(t, "crihook_undecodable_requests_total{method=\"%s\"} %llu\n",
                     undecodable[i].method, (unsigned long long)undecodable[i].count);
}

static bool registered(const ch_metrics_gauges *g, const char *plugin) {
  for (size_t i = 0; i < g->plugin_count; i++)
    if (strcmp(g->plugin_names[i], plugin) == 0) return true;
  return false;
}

/* Drops the series of plugins no longer registered (under the lock). */
static void prune_hooks(const ch_metrics_gauges *g) {
  hook_series *h, *tmp;
  HASH_ITER(hh, hooks, h, tmp) {
    if (registered(g, h->plugin)) continue;
    HASH_DEL(hooks, h);
    free(h);
  }
}

static void put_gauge(ch_strbuf *t, const char *name, const char *help, const char *type,
                      unsigned long long v) {
  ch_strbuf_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static void put_gauges(ch_strbuf *t, const ch_metrics_gauges *g) {
  put_gauge(t, "crihook_plugins", "Plugins registered.", "gauge", g->plugins);
  put_gauge(t, "crihook_plugin_files_rejected", "Registration files rejected.", "gauge",
            g->plugin_files_rejected);
  put_gauge(t, "crihook_registry_generation", "Registry reloads that changed something.", "counter",
            g->registry_generation);
  put_gauge(t, "crihook_store_pods", "Pods in the store.", "gauge", g->store_pods);
  put_gauge(t, "crihook_store_containers", "Containers in the store.", "gauge",
            g->store_containers);
  put_gauge(t, "crihook_calls_in_flight", "CRI calls in flight.", "gauge",
            g->in_flight > 0 ? (unsigned long long)g->in_flight : 0);
  put_gauge(t, "crihook_backend_connected", "1 if the backend connection is up.", "gauge",
            g->backend_connected);
  put_gauge(t, "crihook_backend_connects_total",
            "Times the backend connection came up (the first time included).", "counter",
            g->backend_connects);
  put_gauge(t, "crihook_log_dropped_total",
            "Log lines dropped because the log sink (stderr) was stuck.", "counter",
            g->log_dropped);
  put_gauge(t, "crihook_store_rebuilt", "1 once the store has been rebuilt from the backend.",
            "gauge", g->store_rebuilt);
}

char *ch_metrics_render(const ch_metrics_gauges *gauges) {
  ch_strbuf t = CH_STRBUF_INIT;
  put_gauges(&t, gauges);
  put_methods(&t);
  pthread_mutex_lock(&lock);
  prune_hooks(gauges);
  put_hooks(&t);
  put_undecodable(&t);
  pthread_mutex_unlock(&lock);
  return ch_strbuf_take(&t);
}

void ch_metrics_reset(void) {
  for (shard *s = atomic_load_explicit(&shards, memory_order_acquire); s; s = s->next_shard) {
    method_series *m, *mt;
    HASH_ITER(hh, s->index, m, mt) {
      HASH_DEL(s->index, m);
      free(m);
    }
    atomic_store_explicit(&s->head, NULL, memory_order_relaxed);
    s->tail = NULL;
  }
  atomic_store_explicit(&method_series_made, 0, memory_order_relaxed);
  pthread_mutex_lock(&lock);
  hook_series *h, *ht;
  HASH_ITER(hh, hooks, h, ht) {
    HASH_DEL(hooks, h);
    free(h);
  }
  memset(undecodable, 0, sizeof undecodable);
  pthread_mutex_unlock(&lock);
}
