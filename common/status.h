/* SPDX-License-Identifier: Apache-2.0 */
/* status.h: gRPC status codes by name, for errors and logs.
 *
 * Separate from grpc_util.h so that code which only names statuses (the
 * nghttp2 gRPC client in rpc/, what it serves) needs grpc core's enum
 * header and none of its library. */
#pragma once

#include <grpc/status.h>

/* "UNAVAILABLE" for GRPC_STATUS_UNAVAILABLE; "UNKNOWN_CODE" past the end. */
const char *ch_status_name(grpc_status_code code);
