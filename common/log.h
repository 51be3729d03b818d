/* SPDX-License-Identifier: Apache-2.0 */
/* log.h: one-line-per-event logging to stderr.
 *
 * Every line has a timestamp, a level, a component and a message that ends in
 * key=value fields, e.g.
 *   2026-11-23T19:30:00.123Z info  proxy: backend chosen path=/run/x.sock
 * With --log-format json each line is instead one JSON object: time, level,
 * component, msg (the whole message) and each key=value as its own field
 * (log_json.c).
 * In text lines, control characters and bytes that are not UTF-8 are
 * escaped ("\n", "\xNN"): a value from outside (a file name, a method
 * path) cannot end the line or forge another; JSON lines are always valid
 * JSON (such bytes become "\ufffd").
 * Logging never blocks the caller: a line is written at once only while
 * stderr is writable and nothing is queued; otherwise it goes through a
 * bounded buffer to a writer thread (log.c). If the sink is stuck and the
 * buffer full, lines are dropped, counted (ch_log_dropped) and reported by
 * a later line.
 * Only the outermost layers log; helpers return errors (error.h) instead. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum ch_log_level {
  CH_LOG_DEBUG = 0,
  CH_LOG_INFO = 1,
  CH_LOG_WARN = 2,
  CH_LOG_ERROR = 3,
} ch_log_level;

typedef enum ch_log_format { CH_LOG_TEXT = 0, CH_LOG_JSON = 1 } ch_log_format;

void ch_log_set_level(ch_log_level level);
void ch_log_set_format(ch_log_format format);
/* Parses "text" or "json"; returns -1 if unknown. */
int ch_log_parse_format(const char *name, ch_log_format *out);
bool ch_log_enabled(ch_log_level level);

/* Parses "debug", "info", "warn"/"warning" or "error"; returns -1 if unknown. */
int ch_log_parse_level(const char *name, ch_log_level *out);

/* Lines dropped so far because the sink was stuck. */
uint64_t ch_log_dropped(void);

void ch_log(ch_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ch_debug(comp, ...)                                                    \
  do {                                                                         \
    if (ch_log_enabled(CH_LOG_DEBUG)) ch_log(CH_LOG_DEBUG, comp, __VA_ARGS__); \
  } while (0)
#define ch_info(comp, ...) ch_log(CH_LOG_INFO, comp, __VA_ARGS__)
#define ch_warn(comp, ...) ch_log(CH_LOG_WARN, comp, __VA_ARGS__)
#define ch_error_log(comp, ...) ch_log(CH_LOG_ERROR, comp, __VA_ARGS__)
