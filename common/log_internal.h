/* SPDX-License-Identifier: Apache-2.0 */
/* log_internal.h: pieces of log.c shared with log_json.c (not public). */
#pragma once

#include <stddef.h>

/* Formats one JSON log line (ending in '\n') into line[0..len), len at
 * least ch_log_json_bound(); returns its length. */
size_t ch_log_json_line(char *line, size_t len, const char *time, const char *level,
                        const char *component, const char *msg);

/* Size of buffer that always holds the JSON line of such a message. */
size_t ch_log_json_bound(size_t component_len, size_t msg_len);
