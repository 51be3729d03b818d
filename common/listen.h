/* SPDX-License-Identifier: Apache-2.0 */
/* listen.h: getting the listen socket's path ready before grpc binds it.
 *
 * grpc unlinks whatever file is at the path when it binds, even a socket a
 * live process serves on, so the check for a live owner is ours. */
#pragma once

#include "error.h"

/* The rule for a socket path (--listen, --admin-socket), as sshd's
 * StrictModes: every directory on the way to the socket, from "/" down,
 * must be owned by root or by crihookd's uid and not writable by group or
 * others unless it has the sticky bit (as /tmp); a symlink on the way must
 * be owned by root or crihookd's uid too, and its target's directories obey
 * the same rule. Otherwise another user could swap the directory (or the
 * link) and have kubelet talk to their socket. Components that do not exist
 * yet are not checked (crihookd creates them, owned by itself, 0755). */
int ch_listen_check_path(const char *path, ch_error *err);

/* Checks the path (above), creates the parent directory (0755, like /run's subdirectories), removes
 * a stale socket file, and fails if a live process answers on the path or
 * the path is something other than a socket. */
int ch_listen_prepare(const char *path, ch_error *err);

/* Gives the socket mode 0660 once it exists. */
int ch_listen_finish(const char *path, ch_error *err);
