/* SPDX-License-Identifier: Apache-2.0 */
/* reexec.h: start crihookd afresh in the same process (same pid, same
 * arguments and environment), for a data plane that cannot be repaired in
 * place.
 *
 * Used by the listener watch (health.c) when crihookd's own listen socket
 * no longer answers while the backend does: grpc core's accept loop (libgrpc
 * 1.51) stops for good after one EMFILE, and a grpc server cannot add a
 * listener once started. Re-executing closes every descriptor (all are
 * marked close-on-exec first), so the new instance finds the socket file
 * stale, binds it again and rebuilds its store from the runtime; kubelet's
 * calls in flight on old connections fail and it reconnects. The pid stays,
 * so systemd (Type=notify; READY=1 is sent again) and the DaemonSet see the
 * same process. If exec fails, the process exits with status 1 so that its
 * supervisor restarts it. */
#pragma once

/* Logs `reason` and never returns. */
void ch_reexec(const char *reason) __attribute__((noreturn));
