/* SPDX-License-Identifier: Apache-2.0 */
/* cpulist.c: parsing, reading and formatting Linux CPU lists (cpulist.h).
 *
 * The grammar is the kernel's cpulist without its rarely used stride form:
 *   list  := item ("," item)*
 *   item  := cpu | cpu "-" cpu        (first <= last)
 *   cpu   := decimal digits, < CPULIST_MAX
 * with white space allowed only around the whole list (the sysfs files end
 * in a newline). A parser walks a cursor over [start, end) and reports the
 * first thing it does not expect, with its 1-based position. */
#include "cpulist.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct cursor {
  const char *text; /* the whole list as given, for messages */
  const char *p;
  const char *end;
} cursor;

static int syntax_error(const cursor *c, crihook_error *err, const char *what) {
  if (c->p >= c->end)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "\"%.100s\" is not a CPU list: %s at the end", c->text, what);
  return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                      "\"%.100s\" is not a CPU list: %s at position %d ('%c')", c->text, what,
                      (int)(c->p - c->text) + 1, *c->p);
}

static bool at_digit(const cursor *c) { return c->p < c->end && isdigit((unsigned char)*c->p); }

/* Reads one CPU number and advances the cursor past it. */
static int parse_cpu(cursor *c, unsigned *cpu, crihook_error *err) {
  if (!at_digit(c)) return syntax_error(c, err, "expected a CPU number");
  const char *start = c->p;
  unsigned long n = 0;
  for (; at_digit(c); c->p++)
    if (n < CPULIST_MAX) n = n * 10 + (unsigned long)(*c->p - '0');
  if (n >= CPULIST_MAX)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                        "\"%.100s\" is not a CPU list: CPU %.*s is beyond the largest CPU "
                        "number Linux supports (%d)",
                        c->text, (int)(c->p - start > 24 ? 24 : c->p - start), start,
                        CPULIST_MAX - 1);
  *cpu = (unsigned)n;
  return 0;
}

/* Reads "cpu" or "first-last" and adds it to `out`. */
static int parse_item(cursor *c, cpulist *out, crihook_error *err) {
  unsigned first, last;
  int rc = parse_cpu(c, &first, err);
  if (rc != 0) return rc;
  last = first;
  if (c->p < c->end && *c->p == '-') {
    c->p++;
    if ((rc = parse_cpu(c, &last, err)) != 0) return rc;
    if (last < first)
      return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT,
                          "\"%.100s\" is not a CPU list: range %u-%u goes backwards", c->text,
                          first, last);
  }
  for (unsigned cpu = first; cpu <= last; cpu++) cpulist_add(out, cpu);
  return 0;
}

int cpulist_parse(const char *text, cpulist *out, crihook_error *err) {
  memset(out, 0, sizeof *out);
  cursor c = {text, text, text + strlen(text)};
  while (c.p < c.end && isspace((unsigned char)*c.p)) c.p++;
  while (c.end > c.p && isspace((unsigned char)c.end[-1])) c.end--;
  if (c.p == c.end)
    return crihook_fail(err, CRIHOOK_INVALID_ARGUMENT, "\"%.100s\" is not a CPU list: it is empty",
                        text);
  for (;;) {
    int rc = parse_item(&c, out, err);
    if (rc != 0) return rc;
    if (c.p == c.end) return 0;
    if (*c.p != ',') return syntax_error(&c, err, "unexpected character");
    c.p++;
  }
}

int cpulist_read_file(const char *path, cpulist *out, crihook_error *err) {
  FILE *f = fopen(path, "r");
  if (!f)
    return crihook_fail(err, CRIHOOK_FAILED_PRECONDITION, "cannot read %s: %s", path,
                        strerror(errno));
  char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, f);
  int failed = ferror(f);
  fclose(f);
  if (failed) return crihook_fail(err, CRIHOOK_FAILED_PRECONDITION, "cannot read %s", path);
  text[n] = '\0';
  if (cpulist_parse(text, out, err) != 0) {
    crihook_error cause = *err;
    return crihook_fail(err, CRIHOOK_FAILED_PRECONDITION, "%s: %s", path, cause.message);
  }
  return 0;
}

bool cpulist_has(const cpulist *set, unsigned cpu) {
  return cpu < CPULIST_MAX && (set->bits[cpu / 64] >> (cpu % 64) & 1);
}

void cpulist_add(cpulist *set, unsigned cpu) {
  if (cpu < CPULIST_MAX) set->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

bool cpulist_is_empty(const cpulist *set) {
  for (size_t i = 0; i < CPULIST_MAX / 64; i++)
    if (set->bits[i]) return false;
  return true;
}

bool cpulist_is_subset(const cpulist *set, const cpulist *of) {
  for (size_t i = 0; i < CPULIST_MAX / 64; i++)
    if (set->bits[i] & ~of->bits[i]) return false;
  return true;
}

/* Appends `piece` to buf[0..len) as snprintf would, counting it even when it
 * does not fit. */
static void append(char *buf, size_t len, size_t *used, const char *piece) {
  size_t n = strlen(piece);
  if (*used + 1 < len) {
    size_t fit = n < len - *used - 1 ? n : len - *used - 1;
    memcpy(buf + *used, piece, fit);
    buf[*used + fit] = '\0';
  }
  *used += n;
}

size_t cpulist_format(const cpulist *set, char *buf, size_t len) {
  size_t used = 0;
  if (len) buf[0] = '\0';
  for (unsigned cpu = 0; cpu < CPULIST_MAX; cpu++) {
    if (!cpulist_has(set, cpu)) continue;
    unsigned last = cpu;
    while (last + 1 < CPULIST_MAX && cpulist_has(set, last + 1)) last++;
    char piece[32];
    const char *sep = used ? "," : "";
    if (last == cpu)
      snprintf(piece, sizeof piece, "%s%u", sep, cpu);
    else
      snprintf(piece, sizeof piece, "%s%u-%u", sep, cpu, last);
    append(buf, len, &used, piece);
    cpu = last;
  }
  return used;
}
