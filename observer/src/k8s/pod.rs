//! A Pod object -> what the observer keeps of it (pure).
//!
//! * containers: the runtime's container id (as in `/proc/PID/cgroup`, see [`crate::cgroup`]) ->
//!   the container's name, from `status.{initContainer,container,ephemeralContainer}Statuses`;
//!   `containerID` is `<runtime>://<id>` (`containerd://`, `cri-o://`, `docker://`).
//! * the workload, from the owner reference with `controller: true`: a ReplicaSet named
//!   `<deployment>-<pod-template-hash>` belongs to that Deployment (the Deployment controller names
//!   them so), a Job named `<cronjob>-<minutes since the epoch>` to that CronJob (the CronJob
//!   controller names them so); StatefulSets and DaemonSets own their pods directly. Other
//!   controllers (a Node for static pods, custom resources) and bare pods give no workload.
//! * `service.name` in the order of the OpenTelemetry Kubernetes conventions
//!   (<https://opentelemetry.io/docs/specs/semconv/non-normative/k8s-attributes/>): the annotation
//!   `resource.opentelemetry.io/service.name`, the labels `app.kubernetes.io/instance` and
//!   `app.kubernetes.io/name`, the workload's name, the pod's name, the container's name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

pub const SERVICE_NAME_ANNOTATION: &str = "resource.opentelemetry.io/service.name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The kinds of workload the OpenTelemetry conventions name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
}

impl WorkloadKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
        }
    }

    /// The OpenTelemetry resource attribute that carries its name.
    pub fn attribute(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "k8s.deployment.name",
            WorkloadKind::ReplicaSet => "k8s.replicaset.name",
            WorkloadKind::StatefulSet => "k8s.statefulset.name",
            WorkloadKind::DaemonSet => "k8s.daemonset.name",
            WorkloadKind::CronJob => "k8s.cronjob.name",
            WorkloadKind::Job => "k8s.job.name",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

/// What the observer keeps of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// Container id (lower-case hex, no runtime prefix) -> container name.
    pub containers: BTreeMap<String, String>,
    /// The pod's controller (ReplicaSet, StatefulSet, DaemonSet, Job).
    pub controller: Option<Workload>,
    /// What runs the pod: the controller, or the Deployment / CronJob above it.
    pub workload: Option<Workload>,
    /// The inputs of the `service.name` rule (absent when empty).
    pub service_annotation: Option<String>,
    pub instance_label: Option<String>,
    pub name_label: Option<String>,
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// `containerd://<id>` -> `<id>`, lower case; any `<scheme>://` is taken off.
pub fn strip_runtime(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id)
}

/// `<prefix>-<suffix>` -> `<prefix>` when `suffix` passes.
fn base_name(name: &str, suffix_ok: impl Fn(&str) -> bool) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('-')?;
    (!base.is_empty() && suffix_ok(suffix)).then_some(base)
}

/// The CronJob controller names a Job `<cronjob>-<scheduled time in minutes since the epoch>`:
/// eight digits or more for any time after 1989, which keeps `migrate-2` a Job of its own.
fn is_cronjob_suffix(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit())
}

fn workloads(pod: &Pod) -> (Option<Workload>, Option<Workload>) {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let Some(owner) = owner else {
        return (None, None);
    };
    let kind = match owner.kind.as_str() {
        "ReplicaSet" => WorkloadKind::ReplicaSet,
        "StatefulSet" => WorkloadKind::StatefulSet,
        "DaemonSet" => WorkloadKind::DaemonSet,
        "Job" => WorkloadKind::Job,
        _ => return (None, None),
    };
    let controller = Workload {
        kind,
        name: owner.name.clone(),
    };
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
        .filter(|h| !h.is_empty());
    let above = match kind {
        WorkloadKind::ReplicaSet => hash
            .and_then(|h| base_name(&owner.name, |s| s == h))
            .map(|d| (WorkloadKind::Deployment, d)),
        WorkloadKind::Job => {
            base_name(&owner.name, is_cronjob_suffix).map(|c| (WorkloadKind::CronJob, c))
        }
        _ => None,
    };
    let workload = match above {
        Some((kind, name)) => Workload {
            kind,
            name: name.to_owned(),
        },
        None => controller.clone(),
    };
    (Some(controller), Some(workload))
}

fn containers(pod: &Pod) -> BTreeMap<String, String> {
    let Some(status) = &pod.status else {
        return BTreeMap::new();
    };
    let lists: [&Option<Vec<ContainerStatus>>; 3] = [
        &status.init_container_statuses,
        &status.container_statuses,
        &status.ephemeral_container_statuses,
    ];
    lists
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| {
            let id = strip_runtime(c.container_id.as_deref()?);
            (!id.is_empty()).then(|| (id.to_ascii_lowercase(), c.name.clone()))
        })
        .collect()
}

impl PodMeta {
    /// `None` for a pod without a uid (never so from the API server).
    pub fn from_pod(pod: &Pod) -> Option<PodMeta> {
        let m = &pod.metadata;
        let uid = non_empty(m.uid.as_ref())?;
        let label = |k: &str| non_empty(m.labels.as_ref().and_then(|l| l.get(k)));
        let (controller, workload) = workloads(pod);
        Some(PodMeta {
            uid,
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            node: non_empty(pod.spec.as_ref().and_then(|s| s.node_name.as_ref())),
            containers: containers(pod),
            controller,
            workload,
            service_annotation: non_empty(
                m.annotations
                    .as_ref()
                    .and_then(|a| a.get(SERVICE_NAME_ANNOTATION)),
            ),
            instance_label: label(INSTANCE_LABEL),
            name_label: label(NAME_LABEL),
        })
    }

    /// `service.name` for a process of this pod running in `container` (when known), in the
    /// order of the OpenTelemetry conventions; `None` when nothing in it names a service.
    pub fn service_name(&self, container: Option<&str>) -> Option<String> {
        let named = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        self.service_annotation
            .clone()
            .or_else(|| self.instance_label.clone())
            .or_else(|| self.name_label.clone())
            .or_else(|| self.workload.as_ref().and_then(|w| named(&w.name)))
            .or_else(|| named(&self.name))
            .or_else(|| container.and_then(named))
    }
}
