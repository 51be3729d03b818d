/* SPDX-License-Identifier: Apache-2.0 */
/* notify.h: the systemd readiness protocol (sd_notify) without libsystemd.
 *
 * When systemd starts a Type=notify service it sets NOTIFY_SOCKET to a unix
 * datagram socket (a path, or an abstract name starting with '@'); the
 * service sends "READY=1" once it serves and "STOPPING=1" when it begins to
 * shut down. Without NOTIFY_SOCKET this does nothing. */
#pragma once

#include "error.h"

/* Sends `state` (e.g. "READY=1\nSTATUS=serving"). Returns 0 when sent or
 * when there is no NOTIFY_SOCKET, -1 with err if sending failed. */
int ch_sd_notify(const char *state, ch_error *err);
