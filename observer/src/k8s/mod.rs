//! Kubernetes metadata (`--kubernetes`): which pod, namespace, container and workload a process
//! belongs to, and the `service.name` the OpenTelemetry conventions give it.
//!
//! * [`pod`] (pure): a Pod object -> [`PodMeta`], and the `service.name` rule;
//! * [`index`] (pure): the pods of this node by pod uid and container id, fed by watcher events;
//! * [`watch`] (I/O): lists and watches the pods of this node (`spec.nodeName`) with `kube`
//!   into a [`SharedIndex`], which `/proc` lookups ([`crate::procinfo::Procfs`]) read.
//!
//! A process is matched to its pod by the container id and pod uid of its cgroup
//! ([`crate::cgroup`]).

pub mod index;
pub mod pod;
pub mod watch;

#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod resolve_tests;
#[cfg(test)]
mod watch_tests;

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

pub use index::PodIndex;
pub use pod::{PodMeta, Workload, WorkloadKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--kubernetes needs the node's name: --node-name or NODE_NAME (from the downward API)")]
    NoNodeName,
    #[error(
        "no Kubernetes client configuration (neither a kubeconfig nor the in-cluster service account)"
    )]
    Config(#[from] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client")]
    Client(#[from] kube::Error),
}

/// The pod (and, when known, the container) a process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sMeta {
    pub pod: Arc<PodMeta>,
    pub container: Option<String>,
}

impl K8sMeta {
    /// `service.name` by the OpenTelemetry Kubernetes conventions (see [`pod`]).
    pub fn service_name(&self) -> Option<String> {
        self.pod.service_name(self.container.as_deref())
    }

    /// OpenTelemetry resource attributes (only those known).
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let p = &*self.pod;
        let mut a = vec![
            ("k8s.namespace.name", p.namespace.as_str()),
            ("k8s.pod.name", p.name.as_str()),
            ("k8s.pod.uid", p.uid.as_str()),
            (
                "k8s.container.name",
                self.container.as_deref().unwrap_or(""),
            ),
            ("k8s.node.name", p.node.as_deref().unwrap_or("")),
        ];
        for w in [&p.controller, &p.workload].into_iter().flatten() {
            if !a.iter().any(|(k, _)| *k == w.kind.attribute()) {
                a.push((w.kind.attribute(), w.name.as_str()));
            }
        }
        a.into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, v.to_owned()))
            .collect()
    }
}

/// The `"k8s"` object of JSON records.
impl Serialize for K8sMeta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            namespace: &'a str,
            pod: &'a str,
            container: Option<&'a str>,
            workload_kind: Option<&'static str>,
            workload: Option<&'a str>,
        }
        let w = self.pod.workload.as_ref();
        Json {
            namespace: &self.pod.namespace,
            pod: &self.pod.name,
            container: self.container.as_deref(),
            workload_kind: w.map(|w| w.kind.as_str()),
            workload: w.map(|w| w.name.as_str()),
        }
        .serialize(s)
    }
}

/// The index shared between the watcher (writer) and `/proc` lookups (readers, synchronous).
#[derive(Debug, Clone, Default)]
pub struct SharedIndex(Arc<RwLock<PodIndex>>);

impl SharedIndex {
    /// A writer never panics while holding the lock, but a poisoned index is still usable.
    pub fn read(&self) -> RwLockReadGuard<'_, PodIndex> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, PodIndex> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn generation(&self) -> u64 {
        self.read().generation()
    }

    pub fn lookup(&self, pod_uid: Option<&str>, container_id: Option<&str>) -> Option<K8sMeta> {
        self.read().lookup(pod_uid, container_id)
    }
}
