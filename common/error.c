/* SPDX-License-Identifier: Apache-2.0 */
/* error.c: building and wrapping ch_error messages (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_message(ch_error *err, const char *fmt, va_list ap) {
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int ch_fail(ch_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(err, fmt, ap);
  va_end(ap);
  return -1;
}

int ch_fail_errno(ch_error *err, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(err, fmt, ap);
  va_end(ap);
  size_t used = strlen(err->msg);
  snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(errnum));
  return -1;
}

int ch_wrap(ch_error *err, const char *fmt, ...) {
  char context[sizeof err->msg];
  char old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(context, sizeof context, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s: %s", context, old);
  return -1;
}
