/* SPDX-License-Identifier: Apache-2.0 */
/* qos_rules.c: loading and checking crihook-qos-cgroup's rule file, a
 * pod's class and what it does to a container's resources, and re-reading
 * the file when it changes (qos_rules.h).
 *
 * The parsed JSON document is kept as it is (jansson) and owns every string
 * the rules hand out; the classes are checked once at load time into an
 * array, so the lookups afterwards cannot fail. Every error is returned with
 * the file's name in front, so the message that reaches kubelet says which
 * file to fix. */
#include "qos_rules.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel's range of cpu.shares, and of oom_score_adj. */
#define SHARES_MIN 2
#define SHARES_MAX 262144
#define OOM_MIN -1000
#define OOM_MAX 1000

struct qos_rules {
  json_t *doc;            /* owns every string below */
  const char *label;      /* NULL when not used */
  const char *annotation; /* NULL when not used */
  qos_class *classes;     /* owned */
  size_t n_classes;
  const qos_class *by_default; /* one of classes, or NULL */
};

static const char *const top_keys[] = {"label", "annotation", "classes", "default", NULL};
static const char *const class_keys[] = {"cpu_shares", "oom_score_adj", NULL};
static const char *const shares_keys[] = {"factor", "min", "max", NULL};
static const char *const oom_keys[] = {"min", "max", NULL};

/* ---- checking a document ---- */

/* Every key of `obj` is one of `known`; `what` names obj in the message. */
static int check_keys(const json_t *obj, const char *const *known, const char *what,
                      crihook_error *err) {
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)obj, key, value) {
    size_t i = 0;
    while (known[i] && strcmp(known[i], key) != 0) i++;
    if (known[i]) continue;
    char list[128] = "";
    for (i = 0; known[i]; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", known[i]);
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%sunknown key \"%.64s\" (known: %s)", what,
                        key, list);
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

/* An optional integer bound `key` of `obj` in lo..hi; 0 when absent. */
static int bound(const char *what, const json_t *obj, const char *key, int64_t lo, int64_t hi,
                 int64_t *out, crihook_error *err) {
  const json_t *v = json_object_get(obj, key);
  *out = 0;
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "%s: \"%s\" must be an integer in %lld..%lld", what, key, (long long)lo,
                        (long long)hi);
  *out = json_integer_value(v);
  return 0;
}

static int check_order(const char *what, int64_t min, int64_t max, crihook_error *err) {
  if (min && max && min > max)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s: \"min\" %lld is above \"max\" %lld",
                        what, (long long)min, (long long)max);
  return 0;
}

static int parse_shares(const char *cls, const json_t *v, qos_class *c, crihook_error *err) {
  char what[128];
  snprintf(what, sizeof what, "class \"%.64s\": cpu_shares", cls);
  c->shares_factor = 1;
  if (!v) return 0;
  if (!json_is_object(v))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s must be an object", what);
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s: ", what);
  int rc = check_keys(v, shares_keys, prefix, err);
  const json_t *factor = json_object_get(v, "factor");
  if (!rc && factor) {
    double f = json_is_number(factor) ? json_number_value(factor) : -1;
    if (!(f > 0) || f > SHARES_MAX) /* also NaN and infinity */
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s: \"factor\" must be a number above 0",
                          what);
    c->shares_factor = f;
  }
  if (!rc) rc = bound(what, v, "min", SHARES_MIN, SHARES_MAX, &c->shares_min, err);
  if (!rc) rc = bound(what, v, "max", SHARES_MIN, SHARES_MAX, &c->shares_max, err);
  return rc ? rc : check_order(what, c->shares_min, c->shares_max, err);
}

static int parse_oom(const char *cls, const json_t *v, qos_class *c, crihook_error *err) {
  char what[128];
  snprintf(what, sizeof what, "class \"%.64s\": oom_score_adj", cls);
  if (!v) return 0;
  if (!json_is_object(v))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s must be an object", what);
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s: ", what);
  int rc = check_keys(v, oom_keys, prefix, err);
  if (!rc) rc = bound(what, v, "min", OOM_MIN, OOM_MAX, &c->oom_min, err);
  if (!rc) rc = bound(what, v, "max", OOM_MIN, OOM_MAX, &c->oom_max, err);
  if (!rc &&
      ((json_object_get(v, "min") && !c->oom_min) || (json_object_get(v, "max") && !c->oom_max)))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "%s: a bound of 0 cannot be set (the hook API reads 0 as unchanged); "
                        "use 1 or -1",
                        what);
  return rc ? rc : check_order(what, c->oom_min, c->oom_max, err);
}

static int parse_class(const char *name, const json_t *v, qos_class *c, crihook_error *err) {
  if (!*name) return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "a class name must not be empty");
  if (!json_is_object(v))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "class \"%.64s\" must be an object with \"cpu_shares\" and/or "
                        "\"oom_score_adj\"",
                        name);
  char prefix[96];
  snprintf(prefix, sizeof prefix, "class \"%.64s\": ", name);
  c->name = name;
  int rc = check_keys(v, class_keys, prefix, err);
  if (!rc) rc = parse_shares(name, json_object_get(v, "cpu_shares"), c, err);
  if (!rc) rc = parse_oom(name, json_object_get(v, "oom_score_adj"), c, err);
  return rc;
}

static int parse_classes(qos_rules *r, json_t *classes, crihook_error *err) {
  if (!classes) return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "has no \"classes\" object");
  if (!json_is_object(classes))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "\"classes\" must be an object of class name -> adjustments");
  r->classes = calloc(json_object_size(classes) + 1, sizeof *r->classes);
  if (!r->classes) return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
  const char *name;
  json_t *v;
  json_object_foreach(classes, name, v) {
    int rc = parse_class(name, v, &r->classes[r->n_classes], err);
    if (rc != 0) return rc;
    r->n_classes++;
  }
  return 0;
}

static const qos_class *find_class(const qos_rules *r, const char *name) {
  for (size_t i = 0; name && i < r->n_classes; i++)
    if (strcmp(r->classes[i].name, name) == 0) return &r->classes[i];
  return NULL;
}

/* Fills `r` from r->doc, checking everything a lookup relies on. */
static int check_rules(qos_rules *r, crihook_error *err) {
  if (!json_is_object(r->doc))
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "must be a JSON object");
  const char *default_class;
  int rc = check_keys(r->doc, top_keys, "", err);
  if (!rc) rc = optional_string(r->doc, "label", &r->label, err);
  if (!rc) rc = optional_string(r->doc, "annotation", &r->annotation, err);
  if (!rc) rc = optional_string(r->doc, "default", &default_class, err);
  if (rc != 0) return rc;
  if (!r->label && !r->annotation)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "names neither a \"label\" nor an \"annotation\" to read the class from");
  if ((rc = parse_classes(r, json_object_get(r->doc, "classes"), err)) != 0) return rc;
  r->by_default = find_class(r, default_class);
  if (default_class && !r->by_default)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "\"default\" names class \"%.64s\", which \"classes\" lacks",
                        default_class);
  return 0;
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
  free(rules->classes);
  free(rules);
}

/* ---- reading the rules ---- */

const char *qos_rules_label(const qos_rules *rules) { return rules->label; }
const char *qos_rules_annotation(const qos_rules *rules) { return rules->annotation; }
size_t qos_rules_class_count(const qos_rules *rules) { return rules->n_classes; }

const qos_class *qos_rules_class(const qos_rules *rules, const char *label_value,
                                 const char *annotation_value) {
  const char *cls = label_value && *label_value ? label_value : annotation_value;
  const qos_class *c = cls && *cls ? find_class(rules, cls) : NULL;
  return c ? c : rules->by_default;
}

static int64_t clamp(int64_t v, int64_t min, int64_t max) {
  if (min && v < min) v = min;
  if (max && v > max) v = max;
  return v;
}

void qos_class_apply(const qos_class *c, int64_t *cpu_shares, int64_t *oom_score_adj) {
  if (*cpu_shares > 0) {
    double scaled = (double)*cpu_shares * c->shares_factor + 0.5; /* rounded */
    int64_t shares =
        clamp(scaled > SHARES_MAX ? SHARES_MAX : (int64_t)scaled, c->shares_min, c->shares_max);
    *cpu_shares = shares < SHARES_MIN ? SHARES_MIN : shares;
  }
  if (*oom_score_adj) *oom_score_adj = clamp(*oom_score_adj, c->oom_min, c->oom_max);
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
