/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: crihook-cpuset-pin, an example hook server that pins containers
 * to the CPUs their annotation names.
 *
 *   crihook-cpuset-pin [--socket PATH] [--cpus-online FILE]
 *
 * A pod annotated crihook.io/cpuset (a CPU list, "0" or "0-1,3") has each
 * of its containers pinned: container_resources.cpuset_cpus set to that list
 * on PreCreateContainer, and again on every PreUpdateContainerResources, so a
 * later update (kubelet's CPU manager reconciling, an operator's
 * `crictl update`) cannot move it off those CPUs. A list that does not
 * parse, or that names CPUs the node does not have (read from --cpus-online
 * on every call, since CPUs go on- and offline), is refused with
 * INVALID_ARGUMENT; registered with failure-policy Fail, the refusal is what
 * kubelet sees. The pod's annotation is the one Kubernetes users set
 * (kubelet never copies pod annotations to its containers); a container's
 * own annotation of the same key, where a client sets one, overrides it.
 * Containers of pods without the annotation are left alone. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpulist.h"
#include "crihook_plugin.h"

#define CPUSET_ANNOTATION "crihook.io/cpuset"

typedef struct pin_config {
  const char *socket;
  const char *cpus_online;
} pin_config;

/* The annotation's value: the container's own, else its pod's; `*whose`
 * says which ("container" or "pod"). NULL when neither has it. */
static const char *annotation_of(const crihook_container_request *req, const char **whose) {
  const char *value = CRIHOOK_MAP_GET(req, container_annotations, CPUSET_ANNOTATION);
  *whose = "container";
  if (value && *value) return value;
  value = CRIHOOK_MAP_GET(req, pod_annotations, CPUSET_ANNOTATION);
  *whose = "pod";
  return value && *value ? value : NULL;
}

/* Parses the annotation's value and checks it against the node's CPUs. */
static int wanted_cpus(const pin_config *cfg, const char *whose, const char *value, cpulist *want,
                       crihook_error *err) {
  int rc = cpulist_parse(value, want, err);
  if (rc != 0) {
    crihook_error cause = *err;
    return crihook_fail(err, rc, "%s annotation %s: %s", whose, CPUSET_ANNOTATION, cause.message);
  }
  cpulist online;
  if ((rc = cpulist_read_file(cfg->cpus_online, &online, err)) != 0) return rc;
  if (!cpulist_is_subset(want, &online)) {
    char have[128];
    cpulist_format(&online, have, sizeof have);
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "%s annotation %s: cpuset %.100s asks for CPUs this node does not have "
                        "(online: %s)",
                        whose, CPUSET_ANNOTATION, value, have);
  }
  return 0;
}

/* Sets the response's cpuset_cpus to the canonical form of `want`. */
static int answer_cpus(crihook_container_response *resp, const cpulist *want, crihook_error *err) {
  size_t len = cpulist_format(want, NULL, 0) + 1;
  char *text = malloc(len);
  if (!text) return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
  cpulist_format(want, text, len);
  crihook_resources *r = crihook_container_resources(resp);
  int rc = r ? crihook_set_string(&r->cpuset_cpus, text) : -1;
  free(text);
  return rc == 0 ? 0 : crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "out of memory");
}

/* PreCreateContainer and PreUpdateContainerResources. */
static int pin(void *user, const crihook_container_request *req, crihook_container_response *resp,
               crihook_error *err) {
  const char *whose;
  const char *value = annotation_of(req, &whose);
  if (!value) return 0;
  cpulist want;
  int rc = wanted_cpus(user, whose, value, &want, err);
  return rc != 0 ? rc : answer_cpus(resp, &want, err);
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: crihook-cpuset-pin [--socket PATH] [--cpus-online FILE]\n"
          "  --socket PATH       where to serve (default /run/crihook/plugins/cpuset-pin.sock)\n"
          "  --cpus-online FILE  the node's CPUs (default /sys/devices/system/cpu/online)\n"
          "Pins the containers of pods annotated " CPUSET_ANNOTATION
          " (or containers so annotated) to those CPUs.\n");
}

/* Returns 0, 1 for a usage error, or 2 for --help. */
static int parse_flags(int argc, char **argv, pin_config *cfg) {
  static const struct option options[] = {{"socket", required_argument, NULL, 's'},
                                          {"cpus-online", required_argument, NULL, 'c'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "s:c:h", options, NULL)) != -1) {
    if (opt == 's')
      cfg->socket = optarg;
    else if (opt == 'c')
      cfg->cpus_online = optarg;
    else
      return opt == 'h' ? 2 : 1;
  }
  return optind == argc ? 0 : 1;
}

int main(int argc, char **argv) {
  pin_config cfg = {"/run/crihook/plugins/cpuset-pin.sock", "/sys/devices/system/cpu/online"};
  int flags = parse_flags(argc, argv, &cfg);
  if (flags != 0) {
    usage(flags == 2 ? stdout : stderr);
    return flags == 2 ? 0 : 2;
  }
  crihook_error err;
  cpulist online;
  char have[128];
  if (cpulist_read_file(cfg.cpus_online, &online, &err) != 0) {
    fprintf(stderr, "crihook-cpuset-pin: %s\n", err.message);
    return 1;
  }
  cpulist_format(&online, have, sizeof have);
  fprintf(stderr, "crihook-cpuset-pin: serving on %s, online CPUs %s (from %s)\n", cfg.socket, have,
          cfg.cpus_online);
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = pin,
                            .pre_update_container_resources = pin};
  if (crihook_serve(cfg.socket, &ops, &cfg, &err) != 0) {
    fprintf(stderr, "crihook-cpuset-pin: %s\n", err.message);
    return 1;
  }
  return 0;
}
