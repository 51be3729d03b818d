/* SPDX-License-Identifier: Apache-2.0 */
/* registry.c: hookserver.d read into an immutable, reference-counted
 * registry, and the slot that publishes it (registry.h).
 *
 * A load runs in four steps: list the directory (the *.json names, sorted
 * with strcmp), read each file (regular files only, symlinks followed, at
 * most MAX_FILE_SIZE bytes), parse it (plugin_parse.c), and index the
 * plugins per hook point. A bad file becomes an entry in `errors`; only a
 * failure that is not the file's fault (an unreadable directory, memory)
 * fails the load.
 *
 * Connections are not the registry's: a plugin names its socket, and each
 * loop that calls it keeps its own connection there (rpc/rpc_pool.h), so a
 * reload connects nothing and a registry holds only memory. */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_SIZE (1024 * 1024)

/* ---- listing the directory ---- */

typedef struct name_list {
  char **names;
  size_t count, cap;
} name_list;

static void name_list_free(name_list *l) {
  for (size_t i = 0; i < l->count; i++) free(l->names[i]);
  free(l->names);
  *l = (name_list){0};
}

static int name_list_add(name_list *l, const char *name) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **grown = realloc(l->names, cap * sizeof *grown);
    if (!grown) return -1;
    l->names = grown;
    l->cap = cap;
  }
  if (!(l->names[l->count] = strdup(name))) return -1;
  l->count++;
  return 0;
}

static bool is_registration_name(const char *name) {
  size_t n = strlen(name);
  return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_names(DIR *d, name_list *out, ch_error *err) {
  struct dirent *e;
  for (errno = 0; (e = readdir(d)) != NULL; errno = 0)
    if (is_registration_name(e->d_name) && name_list_add(out, e->d_name) != 0)
      return ch_fail(err, "out of memory");
  return errno ? ch_fail_errno(err, errno, "read directory") : 0;
}

/* The sorted registration file names in `dir`; none if it does not exist. */
static int list_files(const char *dir, name_list *out, ch_error *err) {
  *out = (name_list){0};
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT || errno == ENOTDIR ? 0 : ch_fail_errno(err, errno, "open");
  int rc = read_names(d, out, err);
  closedir(d);
  if (rc != 0) {
    name_list_free(out);
    return -1;
  }
  if (out->count) qsort(out->names, out->count, sizeof *out->names, by_name);
  return 0;
}

/* ---- reading one file ---- */

typedef struct file_text {
  char *text;
  size_t len;
  int64_t mtime_ns, size; /* from fstat, for the error record */
  bool vanished;          /* removed since the directory was listed */
} file_text;

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

static void note_stat(file_text *out, const struct stat *st) {
  out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  out->size = (int64_t)st->st_size;
}

/* Fails with vanished set: the name is gone, there is nothing to report. */
static int vanished(file_text *out) {
  out->vanished = true;
  return -1;
}

/* Checks what the name points at before opening it: opening a fifo or a
 * device could block or have side effects. */
static int check_target(const char *path, file_text *out, ch_error *err) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno != ENOENT) return ch_fail_errno(err, errno, "cannot stat");
    if (lstat(path, &st) != 0) return vanished(out);
    return ch_fail(err, "broken symlink");
  }
  note_stat(out, &st);
  if (!S_ISREG(st.st_mode)) return ch_fail(err, "not a regular file (%s)", file_kind(st.st_mode));
  return 0;
}

static int read_all(int fd, const struct stat *st, file_text *out, ch_error *err) {
  if (st->st_size > MAX_FILE_SIZE)
    return ch_fail(err, "larger than %d bytes (%lld)", MAX_FILE_SIZE, (long long)st->st_size);
  out->text = malloc((size_t)st->st_size + 1);
  if (!out->text) return ch_fail(err, "out of memory");
  while (out->len < (size_t)st->st_size) {
    ssize_t n = read(fd, out->text + out->len, (size_t)st->st_size - out->len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ch_fail_errno(err, errno, "cannot read");
    if (n == 0) break;
    out->len += (size_t)n;
  }
  return 0;
}

static int open_and_read(const char *path, file_text *out, ch_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return errno == ENOENT ? vanished(out) : ch_fail_errno(err, errno, "cannot open");
  struct stat st;
  int rc = fstat(fd, &st) != 0 ? ch_fail_errno(err, errno, "cannot stat") : 0;
  if (rc == 0) {
    note_stat(out, &st);
    rc = S_ISREG(st.st_mode) ? read_all(fd, &st, out, err)
                             : ch_fail(err, "not a regular file (%s)", file_kind(st.st_mode));
  }
  close(fd);
  return rc;
}

static int read_registration(const char *path, file_text *out, ch_error *err) {
  *out = (file_text){0};
  if (check_target(path, out, err) != 0) return -1;
  return open_and_read(path, out, err);
}

/* ---- building a registry ---- */

static ch_registry *registry_new(size_t files) {
  ch_registry *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  atomic_init(&r->refs, 1);
  r->plugins = calloc(files ? files : 1, sizeof *r->plugins);
  r->errors = calloc(files ? files : 1, sizeof *r->errors);
  if (!r->plugins || !r->errors) {
    ch_registry_unref(r);
    return NULL;
  }
  return r;
}

static void add_error(ch_registry *r, const char *path, const file_text *f, const char *reason) {
  ch_plugin_file_error *e = &r->errors[r->error_count++];
  snprintf(e->file, sizeof e->file, "%s", path);
  snprintf(e->reason, sizeof e->reason, "%s", reason);
  e->mtime_ns = f->mtime_ns;
  e->size = f->size;
}

/* Adds the plugin parsed from f, or the reason it is bad. Fails only when
 * out of memory. */
static void add_plugin(ch_registry *r, const char *path, const char *name, const file_text *f) {
  ch_plugin *p = &r->plugins[r->count];
  ch_error why;
  if (ch_plugin_parse(name, f->text, f->len, p, &why) != 0) {
    memset(p, 0, sizeof *p);
    add_error(r, path, f, why.msg);
    return;
  }
  snprintf(p->file, sizeof p->file, "%s", path);
  p->order = (int)r->count;
  r->count++;
}

/* Adds the plugin in dir/name, or the reason it is bad; never fails (a
 * file that vanished is simply not there). */
static void load_file(ch_registry *r, const char *dir, const char *name) {
  char path[sizeof r->errors->file];
  file_text f = {0};
  ch_error why;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
    add_error(r, path, &f, "path too long");
    return;
  }
  if (read_registration(path, &f, &why) == 0)
    add_plugin(r, path, name, &f);
  else if (!f.vanished)
    add_error(r, path, &f, why.msg);
  free(f.text);
}

static int index_hooks(ch_registry *r) {
  for (int h = 0; h < CH_HOOK_COUNT; h++) {
    r->hook_count[h] = 0;
    r->by_hook[h] = calloc(r->count ? r->count : 1, sizeof *r->by_hook[h]);
    if (!r->by_hook[h]) return -1;
    for (size_t i = 0; i < r->count; i++)
      if (r->plugins[i].hooks & (1u << h)) r->by_hook[h][r->hook_count[h]++] = &r->plugins[i];
  }
  return 0;
}

ch_registry *ch_registry_empty(void) {
  ch_registry *r = registry_new(0);
  if (r && index_hooks(r) != 0) {
    ch_registry_unref(r);
    return NULL;
  }
  return r;
}

static int load_files(ch_registry *r, const char *dir, const name_list *names, ch_error *err) {
  for (size_t i = 0; i < names->count; i++) load_file(r, dir, names->names[i]);
  return index_hooks(r) == 0 ? 0 : ch_fail(err, "out of memory");
}

int ch_registry_load(const char *dir, const ch_registry *previous, ch_registry **out,
                     ch_error *err) {
  (void)previous; /* nothing is shared across generations any more */
  name_list names;
  if (list_files(dir, &names, err) != 0) return ch_wrap(err, "hook directory %s", dir);
  ch_registry *r = registry_new(names.count);
  int rc = r ? load_files(r, dir, &names, err) : ch_fail(err, "out of memory");
  name_list_free(&names);
  if (rc != 0) {
    ch_registry_unref(r);
    return ch_wrap(err, "load %s", dir);
  }
  *out = r;
  return 0;
}

/* ---- references ---- */

void ch_registry_ref(ch_registry *r) { atomic_fetch_add(&r->refs, 1); }

void ch_registry_unref(ch_registry *r) {
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
  for (int h = 0; h < CH_HOOK_COUNT; h++) free(r->by_hook[h]);
  free(r->plugins);
  free(r->errors);
  free(r);
}

/* ---- comparing generations ---- */

static bool plugin_equal(const ch_plugin *a, const ch_plugin *b) {
  return strcmp(a->name, b->name) == 0 && strcmp(a->file, b->file) == 0 &&
         strcmp(a->endpoint.path, b->endpoint.path) == 0 &&
         strcmp(a->endpoint.target, b->endpoint.target) == 0 && a->fail_closed == b->fail_closed &&
         a->timeout_ms == b->timeout_ms && a->hooks == b->hooks && a->order == b->order;
}

static bool file_error_equal(const ch_plugin_file_error *a, const ch_plugin_file_error *b) {
  return strcmp(a->file, b->file) == 0 && strcmp(a->reason, b->reason) == 0;
}

bool ch_registry_equal(const ch_registry *a, const ch_registry *b) {
  if (a->count != b->count || a->error_count != b->error_count) return false;
  for (size_t i = 0; i < a->count; i++)
    if (!plugin_equal(&a->plugins[i], &b->plugins[i])) return false;
  for (size_t i = 0; i < a->error_count; i++)
    if (!file_error_equal(&a->errors[i], &b->errors[i])) return false;
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
  ch_registry_unref(old); /* outside the lock: may free it */
}

ch_registry *ch_registry_slot_acquire(ch_registry_slot *slot) {
  pthread_mutex_lock(&slot->lock);
  ch_registry *r = slot->current;
  if (r) ch_registry_ref(r);
  pthread_mutex_unlock(&slot->lock);
  return r;
}
