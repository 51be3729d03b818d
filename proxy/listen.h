/* listen.h: getting the listen socket's path ready before grpc binds it.
 *
 * grpc unlinks whatever file is at the path when it binds, even a socket a
 * live process serves on, so the check for a live owner is ours. */
#pragma once

#include "error.h"

/* Creates the parent directory (0755, like /run's subdirectories), removes
 * a stale socket file, and fails if a live process answers on the path or
 * the path is something other than a socket. */
int ch_listen_prepare(const char *path, ch_error *err);

/* Gives the socket mode 0660 once it exists. */
int ch_listen_finish(const char *path, ch_error *err);
