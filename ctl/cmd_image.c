/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_image.c: images: the ImageService's ListImages as a table or JSON. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cri.pb-c.h"
#include "ctl.h"

/* Splits "registry:5000/name:tag" into name and tag at the last ':' that
 * comes after the last '/'. No tag gives "<none>". */
static void split_ref(const char *ref, char *name, size_t name_size, const char **tag) {
  const char *slash = strrchr(ref, '/');
  const char *colon = strrchr(slash ? slash : ref, ':');
  size_t n = colon ? (size_t)(colon - ref) : strlen(ref);
  snprintf(name, name_size, "%.*s", (int)n, ref);
  *tag = colon ? colon + 1 : "<none>";
}

static void add_image_row(ctl_table *t, const char *name, const char *tag, const char *id,
                          const char *size) {
  const char *cells[] = {name, tag, id, size};
  ctl_table_add(t, cells);
}

/* One row per tag, as crictl; an untagged image shows its digest's name. */
static void image_rows(ctl_table *t, const Runtime__V1__Image *img) {
  char id[16], size[32], name[512];
  const char *tag;
  ctl_short_id(img->id, id, sizeof id);
  ctl_human_size(img->size, size, sizeof size);
  for (size_t i = 0; i < img->n_repo_tags; i++) {
    split_ref(img->repo_tags[i], name, sizeof name, &tag);
    add_image_row(t, name, tag, id, size);
  }
  if (img->n_repo_tags > 0) return;
  const char *digest = img->n_repo_digests > 0 ? img->repo_digests[0] : "<none>";
  const char *at = strchr(digest, '@');
  snprintf(name, sizeof name, "%.*s", at ? (int)(at - digest) : (int)strlen(digest), digest);
  add_image_row(t, name, "<none>", id, size);
}

static void print_images(const Runtime__V1__ListImagesResponse *resp, bool quiet) {
  if (quiet) {
    for (size_t i = 0; i < resp->n_images; i++) printf("%s\n", resp->images[i]->id);
    return;
  }
  static const char *const headers[] = {"IMAGE", "TAG", "IMAGE ID", "SIZE"};
  ctl_table *t = ctl_table_new(4, headers);
  for (size_t i = 0; i < resp->n_images; i++) image_rows(t, resp->images[i]);
  ctl_table_print(t);
}

int ctl_cmd_images(ctl_ctx *ctx, int argc, char **argv) {
  bool json = false, quiet = false;
  if (ctl_parse_list_options(argc, argv, &json, &quiet) != 0) return ctl_usage(argv[0]);
  ProtobufCMessage *resp;
  if (ctl_call(ctx, "ListImages", NULL, 0, &resp) < 0) return CTL_EXIT_FAIL;
  if (json)
    ctl_print_list_json(resp, "images");
  else
    print_images((Runtime__V1__ListImagesResponse *)resp, quiet);
  protobuf_c_message_free_unpacked(resp, NULL);
  return CTL_EXIT_OK;
}
