/* qos_rules.c: loading and checking crihook-qos-cgroup's rule file, the
 * choice of a cgroup parent, and re-reading the file when it changes
 * (qos_rules.h).
 *
 * The parsed JSON document is kept as it is (jansson) and owns every string
 * the rules hand out; checking it once at load time means the lookups
 * afterwards cannot fail. Every error is returned with the file's name in
 * front, so the message that reaches kubelet says which file to fix. */
#include "qos_rules.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qos_rules {
  json_t *doc;                /* owns everything below */
  const char *label;          /* NULL when not used */
  const char *annotation;     /* NULL when not used */
  json_t *classes;            /* class -> cgroup parent, borrowed from doc */
  const char *default_parent; /* "" when none */
};

static const char *const known_keys[] = {"label", "annotation", "classes", "default", NULL};

/* ---- checking a document ---- */

static int check_keys(const json_t *doc, crihook_error *err) {
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)doc, key, value) {
    size_t i = 0;
    while (known_keys[i] && strcmp(known_keys[i], key) != 0) i++;
    if (!known_keys[i])
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                          "unknown key \"%.64s\" (known: label, annotation, classes, default)",
                          key);
  }
  return 0;
}

/* A string member that may be absent; absent or "" gives NULL. */
static int optional_string(const json_t *doc, const char *key, const char **out,
                           crihook_error *err) {
  const json_t *v = json_object_get(doc, key);
  *out = NULL;
  if (!v) return 0;
  if (!json_is_string(v))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "\"%s\" must be a string", key);
  if (*json_string_value(v)) *out = json_string_value(v);
  return 0;
}

/* Whether `parent` is a cgroupfs path: "/" then non-empty components that
 * are not "." or "..", no control characters. */
static int check_parent(const char *what, const char *parent, crihook_error *err) {
  if (parent[0] != '/')
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "%s: cgroup parent \"%.100s\" is not a cgroupfs path (it must start "
                        "with /; systemd slices are not supported)",
                        what, parent);
  for (const char *p = parent; *p == '/';) {
    const char *start = ++p;
    while (*p && *p != '/') {
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                            "%s: cgroup parent has a control character", what);
      p++;
    }
    size_t n = (size_t)(p - start);
    if (n == 0 || (n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.'))
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                          "%s: cgroup parent \"%.100s\" has an empty, \".\" or \"..\" component",
                          what, parent);
  }
  return 0;
}

static int check_classes(json_t *classes, crihook_error *err) {
  if (!json_is_object(classes))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "\"classes\" must be an object of class name -> cgroup parent");
  const char *name;
  json_t *parent;
  json_object_foreach(classes, name, parent) {
    char what[96];
    snprintf(what, sizeof what, "class \"%.64s\"", name);
    if (!*name)
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "a class name must not be empty");
    if (!json_is_string(parent))
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s: cgroup parent must be a string",
                          what);
    int rc = check_parent(what, json_string_value(parent), err);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Fills `r` from r->doc, checking everything a lookup relies on. */
static int check_rules(qos_rules *r, crihook_error *err) {
  if (!json_is_object(r->doc))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "must be a JSON object");
  int rc = check_keys(r->doc, err);
  if (!rc) rc = optional_string(r->doc, "label", &r->label, err);
  if (!rc) rc = optional_string(r->doc, "annotation", &r->annotation, err);
  if (!rc) rc = optional_string(r->doc, "default", &r->default_parent, err);
  if (rc != 0) return rc;
  if (!r->label && !r->annotation)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "names neither a \"label\" nor an \"annotation\" to read the class from");
  if (r->default_parent && (rc = check_parent("\"default\"", r->default_parent, err)) != 0)
    return rc;
  if (!r->default_parent) r->default_parent = "";
  r->classes = json_object_get(r->doc, "classes");
  if (!r->classes) return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "has no \"classes\" object");
  return check_classes(r->classes, err);
}

/* ---- loading ---- */

static int read_document(const char *path, json_t **doc, crihook_error *err) {
  FILE *f = fopen(path, "r");
  if (!f)
    return crihook_fail(err, CRIHOOK_FAILED_PRECONDITION, "rules file %s: %s", path,
                        strerror(errno));
  json_error_t jerr;
  *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
  fclose(f);
  if (!*doc)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "rules file %s does not parse: %s (line %d, column %d)", path, jerr.text,
                        jerr.line, jerr.column);
  return 0;
}

int qos_rules_load(const char *path, qos_rules **out, crihook_error *err) {
  json_t *doc;
  int rc = read_document(path, &doc, err);
  if (rc != 0) return rc;
  qos_rules *r = calloc(1, sizeof *r);
  if (!r) {
    json_decref(doc);
    return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "rules file %s: out of memory", path);
  }
  r->doc = doc;
  if ((rc = check_rules(r, err)) != 0) {
    crihook_error cause = *err;
    qos_rules_free(r);
    return crihook_fail(err, rc, "rules file %s: %s", path, cause.message);
  }
  *out = r;
  return 0;
}

void qos_rules_free(qos_rules *rules) {
  if (!rules) return;
  json_decref(rules->doc);
  free(rules);
}

/* ---- reading the rules ---- */

const char *qos_rules_label(const qos_rules *rules) { return rules->label; }
const char *qos_rules_annotation(const qos_rules *rules) { return rules->annotation; }
size_t qos_rules_class_count(const qos_rules *rules) { return json_object_size(rules->classes); }

const char *qos_rules_parent(const qos_rules *rules, const char *label_value,
                             const char *annotation_value) {
  const char *cls = label_value && *label_value ? label_value : annotation_value;
  const char *parent = cls && *cls ? json_string_value(json_object_get(rules->classes, cls)) : NULL;
  if (!parent && *rules->default_parent) parent = rules->default_parent;
  return parent;
}

/* ---- the file, re-read when it changes ---- */

void qos_rules_file_init(qos_rules_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->path = path;
}

void qos_rules_file_release(qos_rules_file *f) {
  qos_rules_free(f->rules);
  f->rules = NULL;
  f->loaded = false;
}

static bool same_version(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Replaces the rules with the version `now` (all zero: the file is gone). */
static void reload(qos_rules_file *f, const struct stat *now, int stat_errno) {
  qos_rules_free(f->rules);
  f->rules = NULL;
  f->loaded = true;
  f->seen = *now;
  if (stat_errno)
    f->code = crihook_fail(&f->error, CRIHOOK_FAILED_PRECONDITION, "rules file %s: %s", f->path,
                           strerror(stat_errno));
  else
    f->code = qos_rules_load(f->path, &f->rules, &f->error);
}

int qos_rules_file_get(qos_rules_file *f, const qos_rules **out, bool *reloaded,
                       crihook_error *err) {
  struct stat now;
  int stat_errno = stat(f->path, &now) == 0 ? 0 : errno;
  if (stat_errno) memset(&now, 0, sizeof now);
  *reloaded = !f->loaded || !same_version(&now, &f->seen);
  if (*reloaded) reload(f, &now, stat_errno);
  if (!f->rules) {
    *err = f->error;
    return f->code;
  }
  *out = f->rules;
  return 0;
}
