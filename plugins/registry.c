/* registry.c: reading hookserver.d into an immutable, reference-counted
 * registry, and the slot that publishes it (registry.h). */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grpc_util.h"

#define MAX_FILE_SIZE (1024 * 1024)
#define MAX_TIMEOUT_MS 120000

/* ---- one file ---- */

static int parse_policy(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *v = json_object_get(doc, "failure-policy");
  if (!v) return 0;
  if (!json_is_string(v)) return ch_fail(err, "\"failure-policy\" must be a string");
  const char *s = json_string_value(v);
  if (strcmp(s, "Fail") == 0)
    out->fail_closed = true;
  else if (strcmp(s, "Ignore") != 0)
    return ch_fail(err, "\"failure-policy\" must be \"Fail\" or \"Ignore\", not \"%s\"", s);
  return 0;
}

static int parse_hooks(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *list = json_object_get(doc, "runtime-hooks");
  if (!json_is_array(list)) return ch_fail(err, "\"runtime-hooks\" must be a list of hook names");
  size_t i;
  const json_t *v;
  json_array_foreach(list, i, v) {
    ch_hook_point hook;
    if (!json_is_string(v)) return ch_fail(err, "\"runtime-hooks\"[%zu] must be a string", i);
    if (ch_hook_parse(json_string_value(v), &hook) != 0)
      return ch_fail(err, "unknown hook \"%s\" in \"runtime-hooks\"", json_string_value(v));
    out->hooks |= 1u << hook;
  }
  if (!out->hooks) return ch_fail(err, "\"runtime-hooks\" registers no hooks");
  return 0;
}

static int parse_timeout(const json_t *doc, ch_plugin *out, ch_error *err) {
  const json_t *v = json_object_get(doc, "timeout-ms");
  out->timeout_ms = CH_PLUGIN_DEFAULT_TIMEOUT_MS;
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > MAX_TIMEOUT_MS)
    return ch_fail(err, "\"timeout-ms\" must be an integer from 1 to %d", MAX_TIMEOUT_MS);
  out->timeout_ms = (int)json_integer_value(v);
  return 0;
}

int ch_plugin_parse(const char *name, const char *text, size_t len, ch_plugin *out, ch_error *err) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(name);
  snprintf(out->name, sizeof out->name, "%.*s", (int)(n > 5 ? n - 5 : n), name);
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, 0, &jerr);
  if (!doc)
    return ch_fail(err, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
  int rc = 0;
  const json_t *ep = json_object_get(doc, "remote-endpoint");
  if (!json_is_object(doc))
    rc = ch_fail(err, "must be a JSON object");
  else if (!ep)
    rc = ch_fail(err, "\"remote-endpoint\" is missing");
  else if (!json_is_string(ep))
    rc = ch_fail(err, "\"remote-endpoint\" must be a string");
  else if (ch_endpoint_parse(json_string_value(ep), &out->endpoint, err) != 0)
    rc = ch_wrap(err, "\"remote-endpoint\"");
  else if (parse_policy(doc, out, err) || parse_hooks(doc, out, err) ||
           parse_timeout(doc, out, err))
    rc = -1;
  json_decref(doc);
  return rc;
}

/* ---- channels shared across generations ---- */

static ch_plugin_channel *find_channel(const ch_registry *r, const char *target) {
  for (size_t i = 0; r && i < r->count; i++)
    if (r->plugins[i].channel && strcmp(r->plugins[i].channel->target, target) == 0)
      return r->plugins[i].channel;
  return NULL;
}

static ch_plugin_channel *channel_for(const ch_registry *previous, const ch_registry *building,
                                      const char *target) {
  ch_plugin_channel *c = find_channel(building, target);
  if (!c) c = find_channel(previous, target);
  if (c) {
    atomic_fetch_add(&c->refs, 1);
    return c;
  }
  c = calloc(1, sizeof *c);
  if (!c) return NULL;
  atomic_init(&c->refs, 1);
  snprintf(c->target, sizeof c->target, "%s", target);
  c->channel = ch_channel_open(target, NULL);
  return c;
}

static void channel_unref(ch_plugin_channel *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  grpc_channel_destroy(c->channel);
  free(c);
}

/* ---- the directory ---- */

static bool wanted_name(const char *name) {
  size_t n = strlen(name);
  return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the registration files; *count = 0 if dir is missing. */
static int list_files(const char *dir, char ***names, size_t *count, ch_error *err) {
  *names = NULL;
  *count = 0;
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT || errno == ENOTDIR ? 0 : ch_fail_errno(err, errno, "open %s", dir);
  size_t cap = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!wanted_name(e->d_name)) continue;
    if (*count == cap) {
      char **grown = realloc(*names, (cap = cap ? cap * 2 : 16) * sizeof *grown);
      if (!grown) break;
      *names = grown;
    }
    (*names)[(*count)++] = strdup(e->d_name);
  }
  closedir(d);
  if (*count) qsort(*names, *count, sizeof **names, by_name);
  return 0;
}

static int read_file(const char *path, char **text, size_t *len, ch_error *err) {
  struct stat st;
  if (stat(path, &st) != 0) return ch_fail_errno(err, errno, "cannot read");
  if (!S_ISREG(st.st_mode)) return ch_fail(err, "not a regular file");
  if (st.st_size > MAX_FILE_SIZE) return ch_fail(err, "larger than %d bytes", MAX_FILE_SIZE);
  FILE *f = fopen(path, "rb");
  if (!f) return ch_fail_errno(err, errno, "cannot read");
  *text = malloc((size_t)st.st_size + 1);
  *len = *text ? fread(*text, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  return *text ? 0 : ch_fail(err, "out of memory");
}

static void add_error(ch_registry *r, const char *path, const char *reason) {
  ch_plugin_file_error *e = &r->errors[r->error_count++];
  snprintf(e->file, sizeof e->file, "%s", path);
  snprintf(e->reason, sizeof e->reason, "%s", reason);
}

static void load_one(ch_registry *r, const ch_registry *previous, const char *dir,
                     const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  ch_error err;
  char *text = NULL;
  size_t len = 0;
  ch_plugin *p = &r->plugins[r->count];
  if (read_file(path, &text, &len, &err) != 0 || ch_plugin_parse(name, text, len, p, &err) != 0) {
    add_error(r, path, err.msg);
    free(text);
    return;
  }
  free(text);
  snprintf(p->file, sizeof p->file, "%s", path);
  p->order = (int)r->count;
  p->channel = channel_for(previous, r, p->endpoint.target);
  if (!p->channel) {
    add_error(r, path, "out of memory");
    return;
  }
  r->count++;
}

static int index_hooks(ch_registry *r) {
  for (int h = 0; h < CH_HOOK_COUNT; h++) {
    r->by_hook[h] = calloc(r->count ? r->count : 1, sizeof *r->by_hook[h]);
    if (!r->by_hook[h]) return -1;
    for (size_t i = 0; i < r->count; i++)
      if (r->plugins[i].hooks & (1u << h)) r->by_hook[h][r->hook_count[h]++] = &r->plugins[i];
  }
  return 0;
}

static ch_registry *registry_alloc(size_t files) {
  ch_registry *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  atomic_init(&r->refs, 1);
  r->plugins = calloc(files ? files : 1, sizeof *r->plugins);
  r->errors = calloc(files ? files : 1, sizeof *r->errors);
  if (!r->plugins || !r->errors || index_hooks(r) != 0) {
    ch_registry_unref(r);
    return NULL;
  }
  return r;
}

ch_registry *ch_registry_empty(void) { return registry_alloc(0); }

int ch_registry_load(const char *dir, const ch_registry *previous, ch_registry **out,
                     ch_error *err) {
  char **names;
  size_t count;
  if (list_files(dir, &names, &count, err) != 0) return -1;
  ch_registry *r = registry_alloc(count);
  for (size_t i = 0; r && i < count; i++) load_one(r, previous, dir, names[i]);
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
  if (!r) return ch_fail(err, "out of memory");
  for (int h = 0; h < CH_HOOK_COUNT; h++) free(r->by_hook[h]);
  memset(r->hook_count, 0, sizeof r->hook_count);
  if (index_hooks(r) != 0) {
    ch_registry_unref(r);
    return ch_fail(err, "out of memory");
  }
  *out = r;
  return 0;
}

void ch_registry_ref(ch_registry *r) { atomic_fetch_add(&r->refs, 1); }

void ch_registry_unref(ch_registry *r) {
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
  for (size_t i = 0; i < r->count; i++) channel_unref(r->plugins[i].channel);
  for (int h = 0; h < CH_HOOK_COUNT; h++) free(r->by_hook[h]);
  free(r->plugins);
  free(r->errors);
  free(r);
}

static bool plugin_equal(const ch_plugin *a, const ch_plugin *b) {
  return strcmp(a->name, b->name) == 0 && strcmp(a->file, b->file) == 0 &&
         strcmp(a->endpoint.path, b->endpoint.path) == 0 && a->fail_closed == b->fail_closed &&
         a->timeout_ms == b->timeout_ms && a->hooks == b->hooks && a->order == b->order;
}

bool ch_registry_equal(const ch_registry *a, const ch_registry *b) {
  if (a->count != b->count || a->error_count != b->error_count) return false;
  for (size_t i = 0; i < a->count; i++)
    if (!plugin_equal(&a->plugins[i], &b->plugins[i])) return false;
  for (size_t i = 0; i < a->error_count; i++)
    if (strcmp(a->errors[i].file, b->errors[i].file) != 0 ||
        strcmp(a->errors[i].reason, b->errors[i].reason) != 0)
      return false;
  return true;
}

/* ---- the slot ---- */

void ch_registry_slot_init(ch_registry_slot *slot) {
  pthread_mutex_init(&slot->lock, NULL);
  slot->current = ch_registry_empty();
}

void ch_registry_slot_destroy(ch_registry_slot *slot) {
  ch_registry_unref(slot->current);
  slot->current = NULL;
  pthread_mutex_destroy(&slot->lock);
}

void ch_registry_slot_publish(ch_registry_slot *slot, ch_registry *next) {
  pthread_mutex_lock(&slot->lock);
  ch_registry *old = slot->current;
  next->generation = old ? old->generation + 1 : 1;
  slot->current = next;
  pthread_mutex_unlock(&slot->lock);
  ch_registry_unref(old);
}

ch_registry *ch_registry_slot_acquire(ch_registry_slot *slot) {
  pthread_mutex_lock(&slot->lock);
  ch_registry *r = slot->current;
  ch_registry_ref(r);
  pthread_mutex_unlock(&slot->lock);
  return r;
}
