/* SPDX-License-Identifier: Apache-2.0 */
/* h2verbatim.h: the verbatim engine's face towards the relay's accept side
 * (h2relay.c). A client connection it serves has its own backend
 * connection, and the frames go through as they came; see h2relay.h
 * "Verbatim" for what it reads, what it changes, and why. Not a public
 * API: h2relay.c calls these on the relay's loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct h2r_conn h2r_conn;
typedef struct h2v_conn h2v_conn;

/* After accept: connects the backend; the client is read once it is up.
 * -1 when out of memory (the caller closes c). */
int h2v_start(h2r_conn *c);
/* Bytes the client sent (the read slab: used before this returns). */
void h2v_client_read(h2v_conn *v, const uint8_t *p, size_t n);
/* From h2r_conn_close: ends the streams, closes the backend side. */
void h2v_close(h2v_conn *v);
/* From the client pipe's close callback: the client side is gone. */
void h2v_release(h2v_conn *v);
/* The connection has open streams. */
bool h2v_busy(const h2v_conn *v);
/* The connection waits only for its last bytes to be written (the sweep
 * closes it if the client does not read them). */
bool h2v_lingering(const h2v_conn *v);
/* Idle: GOAWAY(NO_ERROR) to the client. */
void h2v_goaway(h2v_conn *v);
/* The drain (h2r_drain): GOAWAY once, then streaming streams end. */
void h2v_drain(h2v_conn *v, const char *msg);
