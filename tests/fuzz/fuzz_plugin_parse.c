/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_plugin_parse.c: libFuzzer target for the registration-file parser
 * (registry/plugin_parse.c, ch_plugin_parse).
 *
 * Input: a registration file's bytes, as hookserver.d would hold them. When
 * the input holds a NUL byte, what comes before it is the file name and the
 * rest the text (so odd names are tried too); otherwise the name is
 * "50-fuzz.json". A parse that succeeds must give a plugin crihookd can use:
 * a name, an endpoint, at least one hook, a timeout in range. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static void check(const ch_plugin *p) {
  if (!p->name[0] || !p->endpoint.path[0] || p->hooks == 0 || p->timeout_ms <= 0 ||
      p->timeout_ms > 120000 || p->hooks >= (1u << CH_HOOK_COUNT)) {
    fprintf(stderr, "parsed a plugin crihookd cannot use: name '%s' hooks %#x timeout %d\n",
            p->name, p->hooks, p->timeout_ms);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, '\0', size);
  char name[300] = "50-fuzz.json";
  const uint8_t *text = data;
  if (nul) {
    size_t n = (size_t)(nul - data);
    if (n >= sizeof name) return 0;
    memcpy(name, data, n);
    name[n] = '\0';
    text = nul + 1;
  }
  size_t len = size - (size_t)(text - data);
  char *copy = malloc(len ? len : 1); /* exactly len bytes: an overread is seen */
  if (!copy) return 0;
  memcpy(copy, text, len);
  ch_plugin p;
  ch_error err;
  if (ch_plugin_parse(name, copy, len, &p, &err) == 0) check(&p);
  free(copy);
  return 0;
}
