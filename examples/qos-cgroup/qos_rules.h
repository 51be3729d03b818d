/* SPDX-License-Identifier: Apache-2.0 */
/* qos_rules.h: the rule file of crihook-qos-cgroup, and what a QoS class
 * does to a container's resources.
 *
 *   {"label": "crihook.io/qos-class", "annotation": "crihook.io/qos-class",
 *    "classes": {
 *      "gold":   {"cpu_shares": {"factor": 2, "min": 1024}, "oom_score_adj": {"max": 500}},
 *      "bronze": {"cpu_shares": {"factor": 0.5}, "oom_score_adj": {"min": 1000}}},
 *    "default": ""}
 *
 * A pod's class is the value of its label `label`, or when it has no such
 * label, of its annotation `annotation` (either key may be left out, not
 * both). A class named in `classes` adjusts what kubelet computed for each
 * of the pod's containers:
 * - cpu_shares: kubelet's value times `factor` (default 1), then raised to
 *   `min` and lowered to `max` (each optional), within the kernel's 2..262144;
 * - oom_score_adj: kubelet's value raised to `min` and lowered to `max`
 *   (each optional, -1000..1000, not 0: the hook API's merge reads 0 as
 *   "unchanged").
 * A value kubelet did not give (0) is left alone.
 * A class with neither still names itself on the container (an annotation).
 * Any other class, or none, gets the class `default` names; an empty default
 * changes nothing. No cgroup parent is ever changed: the pod stays in the
 * cgroup kubelet made for it.
 *
 * qos_rules_file keeps the rules of one file and re-reads it when the file
 * changed (another inode, size or mtime), so an edit takes effect at the
 * next container without a restart. A file that does not load is remembered
 * too: every call answers its error until the file changes again. */
#ifndef CRIHOOK_QOS_RULES_H
#define CRIHOOK_QOS_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "crihook_plugin.h"

typedef struct qos_rules qos_rules;

/* One class's adjustments; bounds are 0 when not given. */
typedef struct qos_class {
  const char *name; /* owned by the rules */
  double shares_factor;
  int64_t shares_min, shares_max;
  int64_t oom_min, oom_max;
} qos_class;

/* Loads and checks a rule file. Returns 0 and a new `*out` (free with
 * qos_rules_free), or CRIHOOK_INVALID_ARGUMENT (JSON or schema error) or
 * CRIHOOK_FAILED_PRECONDITION (cannot read) with `err` naming the file. */
int qos_rules_load(const char *path, qos_rules **out, crihook_error *err);
void qos_rules_free(qos_rules *rules);

/* The label and annotation keys the rules read (NULL when not used). */
const char *qos_rules_label(const qos_rules *rules);
const char *qos_rules_annotation(const qos_rules *rules);
size_t qos_rules_class_count(const qos_rules *rules);

/* The class of a pod whose class label and annotation have these values
 * (NULL when absent): the label's, else the annotation's, else the default;
 * NULL for "leave the pod as it is". */
const qos_class *qos_rules_class(const qos_rules *rules, const char *label_value,
                                 const char *annotation_value);

/* The class's cpu shares and oom_score_adj for a container for which
 * kubelet computed `*cpu_shares` and `*oom_score_adj`. A value of 0 (or
 * below, for shares) means kubelet gave none, as in an update that only
 * moves the container's CPUs: it stays as it is. */
void qos_class_apply(const qos_class *c, int64_t *cpu_shares, int64_t *oom_score_adj);

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
