/* SPDX-License-Identifier: Apache-2.0 */
/* log_json.c: turns one formatted log message into a JSON object line, for
 * `--log-format json` (log.h).
 *
 * The message is kept whole under "msg" (nothing a reader of the text line
 * sees is lost); every key=value token in it is also lifted into a field of
 * its own, so a collector can filter on e.g. plugin or method without
 * parsing. Values may be bare (up to the next space; a trailing ':' or ','
 * is not part of them) or double-quoted. Keys are [a-z0-9_] and never
 * shadow time/level/component/msg. */
#include <stdbool.h>
#include <string.h>

#include "log_internal.h"
#include "strbuf.h"

typedef ch_strbuf out_buf; /* bounded (ch_strbuf_fixed): the caller's line */

static void put(out_buf *o, const char *s, size_t n) { ch_strbuf_put(o, s, n); }

static void put_str(out_buf *o, const char *s) { ch_strbuf_puts(o, s); }

/* Writes s[0..n) as a JSON string, quotes included (strbuf.h escapes it and
 * replaces what is not UTF-8). */
static void put_json_string(out_buf *o, const char *s, size_t n) {
  put(o, "\"", 1);
  ch_strbuf_put_json(o, s, n);
  put(o, "\"", 1);
}

static bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool reserved_key(const char *k, size_t n) {
  static const char *const names[] = {"time", "level", "component", "msg"};
  for (size_t i = 0; i < 4; i++)
    if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0) return true;
  return false;
}

/* Parses a value at *p (quoted or bare); returns its bounds, advances *p. */
static void scan_value(const char **p, const char **start, size_t *n) {
  const char *s = *p;
  if (*s == '"') {
    const char *end = strchr(s + 1, '"');
    if (!end) end = s + strlen(s);
    *start = s + 1;
    *n = (size_t)(end - s - 1);
    *p = *end ? end + 1 : end;
    return;
  }
  const char *end = s;
  while (*end && *end != ' ') end++;
  *p = end;
  while (end > s && (end[-1] == ':' || end[-1] == ',')) end--;
  *start = s;
  *n = (size_t)(end - s);
}

/* Appends ,"key":"value" for every key=value token of msg. */
static void put_fields(out_buf *o, const char *msg) {
  const char *p = msg;
  while (*p) {
    bool at_token = p == msg || p[-1] == ' ';
    const char *k = p;
    while (at_token && key_char(*p)) p++;
    if (!at_token || p == k || *p != '=') {
      p = k + 1;
      continue;
    }
    size_t klen = (size_t)(p - k), vlen;
    const char *v;
    p++;
    scan_value(&p, &v, &vlen);
    if (reserved_key(k, klen)) continue;
    put(o, ",", 1);
    put_json_string(o, k, klen);
    put(o, ":", 1);
    put_json_string(o, v, vlen);
  }
}

size_t ch_log_json_line(char *line, size_t len, const char *time, const char *level,
                        const char *component, const char *msg) {
  out_buf o;
  ch_strbuf_fixed(&o, line, len);
  put_str(&o, "{\"time\":");
  put_json_string(&o, time, strlen(time));
  put_str(&o, ",\"level\":");
  put_json_string(&o, level, strlen(level));
  put_str(&o, ",\"component\":");
  put_json_string(&o, component, strlen(component));
  put_str(&o, ",\"msg\":");
  put_json_string(&o, msg, strlen(msg));
  put_fields(&o, msg);
  put_str(&o, "}\n");
  return o.len;
}

size_t ch_log_json_bound(size_t component_len, size_t msg_len) {
  /* 128 for the fixed keys and time; every byte escapes to at most 6 and
   * msg appears at most twice (whole, then as fields whose quoting and
   * commas add at most 4 bytes per 2 bytes of message). */
  return 128 + 6 * component_len + 16 * msg_len;
}
