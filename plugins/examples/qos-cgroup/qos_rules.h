/* qos_rules.h: the rule file of crihook-qos-cgroup, and the choice of a
 * pod's cgroup parent from it.
 *
 *   {"label": "crihook.io/qos-class", "annotation": "crihook.io/qos-class",
 *    "classes": {"gold": "/crihook/gold", "silver": "/crihook/silver"},
 *    "default": ""}
 *
 * A pod's class is the value of its label `label`, or when it has no such
 * label, of its annotation `annotation` (either key may be left out, not
 * both). A class named in `classes` gets that cgroup parent; any other
 * class, or none, gets `default`, and an empty default changes nothing.
 * Parents are cgroupfs paths ("/a/b"), as the cgroupfs driver takes them.
 *
 * qos_rules_file keeps the rules of one file and re-reads it when the file
 * changed (another inode, size or mtime), so an edit takes effect at the
 * next pod without a restart. A file that does not load is remembered too:
 * every call answers its error until the file changes again. */
#ifndef CRIHOOK_QOS_RULES_H
#define CRIHOOK_QOS_RULES_H

#include <stdbool.h>
#include <sys/stat.h>

#include "crihook_plugin.h"

typedef struct qos_rules qos_rules;

/* Loads and checks a rule file. Returns 0 and a new `*out` (free with
 * qos_rules_free), or CRIHOOK_INVALID_ARGUMENT (JSON or schema error) or
 * CRIHOOK_FAILED_PRECONDITION (cannot read) with `err` naming the file. */
int qos_rules_load(const char *path, qos_rules **out, crihook_error *err);
void qos_rules_free(qos_rules *rules);

/* The label and annotation keys the rules read (NULL when not used). */
const char *qos_rules_label(const qos_rules *rules);
const char *qos_rules_annotation(const qos_rules *rules);
size_t qos_rules_class_count(const qos_rules *rules);

/* The cgroup parent for a pod whose class label and annotation have these
 * values (NULL when absent), or NULL for "leave it as it is". */
const char *qos_rules_parent(const qos_rules *rules, const char *label_value,
                             const char *annotation_value);

typedef struct qos_rules_file {
  const char *path;
  bool loaded;      /* a version of the file was tried (`seen` is valid) */
  struct stat seen; /* the version tried last */
  qos_rules *rules; /* its rules, or NULL when it failed */
  int code;         /* and then why */
  crihook_error error;
} qos_rules_file;

void qos_rules_file_init(qos_rules_file *f, const char *path);
void qos_rules_file_release(qos_rules_file *f);

/* The file's current rules in `*out`, re-read when the file changed since
 * the last call (`*reloaded` says so). Returns 0, or the load's status code
 * with `err` filled. */
int qos_rules_file_get(qos_rules_file *f, const qos_rules **out, bool *reloaded,
                       crihook_error *err);

#endif
