/* SPDX-License-Identifier: Apache-2.0 */
/* rules.c: reading and checking env-inject's rules file (rules.h).
 *
 * The file is parsed into a jansson document and checked against the
 * shape in rules.h; the plugin then walks the checked "rules" array
 * directly. A change is noticed by the file's identity (inode, size,
 * mtime, ctime), so an editor's in-place write, an atomic rename and a
 * Kubernetes ConfigMap's symlink swap are all seen on the next call. */
#include "rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int bad(rules_file *rf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(rules_file *rf, const char *fmt, ...) {
  int n = snprintf(rf->error, sizeof rf->error, "rules file %s: ", rf->path);
  if (n < 0 || (size_t)n >= sizeof rf->error) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rf->error + n, sizeof rf->error - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* `obj` (at `where`) must be an object whose values are all strings. */
static int check_strings(rules_file *rf, json_t *obj, const char *where) {
  if (!json_is_object(obj)) return bad(rf, "%s must be an object of strings", where);
  const char *key;
  json_t *value;
  json_object_foreach(obj, key, value) {
    if (!json_is_string(value)) return bad(rf, "%s.%s must be a string", where, key);
  }
  return 0;
}

static int check_keys(rules_file *rf, json_t *obj, const char *where, const char *const *known) {
  const char *key;
  json_t *value;
  json_object_foreach(obj, key, value) {
    bool ok = false;
    for (const char *const *k = known; *k && !ok; k++) ok = strcmp(key, *k) == 0;
    if (!ok) return bad(rf, "%s: unknown key \"%s\"", where, key);
  }
  return 0;
}

static int check_match(rules_file *rf, json_t *match, const char *where) {
  static const char *const known[] = {"namespace", "labels", "image", NULL};
  char at[64];
  snprintf(at, sizeof at, "%s.match", where);
  if (!json_is_object(match)) return bad(rf, "%s must be an object", at);
  if (check_keys(rf, match, at, known) != 0) return -1;
  json_t *ns = json_object_get(match, "namespace"), *image = json_object_get(match, "image");
  json_t *labels = json_object_get(match, "labels");
  if (ns && !json_is_string(ns)) return bad(rf, "%s.namespace must be a string", at);
  if (image && !json_is_string(image)) return bad(rf, "%s.image must be a string", at);
  snprintf(at, sizeof at, "%s.match.labels", where);
  return labels ? check_strings(rf, labels, at) : 0;
}

static int check_rule(rules_file *rf, json_t *rule, size_t index) {
  static const char *const known[] = {"match", "envs", "annotations", NULL};
  char where[64];
  snprintf(where, sizeof where, "rules[%zu]", index);
  if (!json_is_object(rule)) return bad(rf, "%s must be an object", where);
  if (check_keys(rf, rule, where, known) != 0) return -1;
  json_t *match = json_object_get(rule, "match");
  if (match && check_match(rf, match, where) != 0) return -1;
  const char *maps[] = {"envs", "annotations"};
  for (int i = 0; i < 2; i++) {
    json_t *m = json_object_get(rule, maps[i]);
    char at[80];
    snprintf(at, sizeof at, "%s.%s", where, maps[i]);
    if (m && check_strings(rf, m, at) != 0) return -1;
  }
  return 0;
}

/* Parses and checks; on success the checked array replaces rf->rules. */
static int read_rules(rules_file *rf) {
  json_error_t jerr;
  json_t *doc = json_load_file(rf->path, JSON_REJECT_DUPLICATES, &jerr);
  if (!doc) {
    if (jerr.line <= 0) return bad(rf, "%s", jerr.text);
    return bad(rf, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
  }
  static const char *const known[] = {"rules", NULL};
  json_t *rules = json_object_get(doc, "rules");
  int rc = 0;
  if (!json_is_object(doc) || !json_is_array(rules))
    rc = bad(rf, "expected {\"rules\": [...]}");
  else
    rc = check_keys(rf, doc, "top level", known);
  for (size_t i = 0; rc == 0 && i < json_array_size(rules); i++)
    rc = check_rule(rf, json_array_get(rules, i), i);
  if (rc == 0) {
    json_decref(rf->rules);
    rf->rules = json_incref(rules);
    rf->error[0] = '\0';
  }
  json_decref(doc);
  return rc;
}

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int rules_file_refresh(rules_file *rf) {
  struct stat now;
  if (stat(rf->path, &now) != 0) {
    rf->loaded = false;
    json_decref(rf->rules);
    rf->rules = NULL;
    return bad(rf, "cannot read it: %s", strerror(errno));
  }
  if (rf->loaded && same_file(&now, &rf->seen)) return rf->rules ? 0 : -1;
  rf->seen = now;
  rf->loaded = true;
  if (read_rules(rf) != 0) {
    json_decref(rf->rules);
    rf->rules = NULL;
    return -1;
  }
  return 1;
}

int rules_file_open(rules_file *rf, const char *path) {
  memset(rf, 0, sizeof *rf);
  rf->path = path;
  return rules_file_refresh(rf) < 0 ? -1 : 0;
}

void rules_file_close(rules_file *rf) {
  json_decref(rf->rules);
  rf->rules = NULL;
}
