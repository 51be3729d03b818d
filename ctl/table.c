/* SPDX-License-Identifier: Apache-2.0 */
/* table.c: crictl-style tables and human-readable values (see ctl.h).
 *
 * crictl prints tables through Go's tabwriter with minimum width 20 and
 * padding 3, and durations and sizes through docker's go-units; the helpers
 * here reproduce that layout and wording so output reads the same. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

enum { TABLE_MIN_WIDTH = 20, TABLE_PADDING = 3 };

struct ctl_table {
  size_t columns;
  size_t rows; /* including the header row */
  size_t capacity;
  char **cells; /* rows * columns strings */
};

ctl_table *ctl_table_new(size_t columns, const char *const *headers) {
  ctl_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->columns = columns;
  ctl_table_add(t, headers);
  return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells) {
  if (!t) return;
  if (t->rows == t->capacity) {
    size_t cap = t->capacity ? t->capacity * 2 : 16;
    char **grown = realloc(t->cells, cap * t->columns * sizeof *grown);
    if (!grown) return;
    t->cells = grown;
    t->capacity = cap;
  }
  for (size_t c = 0; c < t->columns; c++)
    t->cells[t->rows * t->columns + c] = strdup(cells[c] ? cells[c] : "");
  t->rows++;
}

static size_t column_width(const ctl_table *t, size_t c) {
  size_t width = TABLE_MIN_WIDTH;
  for (size_t r = 0; r < t->rows; r++) {
    const char *cell = t->cells[r * t->columns + c];
    size_t w = (cell ? strlen(cell) : 0) + TABLE_PADDING;
    if (w > width) width = w;
  }
  return width;
}

void ctl_table_print(ctl_table *t) {
  if (!t) return;
  size_t *widths = calloc(t->columns, sizeof *widths);
  for (size_t c = 0; widths && c < t->columns; c++) widths[c] = column_width(t, c);
  for (size_t r = 0; r < t->rows; r++) {
    for (size_t c = 0; c < t->columns; c++) {
      const char *cell = t->cells[r * t->columns + c];
      bool last = c + 1 == t->columns;
      if (last || !widths)
        printf("%s%s", cell ? cell : "", last ? "\n" : "   ");
      else
        printf("%-*s", (int)widths[c], cell ? cell : "");
    }
  }
  for (size_t i = 0; i < t->rows * t->columns; i++) free(t->cells[i]);
  free(widths);
  free(t->cells);
  free(t);
}

/* go-units HumanDuration, in whole units. */
static void human_duration(int64_t seconds, char *buf, size_t size) {
  int64_t minutes = seconds / 60, hours = minutes / 60;
  if (seconds < 1)
    snprintf(buf, size, "Less than a second");
  else if (seconds == 1)
    snprintf(buf, size, "1 second");
  else if (seconds < 60)
    snprintf(buf, size, "%" PRId64 " seconds", seconds);
  else if (minutes == 1)
    snprintf(buf, size, "About a minute");
  else if (minutes < 60)
    snprintf(buf, size, "%" PRId64 " minutes", minutes);
  else if (hours == 1)
    snprintf(buf, size, "About an hour");
  else if (hours < 48)
    snprintf(buf, size, "%" PRId64 " hours", hours);
  else if (hours < 24 * 7 * 2)
    snprintf(buf, size, "%" PRId64 " days", hours / 24);
  else if (hours < 24 * 30 * 2)
    snprintf(buf, size, "%" PRId64 " weeks", hours / 24 / 7);
  else if (hours < 24 * 365 * 2)
    snprintf(buf, size, "%" PRId64 " months", hours / 24 / 30);
  else
    snprintf(buf, size, "%" PRId64 " years", hours / 24 / 365);
}

void ctl_human_ago(int64_t created_ns, char *buf, size_t size) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  char what[64];
  human_duration((now_ns - created_ns) / 1000000000, what, sizeof what);
  snprintf(buf, size, "%s ago", what);
}

void ctl_human_size(uint64_t bytes, char *buf, size_t size) {
  static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1000 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1000;
    u++;
  }
  snprintf(buf, size, "%.3g%s", v, units[u]);
}

void ctl_short_id(const char *id, char *buf, size_t size) {
  const char *p = id && strncmp(id, "sha256:", 7) == 0 ? id + 7 : id ? id : "";
  snprintf(buf, size, "%.13s", p);
}
