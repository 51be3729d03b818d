/* SPDX-License-Identifier: Apache-2.0 */
/* audit-log.c: crihook-audit-log, an example hook plugin on libcrihook.
 *
 * On the Post hooks (PostStartContainer, PostStopContainer,
 * PostRemoveContainer, PostStopPodSandbox) it appends one JSON line per
 * event to --log FILE:
 *
 *   {"time": "2024-05-01T12:00:00.123Z", "hook": "PostStartContainer",
 *    "pod": "ns/name", "pod_uid": "...", "container": "name", "container_id": "..."}
 *
 * (pod events have no "container" fields). Each line is one write(2) on an
 * O_APPEND descriptor: flushed at once, never fsync'd. When a line would
 * take the file past --max-bytes it is first renamed to FILE.1 (one old
 * file is kept) and a new FILE started; a file moved away by someone else
 * (logrotate) is noticed and reopened. A write that fails fails the hook
 * call, which crihookd counts and shows in `crihookctl plugins` (Post hooks
 * never fail the CRI call).
 *
 *   crihook-audit-log [--socket PATH] [--log FILE] [--max-bytes N[KMG]] */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crihook_plugin.h"

#define DEFAULT_SOCKET "/run/crihook/plugins/audit-log.sock"
#define DEFAULT_LOG "/var/log/crihook/audit.log"
#define DEFAULT_MAX_BYTES (10LL * 1024 * 1024)

typedef struct audit_log {
  const char *path;
  long long max_bytes;
  int fd;
  long long size;
  struct stat identity; /* of the file fd writes to */
} audit_log;

static int make_parent_dirs(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

static int log_open(audit_log *a, crihook_error *err) {
  if (make_parent_dirs(a->path) != 0)
    return crihook_fail(err, CRIHOOK_INTERNAL, "cannot create the directory of %s: %s", a->path,
                        strerror(errno));
  a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (a->fd < 0 || fstat(a->fd, &a->identity) != 0)
    return crihook_fail(err, CRIHOOK_INTERNAL, "cannot open %s: %s", a->path, strerror(errno));
  a->size = a->identity.st_size;
  return 0;
}

static void log_close(audit_log *a) {
  if (a->fd >= 0) close(a->fd);
  a->fd = -1;
}

/* Reopens when the file was moved or deleted behind our back. */
static int follow_moves(audit_log *a, crihook_error *err) {
  struct stat now;
  if (a->fd >= 0 && stat(a->path, &now) == 0 && now.st_ino == a->identity.st_ino &&
      now.st_dev == a->identity.st_dev)
    return 0;
  log_close(a);
  return log_open(a, err);
}

static int rotate(audit_log *a, crihook_error *err) {
  char old[4200];
  snprintf(old, sizeof old, "%s.1", a->path);
  log_close(a);
  if (rename(a->path, old) != 0)
    return crihook_fail(err, CRIHOOK_INTERNAL, "cannot rotate %s to %s: %s", a->path, old,
                        strerror(errno));
  return log_open(a, err);
}

static int append(audit_log *a, const char *line, size_t len, crihook_error *err) {
  if (follow_moves(a, err) != 0) return CRIHOOK_INTERNAL;
  if (a->size > 0 && a->size + (long long)len > a->max_bytes && rotate(a, err) != 0)
    return CRIHOOK_INTERNAL;
  ssize_t n = write(a->fd, line, len);
  if (n != (ssize_t)len)
    return crihook_fail(err, CRIHOOK_INTERNAL, "cannot write to %s: %s", a->path,
                        n < 0 ? strerror(errno) : "short write");
  a->size += (long long)len;
  return 0;
}

static void now_rfc3339(char *out, size_t len) {
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, len - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* A JSON string even for bytes that are not UTF-8. */
static json_t *text(const char *s) {
  json_t *j = json_string(s ? s : "");
  return j ? j : json_string("(not UTF-8)");
}

static json_t *event(const char *hook, const Runtime__V1alpha1__PodSandboxMetadata *pod,
                     const Runtime__V1alpha1__ContainerMetadata *ctr) {
  char time[40], who[600];
  now_rfc3339(time, sizeof time);
  snprintf(who, sizeof who, "%s/%s", pod ? pod->namespace_ : "", pod ? pod->name : "");
  json_t *e = json_object();
  json_object_set_new(e, "time", json_string(time));
  json_object_set_new(e, "hook", json_string(hook));
  json_object_set_new(e, "pod", text(who));
  json_object_set_new(e, "pod_uid", text(pod ? pod->uid : ""));
  if (ctr) {
    json_object_set_new(e, "container", text(ctr->name));
    json_object_set_new(e, "container_id", text(ctr->id));
  }
  return e;
}

static int record(audit_log *a, json_t *e, crihook_error *err) {
  char *line = json_dumps(e, JSON_COMPACT);
  json_decref(e);
  if (!line) return crihook_fail(err, CRIHOOK_INTERNAL, "cannot format the event");
  size_t len = strlen(line);
  line[len] = '\n'; /* json_dumps leaves room: replace the NUL, write len + 1 */
  int rc = append(a, line, len + 1, err);
  free(line);
  return rc;
}

static int container_event(audit_log *a, const char *hook, const crihook_container_request *req,
                           crihook_error *err) {
  return record(a, event(hook, req->pod_meta, req->container_meta), err);
}

static int post_start(void *user, const crihook_container_request *req,
                      crihook_container_response *resp, crihook_error *err) {
  (void)resp;
  return container_event(user, "PostStartContainer", req, err);
}

static int post_stop(void *user, const crihook_container_request *req,
                     crihook_container_response *resp, crihook_error *err) {
  (void)resp;
  return container_event(user, "PostStopContainer", req, err);
}

static int post_remove(void *user, const crihook_container_request *req,
                       crihook_container_response *resp, crihook_error *err) {
  (void)resp;
  return container_event(user, "PostRemoveContainer", req, err);
}

static int post_stop_pod(void *user, const crihook_pod_request *req, crihook_pod_response *resp,
                         crihook_error *err) {
  (void)resp;
  return record(user, event("PostStopPodSandbox", req->pod_meta, NULL), err);
}

/* "10485760", "64k", "10M", "1G" (binary units). Returns -1 if malformed. */
static long long parse_size(const char *s) {
  char *end;
  errno = 0;
  long long n = strtoll(s, &end, 10);
  if (errno || end == s || n <= 0) return -1;
  int shift = 0;
  if (*end == 'k' || *end == 'K')
    shift = 10;
  else if (*end == 'm' || *end == 'M')
    shift = 20;
  else if (*end == 'g' || *end == 'G')
    shift = 30;
  if (shift) end++;
  if (*end == 'i' && shift) end++;
  if ((*end == 'B' || *end == 'b') && shift) end++;
  return *end == '\0' && n <= (LLONG_MAX >> shift) ? n << shift : -1;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: crihook-audit-log [--socket PATH] [--log FILE] [--max-bytes N]\n"
          "  --socket PATH    where crihookd calls this plugin (default " DEFAULT_SOCKET
          ")\n"
          "  --log FILE       where events go, one JSON line each (default " DEFAULT_LOG
          ")\n"
          "  --max-bytes N    rotate to FILE.1 past this size (default 10M; k, M, G units)\n");
}

static int parse_args(int argc, char **argv, const char **socket, audit_log *a) {
  static const struct option options[] = {{"socket", required_argument, NULL, 's'},
                                          {"log", required_argument, NULL, 'l'},
                                          {"max-bytes", required_argument, NULL, 'm'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "s:l:m:h", options, NULL)) != -1) {
    switch (c) {
      case 's':
        *socket = optarg;
        break;
      case 'l':
        a->path = optarg;
        break;
      case 'm':
        if ((a->max_bytes = parse_size(optarg)) > 0) break;
        fprintf(stderr, "crihook-audit-log: --max-bytes %s: not a size\n", optarg);
        return -1;
      case 'h':
        return 1;
      default:
        return -1;
    }
  }
  return optind == argc ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *socket = DEFAULT_SOCKET;
  audit_log a = {.path = DEFAULT_LOG, .max_bytes = DEFAULT_MAX_BYTES, .fd = -1};
  int args = parse_args(argc, argv, &socket, &a);
  if (args != 0) {
    usage(args > 0 ? stdout : stderr);
    return args > 0 ? 0 : 2;
  }
  crihook_error err;
  if (log_open(&a, &err) != 0) {
    fprintf(stderr, "crihook-audit-log: %s\n", err.message);
    return 1;
  }
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .post_start_container = post_start,
                            .post_stop_container = post_stop, .post_remove_container = post_remove,
                            .post_stop_pod_sandbox = post_stop_pod};
  int rc = crihook_serve(socket, &ops, &a, &err);
  log_close(&a);
  if (rc != 0) {
    fprintf(stderr, "crihook-audit-log: %s\n", err.message);
    return 1;
  }
  return 0;
}
