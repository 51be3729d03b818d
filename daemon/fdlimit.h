/* SPDX-License-Identifier: Apache-2.0 */
/* fdlimit.h: the process's own resource limits, set once at start.
 *
 * Every connection (CRI clients, admin and metrics clients, plugins, the
 * backend) costs crihookd a file descriptor, and grpc core's accept loop
 * (libgrpc 1.51) stops for good the first time accept() fails with EMFILE.
 * The soft RLIMIT_NOFILE is raised to the hard limit so that the limit is
 * as far away as the node allows; health.c's listener watch handles the
 * case where it is reached anyway. */
#pragma once

#include "error.h"

/* Raises the soft RLIMIT_NOFILE to the hard limit and logs both. */
int ch_raise_fd_limit(ch_error *err);
