/* SPDX-License-Identifier: Apache-2.0 */
/* error.h: the error object every fallible function fills.
 *
 * In the style of crun: a fallible function returns 0 on success or -1 on
 * failure and fills the ch_error passed as its last argument. Callers add
 * context on the way up with ch_wrap(), so the message that reaches the log
 * reads from the outermost action to the root cause:
 *   "start server: bind unix:/run/crihook.sock: address in use". */
#pragma once

#include <stddef.h>

typedef struct ch_error {
  char msg[1024];
} ch_error;

/* Sets the message; always returns -1 so callers can `return ch_fail(...)`. */
int ch_fail(ch_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like ch_fail, with strerror(errnum) appended as ": <reason>". */
int ch_fail_errno(ch_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with context: "<context>: <old message>". */
int ch_wrap(ch_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
