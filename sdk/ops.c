/* SPDX-License-Identifier: Apache-2.0 */
/* ops.c: crihook_serve()'s two entry points, and the plugin's ops read as
 * far as their size says (the ABI policy of crihook_plugin.h).
 *
 * The plugin allocates crihook_plugin_ops and the library reads it, so a
 * library newer than the plugin's header must not read callbacks the
 * plugin's struct does not have. The struct carries its own size
 * (CRIHOOK_PLUGIN_OPS_INIT); sdk_ops_adopt copies that many bytes into a
 * struct of this library's size, and everything after it stays NULL
 * (UNIMPLEMENTED). A struct larger than ours comes from a newer header: it
 * is accepted when the callbacks we do not know are all NULL, as the kernel
 * does for clone3/openat2 arguments, and refused otherwise, since those
 * hooks would silently answer UNIMPLEMENTED although the plugin meant to
 * serve them.
 *
 * Plugins built before the size field existed (libcrihook 0.1) pass ten
 * callbacks and no size, through crihook_serve@CRIHOOK_0.1: that symbol
 * version is kept, mapped onto today's struct, so they run unrebuilt;
 * plugins built now bind crihook_serve@@CRIHOOK_0.2 (libcrihook.map). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sdk.h"

/* A size from a struct no header ever had (an uninitialised `size`) is
 * refused before anything past the known struct is read. */
#define OPS_SIZE_MAX 4096

typedef void (*any_callback)(void);

static int ops_fail(crihook_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ops_fail(crihook_error *err, const char *fmt, ...) {
  int n = snprintf(err->message, sizeof err->message, "crihook_plugin_ops: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* True if the `len` bytes at `p` are all zero. */
static bool all_zero(const unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != 0) return false;
  return true;
}

static int check_size(size_t size, crihook_error *err) {
  size_t first = offsetof(crihook_plugin_ops, pre_run_pod_sandbox);
  if (size == 0) return ops_fail(err, "size is 0; initialise the ops with CRIHOOK_PLUGIN_OPS_INIT");
  if (size < first || size > OPS_SIZE_MAX || (size - first) % sizeof(any_callback) != 0)
    return ops_fail(err,
                    "size %zu is not the size of any crihook_plugin_ops; initialise the ops "
                    "with CRIHOOK_PLUGIN_OPS_INIT",
                    size);
  return 0;
}

int sdk_ops_adopt(const crihook_plugin_ops *ops, crihook_plugin_ops *out, crihook_error *err) {
  if (!ops) return ops_fail(err, "ops is NULL");
  if (check_size(ops->size, err) != 0) return -1;
  size_t known = sizeof *out;
  if (ops->size > known && !all_zero((const unsigned char *)ops + known, ops->size - known))
    return ops_fail(err,
                    "this plugin sets callbacks for hook points this libcrihook does not "
                    "know (its struct is %zu bytes, the library's %zu): it was built "
                    "against a newer crihook_plugin.h; install that libcrihook or newer",
                    ops->size, known);
  memset(out, 0, sizeof *out);
  memcpy(out, ops, ops->size < known ? ops->size : known);
  out->size = known;
  return 0;
}

/* crihook_serve@@CRIHOOK_0.2: ops with a size. */
int sdk_serve_0_2(const char *path, const crihook_plugin_ops *ops, void *user, crihook_error *err);
__asm__(".symver sdk_serve_0_2, crihook_serve@@CRIHOOK_0.2");

int sdk_serve_0_2(const char *path, const crihook_plugin_ops *ops, void *user, crihook_error *err) {
  err->message[0] = '\0';
  crihook_plugin_ops known;
  if (sdk_ops_adopt(ops, &known, err) != 0) return -1;
  return sdk_serve(path, &known, user, err);
}

/* libcrihook 0.1's crihook_plugin_ops: the ten callbacks, no size. */
typedef struct ops_0_1 {
  crihook_pod_hook pre_run_pod_sandbox;
  crihook_pod_hook post_stop_pod_sandbox;
  crihook_pod_hook pre_remove_pod_sandbox;
  crihook_container_hook pre_create_container;
  crihook_container_hook pre_start_container;
  crihook_container_hook post_start_container;
  crihook_container_hook pre_update_container_resources;
  crihook_container_hook pre_stop_container;
  crihook_container_hook post_stop_container;
  crihook_container_hook post_remove_container;
} ops_0_1;

/* crihook_serve@CRIHOOK_0.1, for plugins built against 0.1's header. */
int sdk_serve_0_1(const char *path, const ops_0_1 *old, void *user, crihook_error *err);
__asm__(".symver sdk_serve_0_1, crihook_serve@CRIHOOK_0.1");

int sdk_serve_0_1(const char *path, const ops_0_1 *old, void *user, crihook_error *err) {
  err->message[0] = '\0';
  if (!old) return ops_fail(err, "ops is NULL");
  crihook_plugin_ops ops = {
      CRIHOOK_PLUGIN_OPS_INIT,
      .pre_run_pod_sandbox = old->pre_run_pod_sandbox,
      .post_stop_pod_sandbox = old->post_stop_pod_sandbox,
      .pre_remove_pod_sandbox = old->pre_remove_pod_sandbox,
      .pre_create_container = old->pre_create_container,
      .pre_start_container = old->pre_start_container,
      .post_start_container = old->post_start_container,
      .pre_update_container_resources = old->pre_update_container_resources,
      .pre_stop_container = old->pre_stop_container,
      .post_stop_container = old->post_stop_container,
      .post_remove_container = old->post_remove_container,
  };
  return sdk_serve(path, &ops, user, err);
}
