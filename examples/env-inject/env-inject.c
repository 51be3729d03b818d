/* SPDX-License-Identifier: Apache-2.0 */
/* env-inject.c: crihook-env-inject, an example hook plugin on libcrihook.
 *
 * On PreCreateContainer it adds env vars and container annotations taken
 * from the rules whose "match" fits the container: the pod's namespace
 * (exact), the pod's labels (every one given must be equal) and the image
 * (a glob, fnmatch). Every matching rule applies, in file order, so a later
 * rule wins a key both set. Values may say ${NODE_NAME}: the node's name
 * (the NODE_NAME environment variable, as a DaemonSet sets it from the
 * downward API, else the hostname). No other substitution.
 *
 * The rules file (rules.h) is checked for changes on every call and read
 * again when it changed; while it does not parse, calls fail with
 * INVALID_ARGUMENT and a message naming the file, so with failure-policy
 * Fail the pod's events say what to fix.
 *
 *   crihook-env-inject [--socket PATH] [--rules FILE] */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crihook_plugin.h"
#include "rules.h"

#define DEFAULT_SOCKET "/run/crihook/plugins/env-inject.sock"
#define DEFAULT_RULES "/etc/crihook/env-inject.rules.json"
#define NODE_VAR "${NODE_NAME}"

typedef struct env_inject {
  rules_file rules;
  char node_name[256];
} env_inject;

static bool match_labels(json_t *labels, const crihook_container_request *req) {
  const char *key;
  json_t *want;
  json_object_foreach(labels, key, want) {
    const char *have = CRIHOOK_MAP_GET(req, pod_labels, key);
    if (!have || strcmp(have, json_string_value(want)) != 0) return false;
  }
  return true;
}

static bool rule_matches(json_t *rule, const crihook_container_request *req) {
  json_t *match = json_object_get(rule, "match");
  if (!match) return true;
  json_t *ns = json_object_get(match, "namespace");
  json_t *labels = json_object_get(match, "labels");
  json_t *image = json_object_get(match, "image");
  const char *pod_ns = req->pod_meta ? req->pod_meta->namespace_ : "";
  if (ns && strcmp(json_string_value(ns), pod_ns) != 0) return false;
  if (labels && !match_labels(labels, req)) return false;
  return !image || fnmatch(json_string_value(image), req->container_image, 0) == 0;
}

/* `value` with every ${NODE_NAME} replaced; malloc'd (free it), NULL if out
 * of memory. */
static char *expand(const char *value, const char *node) {
  size_t var_len = strlen(NODE_VAR), node_len = strlen(node), count = 0;
  for (const char *p = strstr(value, NODE_VAR); p; p = strstr(p + var_len, NODE_VAR)) count++;
  char *out = malloc(strlen(value) + count * node_len + 1);
  if (!out) return NULL;
  char *w = out;
  const char *p = value;
  for (const char *hit; (hit = strstr(p, NODE_VAR)) != NULL; p = hit + var_len) {
    memcpy(w, p, (size_t)(hit - p));
    w += hit - p;
    memcpy(w, node, node_len);
    w += node_len;
  }
  strcpy(w, p);
  return out;
}

typedef int (*setter)(crihook_container_response *, const char *, const char *);

static int apply_map(json_t *map, setter set, const char *node, crihook_container_response *resp) {
  const char *key;
  json_t *value;
  json_object_foreach(map, key, value) {
    char *expanded = expand(json_string_value(value), node);
    int rc = expanded ? set(resp, key, expanded) : -1;
    free(expanded);
    if (rc != 0) return -1;
  }
  return 0;
}

static void report_reload(const rules_file *rf, int rc) {
  if (rc > 0)
    fprintf(stderr, "crihook-env-inject: read %s again: %zu rule(s)\n", rf->path,
            json_array_size(rf->rules));
}

static int pre_create_container(void *user, const crihook_container_request *req,
                                crihook_container_response *resp, crihook_error *err) {
  env_inject *ei = user;
  int rc = rules_file_refresh(&ei->rules);
  if (rc < 0) return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "%s", ei->rules.error);
  report_reload(&ei->rules, rc);
  size_t i;
  json_t *rule;
  json_array_foreach(ei->rules.rules, i, rule) {
    if (!rule_matches(rule, req)) continue;
    json_t *envs = json_object_get(rule, "envs"),
           *annotations = json_object_get(rule, "annotations");
    if ((envs && apply_map(envs, crihook_set_env, ei->node_name, resp) != 0) ||
        (annotations && apply_map(annotations, crihook_set_annotation, ei->node_name, resp) != 0))
      return crihook_fail(err, CRIHOOK_RESOURCE_EXHAUSTED, "env-inject: out of memory");
  }
  return 0;
}

static void node_name(char *out, size_t len) {
  const char *env = getenv("NODE_NAME");
  if (env && env[0]) {
    snprintf(out, len, "%s", env);
  } else if (gethostname(out, len) != 0) {
    snprintf(out, len, "unknown");
  }
  out[len - 1] = '\0';
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: crihook-env-inject [--socket PATH] [--rules FILE]\n"
          "  --socket PATH  where crihookd calls this plugin (default " DEFAULT_SOCKET
          ")\n"
          "  --rules FILE   the rules (default " DEFAULT_RULES "), read again when it changes\n");
}

static int parse_args(int argc, char **argv, const char **socket, const char **rules) {
  static const struct option options[] = {{"socket", required_argument, NULL, 's'},
                                          {"rules", required_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "s:r:h", options, NULL)) != -1) {
    if (c == 's')
      *socket = optarg;
    else if (c == 'r')
      *rules = optarg;
    else
      return c == 'h' ? 1 : -1;
  }
  return optind == argc ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *socket = DEFAULT_SOCKET, *rules = DEFAULT_RULES;
  int args = parse_args(argc, argv, &socket, &rules);
  if (args != 0) {
    usage(args > 0 ? stdout : stderr);
    return args > 0 ? 0 : 2;
  }
  env_inject ei;
  if (rules_file_open(&ei.rules, rules) != 0) {
    fprintf(stderr, "crihook-env-inject: %s\n", ei.rules.error);
    return 1;
  }
  node_name(ei.node_name, sizeof ei.node_name);
  crihook_plugin_ops ops = {CRIHOOK_PLUGIN_OPS_INIT, .pre_create_container = pre_create_container};
  crihook_error err;
  int rc = crihook_serve(socket, &ops, &ei, &err);
  rules_file_close(&ei.rules);
  if (rc != 0) {
    fprintf(stderr, "crihook-env-inject: %s\n", err.message);
    return 1;
  }
  return 0;
}
