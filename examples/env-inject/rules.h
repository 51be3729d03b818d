/* SPDX-License-Identifier: Apache-2.0 */
/* rules.h: env-inject's rules file, read with jansson, checked once, and
 * read again when it changes.
 *
 *   {"rules": [{"match": {"namespace": "default", "labels": {"app": "web"},
 *                         "image": "*busybox*"},
 *               "envs": {"HTTP_PROXY": "http://proxy:3128"},
 *               "annotations": {"example.com/proxied": "true"}}]}
 *
 * Every key is optional except "rules"; unknown keys and non-string values
 * are errors (a typo must not silently match everything). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>

typedef struct rules_file {
  const char *path;
  bool loaded;      /* `seen` describes the version last read */
  struct stat seen; /* its identity: device, inode, size, mtime, ctime */
  json_t *rules;    /* the checked "rules" array; NULL while the file is bad */
  char error[480];  /* why the file is bad: "rules file PATH: ..." */
} rules_file;

/* Reads `path` for the first time. Returns 0, or -1 with rf->error set. */
int rules_file_open(rules_file *rf, const char *path);

/* Reads the file again if it changed since the last read. Returns 1 when it
 * was read again, 0 when unchanged, -1 when the current file is bad
 * (rf->error says why, and rf->rules is NULL until a good version appears). */
int rules_file_refresh(rules_file *rf);

void rules_file_close(rules_file *rf);
