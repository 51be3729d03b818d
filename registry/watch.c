/* SPDX-License-Identifier: Apache-2.0 */
/* watch.c: hookserver.d followed with inotify on the control loop (watch.h).
 *
 * How the parts fit:
 * - Watches: one inotify fd (non-blocking, polled by a uv_poll_t) holds at
 *   most two watches: the directory itself when it exists, and its nearest
 *   existing ancestor (the parent, while the directory exists). The
 *   ancestor's events matter only for the one name that leads toward the
 *   directory; they reveal the directory (or a missing parent of it) being
 *   created, removed, renamed or replaced, e.g. a symlink swapped.
 * - Events do not say what to change; they only schedule a reload. The
 *   timer waits for DEBOUNCE_MS of quiet (a burst of events, such as a
 *   ConfigMap swap, gives one reload) but never more than MAX_DELAY_MS after
 *   the first event, so a change is applied well within 100 ms. A file
 *   being written (IN_MODIFY, or a new empty file) does not schedule a
 *   reload, only postpones one already scheduled: its IN_CLOSE_WRITE will
 *   schedule it, so a reload rarely sees a file half written.
 * - A reload re-arms the watches first (so nothing that happens while the
 *   directory is read is missed), reads the whole directory, and publishes
 *   only when the result differs. Reading everything rather than applying
 *   single events makes every case the same case: atomic renames,
 *   ConfigMap "..data" swaps, the directory deleted or not there yet.
 * - When inotify or the directory cannot be used (watch limit reached,
 *   permission denied) the reload is retried every RETRY_MS, and the
 *   problem is logged once. */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "watch_log.h"

#define COMPONENT "plugins"
#define DEBOUNCE_MS 10
#define MAX_DELAY_MS 40
#define RETRY_MS 1000
#define ARM_ATTEMPTS 8
#define DIR_EVENTS                                                                    \
  (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | \
   IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY)
#define ANCESTOR_EVENTS \
  (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct ch_plugin_watch {
  uv_poll_t poll;
  uv_timer_t timer;
  int open_handles; /* freed when both are closed */
  int fd;           /* inotify */
  int wd_dir;       /* -1 while the directory is missing */
  int wd_ancestor;  /* -1 when there is none to watch */
  char dir[PATH_MAX];
  char next_name[NAME_MAX + 1]; /* the ancestor's child that leads to dir */
  bool pending;                 /* events seen, reload scheduled */
  uint64_t pending_since;       /* uv_now() of the first of them */
  ch_registry_slot *slot;
  ch_reported_files reported;
  char watch_problem[sizeof(ch_error)]; /* last logged, "" if none */
  char load_problem[sizeof(ch_error)];
  atomic_ulong reloads;
};

/* ---- finding what to watch ---- */

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool same_inode(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Cuts the last component off path[0..*len): the parent goes to `parent`,
 * the component to `child`. Returns false at the root. */
static bool cut_last(const char *path, size_t *len, char *parent, char *child) {
  size_t end = *len, start = end;
  while (start > 0 && path[start - 1] != '/') start--;
  if (start == end || end - start > NAME_MAX) return false;
  memcpy(child, path + start, end - start);
  child[end - start] = '\0';
  size_t plen = start;
  while (plen > 1 && path[plen - 1] == '/') plen--;
  if (plen == 0) {
    strcpy(parent, ".");
  } else {
    memcpy(parent, path, plen);
    parent[plen] = '\0';
  }
  *len = plen;
  return true;
}

/* The nearest existing directory above w->dir (into `out`), and in
 * w->next_name the name under it that leads toward w->dir. */
static bool find_ancestor(ch_plugin_watch *w, char *out) {
  size_t len = strlen(w->dir);
  char child[NAME_MAX + 1];
  for (int depth = 0; depth < PATH_MAX / 2; depth++) {
    if (!cut_last(w->dir, &len, out, child)) return false;
    if (is_dir(out)) {
      snprintf(w->next_name, sizeof w->next_name, "%s", child);
      return !same_inode(out, w->dir);
    }
    if (strcmp(out, ".") == 0 || strcmp(out, "/") == 0) return false;
  }
  return false;
}

/* ---- arming the watches ---- */

/* Drops the old watch if another replaces it (errno is kept: the old one
 * may be gone already, with its inode). */
static void replace_watch(ch_plugin_watch *w, int *wd, int next) {
  int saved = errno;
  if (*wd >= 0 && *wd != next) inotify_rm_watch(w->fd, *wd);
  *wd = next;
  errno = saved;
}

static bool missing(int errnum) { return errnum == ENOENT || errnum == ENOTDIR; }

/* Returns 1 when watched, 0 when missing, -1 (err) when inotify refuses. */
static int watch_dir(ch_plugin_watch *w, ch_error *err) {
  int wd = inotify_add_watch(w->fd, w->dir, DIR_EVENTS | IN_ONLYDIR);
  replace_watch(w, &w->wd_dir, wd >= 0 ? wd : -1);
  if (wd >= 0) return 1;
  return missing(errno) ? 0 : ch_fail_errno(err, errno, "watch %s", w->dir);
}

static int watch_ancestor(ch_plugin_watch *w, ch_error *err) {
  char ancestor[PATH_MAX];
  if (!find_ancestor(w, ancestor)) {
    replace_watch(w, &w->wd_ancestor, -1);
    return 0;
  }
  int wd = inotify_add_watch(w->fd, ancestor, ANCESTOR_EVENTS | IN_ONLYDIR);
  replace_watch(w, &w->wd_ancestor, wd >= 0 ? wd : -1);
  if (wd >= 0) return 1;
  return missing(errno) ? 0 : ch_fail_errno(err, errno, "watch %s", ancestor);
}

/* Watches the directory and its nearest existing ancestor. Retries when the
 * tree changes under it (the directory created, or the ancestor removed,
 * between two steps), so no change is missed. */
static int arm_watches(ch_plugin_watch *w, ch_error *err) {
  for (int attempt = 0; attempt < ARM_ATTEMPTS; attempt++) {
    int dir = watch_dir(w, err);
    if (dir < 0) return -1;
    int ancestor = watch_ancestor(w, err);
    if (dir == 1 && ancestor >= 0) return 0;
    if (ancestor < 0) return -1;
    if (ancestor == 1 && !is_dir(w->dir)) return 0;
  }
  return ch_fail(err, "watch %s: the directory keeps changing", w->dir);
}

/* ---- reloading ---- */

/* Logs `msg` at warn level unless it is the problem already logged; an
 * empty msg clears it, logging the recovery. */
static void note_problem(char *last, size_t size, const char *what, const char *msg) {
  if (strcmp(last, msg) == 0) return;
  if (msg[0])
    ch_warn(COMPONENT, "%s (retrying every %d ms): %s", what, RETRY_MS, msg);
  else
    ch_info(COMPONENT, "%s: resolved", what);
  snprintf(last, size, "%s", msg);
}

static void publish_if_changed(ch_plugin_watch *w, const ch_registry *old, ch_registry *now) {
  ch_watch_log_files(&w->reported, now);
  if (ch_registry_equal(old, now)) {
    ch_registry_unref(now);
    return;
  }
  ch_watch_log_plugins(old, now);
  ch_registry_slot_publish(w->slot, now);
  atomic_fetch_add(&w->reloads, 1);
}

/* Returns false when something failed and a retry is due. */
static bool reload(ch_plugin_watch *w) {
  ch_error err;
  bool armed = arm_watches(w, &err) == 0;
  note_problem(w->watch_problem, sizeof w->watch_problem,
               "cannot watch the hook directory; changes may be seen late", armed ? "" : err.msg);
  ch_registry *old = ch_registry_slot_acquire(w->slot), *now;
  bool loaded = old && ch_registry_load(w->dir, old, &now, &err) == 0;
  if (!old) snprintf(err.msg, sizeof err.msg, "out of memory");
  note_problem(w->load_problem, sizeof w->load_problem,
               "cannot read the hook directory; keeping the current plugins",
               loaded ? "" : err.msg);
  if (loaded) publish_if_changed(w, old, now);
  ch_registry_unref(old);
  return armed && loaded;
}

/* ---- events ---- */

typedef enum effect {
  IGNORE,   /* nothing to do with this directory */
  POSTPONE, /* a file is being written: a pending reload waits for quiet */
  RELOAD,   /* something changed: read the directory again */
} effect;

/* A new, empty regular file with no other link is being written: its
 * IN_CLOSE_WRITE will follow, so reading it now would only see it half
 * written (an operator typing `cat > 10-x.json`). One that already has
 * bytes could have been linked in complete (linkat of an O_TMPFILE), so it
 * is read. */
static bool being_written(const ch_plugin_watch *w, const struct inotify_event *ev) {
  if (!(ev->mask & IN_CREATE) || (ev->mask & IN_ISDIR) || !ev->len) return false;
  char path[PATH_MAX + NAME_MAX + 2];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", w->dir, ev->name);
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 && st.st_nlink == 1;
}

static effect effect_in_dir(const ch_plugin_watch *w, const struct inotify_event *ev) {
  if (ev->mask == IN_MODIFY || being_written(w, ev)) return POSTPONE;
  return RELOAD;
}

static effect effect_of(const ch_plugin_watch *w, const struct inotify_event *ev) {
  if (ev->mask & IN_Q_OVERFLOW) return RELOAD;
  if (ev->wd == w->wd_dir) return effect_in_dir(w, ev);
  if (ev->wd == w->wd_ancestor)
    return (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
                   (ev->len && strcmp(ev->name, w->next_name) == 0)
               ? RELOAD
               : IGNORE;
  return IGNORE; /* a watch already replaced: the reload that did it read the directory */
}

/* Reads every queued event; returns the strongest effect among them. */
static effect drain_events(ch_plugin_watch *w) {
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  effect strongest = IGNORE;
  ssize_t n;
  while ((n = read(w->fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      effect e = effect_of(w, ev);
      if (e > strongest) strongest = e;
      p += sizeof *ev + ev->len;
    }
  }
  return strongest;
}

/* ---- scheduling ---- */

static void on_timer(uv_timer_t *t);

static bool overdue(const ch_plugin_watch *w) {
  return uv_now(w->timer.loop) >= w->pending_since + MAX_DELAY_MS;
}

/* Restarts the quiet-time timer, bounded by MAX_DELAY_MS from the first
 * event of the burst. */
static void schedule(ch_plugin_watch *w) {
  uint64_t now = uv_now(w->timer.loop);
  if (!w->pending) w->pending_since = now;
  w->pending = true;
  uint64_t latest = w->pending_since + MAX_DELAY_MS;
  uint64_t delay = latest <= now ? 0 : latest - now;
  uv_timer_start(&w->timer, on_timer, delay < DEBOUNCE_MS ? delay : DEBOUNCE_MS, 0);
}

static void on_events(ch_plugin_watch *w, effect e) {
  if (e == RELOAD || (e == POSTPONE && w->pending)) schedule(w);
}

/* libuv runs due timers before it polls for I/O: when the loop was late,
 * events of the same burst may still be queued, and they extend the quiet
 * time (within MAX_DELAY_MS) instead of being read after the reload. */
static void on_timer(uv_timer_t *t) {
  ch_plugin_watch *w = t->data;
  if (w->pending && !overdue(w) && drain_events(w) != IGNORE) {
    schedule(w);
    return;
  }
  w->pending = false;
  if (!reload(w)) uv_timer_start(&w->timer, on_timer, RETRY_MS, 0);
}

static void on_inotify(uv_poll_t *p, int status, int events) {
  ch_plugin_watch *w = p->data;
  (void)events;
  if (status < 0) return;
  on_events(w, drain_events(w));
}

/* ---- life cycle ---- */

static int watch_new(uv_loop_t *loop, const char *dir, ch_registry_slot *slot,
                     ch_plugin_watch **out, ch_error *err) {
  ch_plugin_watch *w = calloc(1, sizeof *w);
  if (!w) return ch_fail(err, "out of memory");
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd < 0) {
    free(w);
    return ch_fail_errno(err, errno, "inotify_init1");
  }
  int rc = uv_poll_init(loop, &w->poll, w->fd);
  if (rc != 0) {
    close(w->fd);
    free(w);
    return ch_fail(err, "poll the inotify fd: %s", uv_strerror(rc));
  }
  uv_timer_init(loop, &w->timer);
  w->poll.data = w->timer.data = w;
  w->open_handles = 2;
  w->wd_dir = w->wd_ancestor = -1;
  w->slot = slot;
  snprintf(w->dir, sizeof w->dir, "%s", dir);
  for (size_t n = strlen(w->dir); n > 1 && w->dir[n - 1] == '/';) w->dir[--n] = '\0';
  *out = w;
  return 0;
}

int ch_plugin_watch_start(uv_loop_t *loop, const char *dir, ch_registry_slot *slot,
                          ch_plugin_watch **out, ch_error *err) {
  if (!dir[0]) return ch_fail(err, "empty path");
  if (strlen(dir) >= PATH_MAX) return ch_fail(err, "path longer than %d bytes", PATH_MAX - 1);
  ch_plugin_watch *w = NULL;
  if (watch_new(loop, dir, slot, &w, err) != 0) return -1;
  if (!reload(w)) uv_timer_start(&w->timer, on_timer, RETRY_MS, 0);
  if (w->wd_dir < 0 && !w->watch_problem[0])
    ch_info(COMPONENT, "hook directory does not exist yet; waiting for it dir=%s", w->dir);
  uv_poll_start(&w->poll, UV_READABLE, on_inotify);
  *out = w;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  ch_plugin_watch *w = h->data;
  if (--w->open_handles > 0) return;
  close(w->fd);
  ch_reported_files_clear(&w->reported);
  free(w);
}

void ch_plugin_watch_stop(ch_plugin_watch *w) {
  uv_close((uv_handle_t *)&w->poll, on_closed);
  uv_close((uv_handle_t *)&w->timer, on_closed);
}

void ch_plugin_watch_reload_now(ch_plugin_watch *w, const char *why) {
  unsigned long before = atomic_load(&w->reloads);
  bool ok = reload(w);
  if (!ok && !w->pending) uv_timer_start(&w->timer, on_timer, RETRY_MS, 0);
  ch_registry *now = ch_registry_slot_acquire(w->slot);
  ch_info(COMPONENT, "hook directory reloaded (%s) dir=%s plugins=%zu changed=%s%s", why, w->dir,
          now ? now->count : 0, atomic_load(&w->reloads) != before ? "yes" : "no",
          ok ? "" : " (failed: retrying; see above)");
  ch_registry_unref(now);
}

unsigned long ch_plugin_watch_reloads(const ch_plugin_watch *w) { return atomic_load(&w->reloads); }
