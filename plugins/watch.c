/* watch.c: hookserver.d followed with inotify on the control loop (watch.h).
 *
 * Any event on the directory (or, while it is missing, on its nearest
 * existing ancestor) arms a short timer; when it fires the watches are
 * re-armed and the whole directory is read again. Reading everything rather
 * than applying single events makes every case the same case: atomic
 * renames, ConfigMap "..data" swaps, deletions of the directory itself. */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define DEBOUNCE_MS 10
#define DIR_EVENTS                                                                    \
  (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | \
   IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY)
#define ANCESTOR_EVENTS (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct ch_plugin_watch {
  uv_poll_t poll;
  uv_timer_t timer;
  int fd;
  int wd_dir;
  int wd_ancestor;
  int open_handles;
  char dir[PATH_MAX];
  ch_registry_slot *slot;
  unsigned long reloads;
};

/* ---- watches ---- */

static void nearest_ancestor(const char *dir, char *out, size_t size) {
  snprintf(out, size, "%s", dir);
  struct stat st;
  for (;;) {
    char *slash = strrchr(out, '/');
    if (!slash) {
      snprintf(out, size, ".");
      return;
    }
    if (slash == out) {
      out[1] = '\0';
      return;
    }
    *slash = '\0';
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return;
  }
}

static void drop_watch(ch_plugin_watch *w, int *wd) {
  if (*wd >= 0) inotify_rm_watch(w->fd, *wd);
  *wd = -1;
}

/* Watches the directory if it exists, else its nearest existing ancestor. */
static void arm_watches(ch_plugin_watch *w) {
  int wd = inotify_add_watch(w->fd, w->dir, DIR_EVENTS | IN_ONLYDIR);
  if (wd >= 0) {
    if (w->wd_dir >= 0 && w->wd_dir != wd) drop_watch(w, &w->wd_dir);
    w->wd_dir = wd;
    drop_watch(w, &w->wd_ancestor);
    return;
  }
  drop_watch(w, &w->wd_dir);
  char ancestor[PATH_MAX];
  nearest_ancestor(w->dir, ancestor, sizeof ancestor);
  wd = inotify_add_watch(w->fd, ancestor, ANCESTOR_EVENTS | IN_ONLYDIR);
  if (w->wd_ancestor >= 0 && w->wd_ancestor != wd) drop_watch(w, &w->wd_ancestor);
  w->wd_ancestor = wd;
}

/* ---- what changed, logged once ---- */

static const ch_plugin *find_plugin(const ch_registry *r, const char *name) {
  for (size_t i = 0; i < r->count; i++)
    if (strcmp(r->plugins[i].name, name) == 0) return &r->plugins[i];
  return NULL;
}

static bool had_error(const ch_registry *r, const ch_plugin_file_error *e) {
  for (size_t i = 0; i < r->error_count; i++)
    if (strcmp(r->errors[i].file, e->file) == 0 && strcmp(r->errors[i].reason, e->reason) == 0)
      return true;
  return false;
}

static void hook_names(unsigned hooks, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int h = 0; h < CH_HOOK_COUNT; h++)
    if (hooks & (1u << h))
      used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s", used ? "," : "",
                               ch_hook_name(h));
}

static void log_plugin(const char *what, const ch_plugin *p) {
  char hooks[512];
  hook_names(p->hooks, hooks, sizeof hooks);
  ch_info("plugins", "plugin %s name=%s endpoint=%s policy=%s timeout_ms=%d order=%d hooks=%s",
          what, p->name, p->endpoint.path, p->fail_closed ? "Fail" : "Ignore", p->timeout_ms,
          p->order, hooks);
}

static void log_changes(const ch_registry *old, const ch_registry *now) {
  for (size_t i = 0; i < now->count; i++) {
    const ch_plugin *p = &now->plugins[i], *before = find_plugin(old, p->name);
    if (!before)
      log_plugin("added", p);
    else if (strcmp(before->endpoint.path, p->endpoint.path) || before->hooks != p->hooks ||
             before->fail_closed != p->fail_closed || before->timeout_ms != p->timeout_ms ||
             before->order != p->order)
      log_plugin("changed", p);
  }
  for (size_t i = 0; i < old->count; i++)
    if (!find_plugin(now, old->plugins[i].name))
      ch_info("plugins", "plugin removed name=%s", old->plugins[i].name);
  for (size_t i = 0; i < now->error_count; i++)
    if (!had_error(old, &now->errors[i]))
      ch_warn("plugins", "plugin file rejected file=%s reason=\"%s\"", now->errors[i].file,
              now->errors[i].reason);
}

/* ---- reloading ---- */

static void reload(ch_plugin_watch *w) {
  arm_watches(w);
  ch_registry *old = ch_registry_slot_acquire(w->slot);
  ch_registry *now;
  ch_error err;
  if (ch_registry_load(w->dir, old, &now, &err) != 0) {
    ch_warn("plugins", "cannot read the hook directory; keeping the registry: %s", err.msg);
  } else if (ch_registry_equal(old, now)) {
    ch_registry_unref(now);
  } else {
    log_changes(old, now);
    ch_registry_slot_publish(w->slot, now);
    w->reloads++;
  }
  ch_registry_unref(old);
}

static void on_timer(uv_timer_t *t) { reload(t->data); }

static void on_inotify(uv_poll_t *p, int status, int events) {
  ch_plugin_watch *w = p->data;
  (void)events;
  if (status < 0) return;
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  while (read(w->fd, buf, sizeof buf) > 0) {
  }
  if (!uv_is_active((uv_handle_t *)&w->timer)) uv_timer_start(&w->timer, on_timer, DEBOUNCE_MS, 0);
}

int ch_plugin_watch_start(uv_loop_t *loop, const char *dir, ch_registry_slot *slot,
                          ch_plugin_watch **out, ch_error *err) {
  if (strlen(dir) >= PATH_MAX) return ch_fail(err, "path too long");
  ch_plugin_watch *w = calloc(1, sizeof *w);
  if (!w) return ch_fail(err, "out of memory");
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd < 0) {
    free(w);
    return ch_fail_errno(err, errno, "inotify_init1");
  }
  snprintf(w->dir, sizeof w->dir, "%s", dir);
  size_t n = strlen(w->dir);
  while (n > 1 && w->dir[n - 1] == '/') w->dir[--n] = '\0';
  w->slot = slot;
  w->wd_dir = w->wd_ancestor = -1;
  uv_poll_init(loop, &w->poll, w->fd);
  uv_timer_init(loop, &w->timer);
  w->poll.data = w->timer.data = w;
  w->open_handles = 2;
  reload(w);
  if (w->wd_dir < 0)
    ch_info("plugins", "hook directory does not exist yet; waiting for it dir=%s", w->dir);
  uv_poll_start(&w->poll, UV_READABLE, on_inotify);
  *out = w;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  ch_plugin_watch *w = h->data;
  if (--w->open_handles > 0) return;
  close(w->fd);
  free(w);
}

void ch_plugin_watch_stop(ch_plugin_watch *w) {
  uv_close((uv_handle_t *)&w->poll, on_closed);
  uv_close((uv_handle_t *)&w->timer, on_closed);
}

unsigned long ch_plugin_watch_reloads(const ch_plugin_watch *w) { return w->reloads; }
