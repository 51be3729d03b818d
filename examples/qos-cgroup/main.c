/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: crihook-qos-cgroup, an example hook server that gives a pod's
 * containers the CPU weight and OOM-kill preference of the pod's QoS class.
 *
 *   crihook-qos-cgroup [--socket PATH] --rules FILE
 *
 * On PreCreateContainer and PreUpdateContainerResources it reads the pod's
 * class from a pod label (or, without it, a pod annotation), and adjusts
 * the cpu_shares and oom_score_adj kubelet computed for the container as the
 * rule file says for that class (qos_rules.h); it also annotates the
 * container with its class (crihook.io/qos-class). Answering the update
 * too keeps the class when kubelet or an operator later updates the
 * container's resources.
 *
 * It changes no cgroup parent: the pod stays in the pod cgroup kubelet made
 * (/kubepods/<qos>/pod<uid>), so kubelet's pod-level stats, its QoS class
 * and node-allocatable enforcement keep covering it. (An earlier version
 * moved pods to /crihook/<class>; kubelet then read the pod's usage as 0.)
 *
 * The rule file is checked at start (a bad one stops the plugin there) and
 * re-read whenever it changes; a version that does not load is answered with
 * its error (INVALID_ARGUMENT naming the file) until it is fixed, which is
 * logged here once per version. */
#include <getopt.h>
#include <stdio.h>

#include "crihook_plugin.h"
#include "qos_rules.h"

typedef struct qos_config {
  const char *socket;
  const char *rules;
} qos_config;

static void log_load(const qos_rules_file *f, const qos_rules *rules, const crihook_error *err) {
  if (rules)
    fprintf(stderr, "crihook-qos-cgroup: rules loaded from %s: %zu classes\n", f->path,
            qos_rules_class_count(rules));
  else
    fprintf(stderr, "crihook-qos-cgroup: %s\n", err->message);
}

/* The current rules, logging when the file was (re)loaded. */
static int current_rules(qos_rules_file *f, const qos_rules **rules, crihook_error *err) {
  bool reloaded;
  *rules = NULL;
  int rc = qos_rules_file_get(f, rules, &reloaded, err);
  if (reloaded) log_load(f, *rules, err);
  return rc;
}

#define CLASS_ANNOTATION "crihook.io/qos-class"

/* Sets the response's resources to the class's values where they differ
 * from the request's. */
static int answer_resources(const qos_class *c, const crihook_container_request *req,
                            crihook_container_response *resp) {
  const crihook_resources *given = req->container_resources;
  int64_t shares = given ? given->cpu_shares : 0, oom = given ? given->oom_score_adj : 0;
  qos_class_apply(c, &shares, &oom);
  bool new_shares = shares != (given ? given->cpu_shares : 0);
  bool new_oom = oom != (given ? given->oom_score_adj : 0);
  if (!new_shares && !new_oom) return 0;
  crihook_resources *r = crihook_container_resources(resp);
  if (!r) return -1;
  if (new_shares) r->cpu_shares = shares;
  if (new_oom) r->oom_score_adj = oom;
  return 0;
}

/* PreCreateContainer and PreUpdateContainerResources. */
static int adjust(void *user, const crihook_container_request *req,
                  crihook_container_response *resp, crihook_error *err) {
  const qos_rules *rules;
  int rc = current_rules(user, &rules, err);
  if (rc != 0) return rc;
  const char *label = qos_rules_label(rules), *annotation = qos_rules_annotation(rules);
  const qos_class *c =
      qos_rules_class(rules, label ? CRIHOOK_MAP_GET(req, pod_labels, label) : NULL,
                      annotation ? CRIHOOK_MAP_GET(req, pod_annotations, annotation) : NULL);
  if (!c) return 0;
  if (crihook_set_annotation(resp, CLASS_ANNOTATION, c->name) != 0 ||
      answer_resources(c, req, resp) != 0)
    return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: crihook-qos-cgroup [--socket PATH] --rules FILE\n"
          "  --socket PATH  where to serve (default /run/crihook/plugins/qos-cgroup.sock)\n"
          "  --rules FILE   the rule file (JSON; re-read when it changes)\n"
          "Gives the containers of a pod the cpu shares and oom_score_adj of its QoS class.\n");
}

/* Returns 0, 1 for a usage error, or 2 for --help. */
static int parse_flags(int argc, char **argv, qos_config *cfg) {
  static const struct option options[] = {{"socket", required_argument, NULL, 's'},
                                          {"rules", required_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "s:r:h", options, NULL)) != -1) {
    if (opt == 's')
      cfg->socket = optarg;
    else if (opt == 'r')
      cfg->rules = optarg;
    else
      return opt == 'h' ? 2 : 1;
  }
  if (optind != argc) return 1;
  if (!cfg->rules) fprintf(stderr, "crihook-qos-cgroup: --rules is required\n");
  return cfg->rules ? 0 : 1;
}

static int serve(const qos_config *cfg, qos_rules_file *file) {
  crihook_error err;
  const qos_rules *rules;
  if (current_rules(file, &rules, &err) != 0) return 1;
  fprintf(stderr, "crihook-qos-cgroup: serving on %s\n", cfg->socket);
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = adjust,
                            .pre_update_container_resources = adjust};
  if (crihook_serve(cfg->socket, &ops, file, &err) != 0) {
    fprintf(stderr, "crihook-qos-cgroup: %s\n", err.message);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  qos_config cfg = {"/run/crihook/plugins/qos-cgroup.sock", NULL};
  int flags = parse_flags(argc, argv, &cfg);
  if (flags != 0) {
    usage(flags == 2 ? stdout : stderr);
    return flags == 2 ? 0 : 2;
  }
  qos_rules_file file;
  qos_rules_file_init(&file, cfg.rules);
  int rc = serve(&cfg, &file);
  qos_rules_file_release(&file);
  return rc;
}
