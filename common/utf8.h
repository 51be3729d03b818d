/* SPDX-License-Identifier: Apache-2.0 */
/* utf8.h: where text from outside (a client's method path, a plugin's
 * file name, a registration field) meets a strict format (a JSON log line,
 * a Prometheus label value), it is checked as UTF-8 here first.
 *
 * One helper, shared by the log writer (log_json.c) and the metrics
 * renderer (observe/metrics.c), so both agree on what is valid. */
#pragma once

#include <stddef.h>

/* The length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if the
 * bytes there are not one (a stray continuation byte, an overlong form, a
 * surrogate, a sequence cut short, a code point above U+10FFFF). */
size_t ch_utf8_sequence(const unsigned char *s, size_t n);
