/* SPDX-License-Identifier: Apache-2.0 */
/* views.c: building hook-request views over CRI messages (views.h). */
#include "views.h"

#include <string.h>

typedef Runtime__V1alpha1__LinuxContainerResources hook_resources;

static void meta_of(Runtime__V1alpha1__PodSandboxMetadata *meta,
                    const Runtime__V1__PodSandboxMetadata *from) {
  runtime__v1alpha1__pod_sandbox_metadata__init(meta);
  meta->name = from->name;
  meta->uid = from->uid;
  meta->namespace_ = from->namespace_;
  meta->attempt = from->attempt;
}

void ch_pod_view_of_config(ch_pod_view *v, const Runtime__V1__PodSandboxConfig *config,
                           const char *runtime_handler) {
  runtime__v1alpha1__pod_sandbox_hook_request__init(&v->msg);
  if (config->metadata) {
    meta_of(&v->meta, config->metadata);
    v->msg.pod_meta = &v->meta;
  }
  v->msg.runtime_handler = (char *)runtime_handler;
  v->msg.n_labels = config->n_labels;
  v->msg.labels = (Runtime__V1alpha1__PodSandboxHookRequest__LabelsEntry **)config->labels;
  v->msg.n_annotations = config->n_annotations;
  v->msg.annotations =
      (Runtime__V1alpha1__PodSandboxHookRequest__AnnotationsEntry **)config->annotations;
  if (config->linux) {
    v->msg.cgroup_parent = config->linux->cgroup_parent;
    v->msg.overhead = (hook_resources *)config->linux->overhead;
    v->msg.resources = (hook_resources *)config->linux->resources;
  }
}

static void pod_fields_of_config(ch_container_view *v, const Runtime__V1__PodSandboxConfig *sb) {
  Runtime__V1alpha1__ContainerResourceHookRequest *m = &v->msg;
  if (sb->metadata) {
    meta_of(&v->pod_meta, sb->metadata);
    m->pod_meta = &v->pod_meta;
  }
  m->n_pod_labels = sb->n_labels;
  m->pod_labels = (Runtime__V1alpha1__ContainerResourceHookRequest__PodLabelsEntry **)sb->labels;
  m->n_pod_annotations = sb->n_annotations;
  m->pod_annotations =
      (Runtime__V1alpha1__ContainerResourceHookRequest__PodAnnotationsEntry **)sb->annotations;
  if (sb->linux) {
    m->pod_cgroup_parent = sb->linux->cgroup_parent;
    m->pod_resources = (hook_resources *)sb->linux->resources;
  }
}

static void pod_fields_of_record(ch_container_view *v,
                                 const Runtime__V1alpha1__PodSandboxHookRequest *pod) {
  Runtime__V1alpha1__ContainerResourceHookRequest *m = &v->msg;
  m->pod_meta = pod->pod_meta;
  m->n_pod_labels = pod->n_labels;
  m->pod_labels = (Runtime__V1alpha1__ContainerResourceHookRequest__PodLabelsEntry **)pod->labels;
  m->n_pod_annotations = pod->n_annotations;
  m->pod_annotations =
      (Runtime__V1alpha1__ContainerResourceHookRequest__PodAnnotationsEntry **)pod->annotations;
  m->pod_cgroup_parent = pod->cgroup_parent;
  m->pod_resources = pod->resources;
}

/* kubelet (1.28 on) asks for the image by ID in `image` and keeps the name
 * the pod spec gave in `user_specified_image`: container_image is the name a
 * plugin matches on, container_image_id what the runtime was asked for. */
static void image_of_spec(Runtime__V1alpha1__ContainerResourceHookRequest *m,
                          const Runtime__V1__ImageSpec *image) {
  if (!image) return;
  m->container_image_id = image->image;
  m->container_image = image->user_specified_image[0] ? image->user_specified_image : image->image;
}

static bool is_image_id(const char *image) { return strncmp(image, "sha256:", 7) == 0; }

void ch_container_view_name_image(ch_container_view *v,
                                  const Runtime__V1__ImageSpec *status_image) {
  Runtime__V1alpha1__ContainerResourceHookRequest *m = &v->msg;
  if (!status_image || !status_image->image[0] || is_image_id(status_image->image)) return;
  if (!m->container_image[0] || is_image_id(m->container_image))
    m->container_image = status_image->image;
}

void ch_container_view_of_create(ch_container_view *v,
                                 const Runtime__V1__CreateContainerRequest *request,
                                 const Runtime__V1alpha1__PodSandboxHookRequest *stored_pod,
                                 const char *container_id) {
  Runtime__V1alpha1__ContainerResourceHookRequest *m = &v->msg;
  runtime__v1alpha1__container_resource_hook_request__init(m);
  runtime__v1alpha1__container_metadata__init(&v->meta);
  v->meta.id = (char *)container_id;
  m->container_meta = &v->meta;
  if (stored_pod) /* the pod as its hooks left it, which kubelet's copy is not */
    pod_fields_of_record(v, stored_pod);
  else if (request->sandbox_config)
    pod_fields_of_config(v, request->sandbox_config);
  const Runtime__V1__ContainerConfig *c = request->config;
  if (!c) return;
  if (c->metadata) {
    v->meta.name = c->metadata->name;
    v->meta.attempt = c->metadata->attempt;
  }
  m->n_container_annotations = c->n_annotations;
  m->container_annotations =
      (Runtime__V1alpha1__ContainerResourceHookRequest__ContainerAnnotationsEntry **)c->annotations;
  if (c->linux) m->container_resources = (hook_resources *)c->linux->resources;
  image_of_spec(m, c->image);
  m->n_container_envs = c->n_envs;
  m->container_envs =
      (Runtime__V1alpha1__ContainerResourceHookRequest__ContainerEnvsEntry **)c->envs;
}
