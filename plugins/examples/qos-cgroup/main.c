/* main.c: crihook-qos-cgroup, an example hook server that places pods in a
 * cgroup parent chosen by their QoS class.
 *
 *   crihook-qos-cgroup [--socket PATH] --rules FILE
 *
 * On PreRunPodSandbox it reads the pod's class from a label (or, without
 * it, an annotation) and answers the cgroup parent the rule file gives that
 * class (qos_rules.h), e.g. /crihook/gold; the runtime creates the pod's
 * cgroup under it. On PreCreateContainer it answers the pod's cgroup parent
 * as crihookd remembers it (as the pod's hooks left it): kubelet's
 * CreateContainer still carries the parent kubelet asked for, and runtimes
 * such as containerd place the container by that copy, so without this the
 * containers would land outside their pod's class.
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

/* PreRunPodSandbox. */
static int place_pod(void *user, const crihook_pod_request *req, crihook_pod_response *resp,
                     crihook_error *err) {
  const qos_rules *rules;
  int rc = current_rules(user, &rules, err);
  if (rc != 0) return rc;
  const char *label = qos_rules_label(rules), *annotation = qos_rules_annotation(rules);
  const char *parent =
      qos_rules_parent(rules, label ? CRIHOOK_MAP_GET(req, labels, label) : NULL,
                       annotation ? CRIHOOK_MAP_GET(req, annotations, annotation) : NULL);
  if (parent && crihook_set_cgroup_parent(resp, parent) != 0)
    return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

/* PreCreateContainer: the container follows its pod. */
static int follow_pod(void *user, const crihook_container_request *req,
                      crihook_container_response *resp, crihook_error *err) {
  (void)user;
  if (req->pod_cgroup_parent && *req->pod_cgroup_parent &&
      crihook_set_pod_cgroup_parent(resp, req->pod_cgroup_parent) != 0)
    return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: crihook-qos-cgroup [--socket PATH] --rules FILE\n"
          "  --socket PATH  where to serve (default /run/crihook/plugins/qos-cgroup.sock)\n"
          "  --rules FILE   the rule file (JSON; re-read when it changes)\n"
          "Places pods in the cgroup parent of their QoS class.\n");
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
  crihook_plugin_ops ops = {.pre_run_pod_sandbox = place_pod, .pre_create_container = follow_pod};
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
