/* SPDX-License-Identifier: Apache-2.0 */
/* pbjson.h: generic protobuf-c message <-> JSON (jansson) conversion.
 *
 * Works on any message through its protobuf-c descriptor, so it needs no
 * per-message code: crihookctl reads pod/container configs with it and prints
 * statuses, tests build requests from fixtures, logs can show a request.
 *
 * To JSON (ch_pb_to_json), in the shape crictl prints:
 * - keys are the proto field names as written in the .proto (snake_case for
 *   CRI, e.g. "pod_sandbox_id"; upstream's few camelCase names such as
 *   "uidMappings" stay as they are);
 * - fields at their default value are omitted (0, false, "", empty bytes,
 *   empty repeated/map, unset message); a set but empty message is {};
 * - enums are their value names ("CONTAINER_RUNNING"); a number the enum does
 *   not declare is printed as a number;
 * - maps are JSON objects; repeated fields are arrays;
 * - 32- and 64-bit integers are JSON numbers; a uint64 above INT64_MAX (which
 *   jansson cannot hold as an integer) is a decimal string;
 * - float/double are JSON reals; NaN and infinities are the strings "NaN",
 *   "Infinity", "-Infinity" (as in proto3's JSON mapping);
 * - bytes: a JSON string holding the bytes themselves when they are valid
 *   UTF-8 (NUL included, escaped as \u0000), otherwise an object
 *   {"base64": "<standard base64>"}. The key stays the field name either way,
 *   so output stays readable for text (exec output) and lossless for binary.
 * - a string field holding invalid UTF-8 (protobuf-c does not check) has each
 *   bad byte replaced by U+FFFD, so the output is always valid JSON.
 *
 * From JSON (ch_pb_from_json):
 * - keys match a field by its proto name or its lowerCamelCase JSON name
 *   ("pod_sandbox_id" and "podSandboxId" both work);
 * - enums by name or by number; integers from JSON integers, integral reals
 *   or numeric strings ("42"), range-checked for the field's type; reals from
 *   numbers or numeric strings; bools from true/false only;
 * - maps from objects (keys converted to the key type); bytes from a string
 *   (taken as its UTF-8 bytes) or {"base64": "..."};
 * - null for any field leaves it at its default;
 * - an unknown key, a type mismatch, an out-of-range number or a key given
 *   twice (e.g. both spellings) is an error whose message names the path from
 *   the top message, e.g.
 *     PodSandboxConfig.linux: unknown field "foo"
 *     ContainerConfig.envs[1].value: expected a string, got integer
 * The result is allocated with the default allocator, exactly as
 * protobuf_c_message_unpack() would: free it with
 * protobuf_c_message_free_unpacked(msg, NULL). */
#pragma once

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "error.h"

/* Returns a new JSON object for `msg` (never NULL unless out of memory). */
json_t *ch_pb_to_json(const ProtobufCMessage *msg);

/* Builds a message of type `desc` from `json` (an object, or null for an empty
 * message). On success stores it in *out and returns 0; on failure returns -1
 * with *out = NULL and `err` filled. */
int ch_pb_from_json(const ProtobufCMessageDescriptor *desc, const json_t *json,
                    ProtobufCMessage **out, ch_error *err);

/* Like ch_pb_from_json, but keys the message does not declare are skipped
 * (for documents written by others, e.g. a runtime's verbose status info,
 * which carries fields this build's .proto does not have). */
int ch_pb_from_json_lenient(const ProtobufCMessageDescriptor *desc, const json_t *json,
                            ProtobufCMessage **out, ch_error *err);
