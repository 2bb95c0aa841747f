//! The pods of this node, by pod uid and by container id (pure).
//!
//! Fed by the watcher's events: a (re)list is `Init`, one `InitApply` per pod, `InitDone`; then
//! `Apply` and `Delete` as pods change. Listed pods are applied as they come (so processes find
//! their pod before the list ends); at `InitDone` the pods the list did not name are removed.
//! The generation counts changes, so readers can tell when cached lookups went stale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;

use super::K8sMeta;
use super::pod::PodMeta;

#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, Arc<PodMeta>>,
    /// Container id -> pod uid.
    containers: HashMap<String, String>,
    generation: u64,
    /// During a (re)list: the uids listed so far.
    listing: Option<HashSet<String>>,
}

impl PodIndex {
    /// Moves on every change of what [`PodIndex::lookup`] can return.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn pod(&self, uid: &str) -> Option<&Arc<PodMeta>> {
        self.pods.get(uid)
    }

    /// Adds or replaces a pod; no change (and the same generation) when it is as it was.
    pub fn apply(&mut self, pod: PodMeta) {
        if let Some(listing) = &mut self.listing {
            listing.insert(pod.uid.clone());
        }
        if self.pods.get(&pod.uid).is_some_and(|p| **p == pod) {
            return;
        }
        self.unlink(&pod.uid);
        for id in pod.containers.keys() {
            self.containers.insert(id.clone(), pod.uid.clone());
        }
        self.pods.insert(pod.uid.clone(), Arc::new(pod));
        self.generation += 1;
    }

    pub fn delete(&mut self, uid: &str) {
        if self.unlink(uid).is_some() {
            self.generation += 1;
        }
    }

    /// Takes the pod and its container ids out.
    fn unlink(&mut self, uid: &str) -> Option<Arc<PodMeta>> {
        let old = self.pods.remove(uid)?;
        for id in old.containers.keys() {
            if self.containers.get(id).is_some_and(|u| u == uid) {
                self.containers.remove(id);
            }
        }
        Some(old)
    }

    /// A (re)list starts.
    pub fn begin_list(&mut self) {
        self.listing = Some(HashSet::new());
    }

    /// A (re)list is complete: pods it did not name are gone.
    pub fn end_list(&mut self) {
        let Some(listed) = self.listing.take() else {
            return;
        };
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.delete(&uid);
        }
    }

    /// Applies one watcher event.
    pub fn on_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.begin_list(),
            Event::InitApply(pod) | Event::Apply(pod) => {
                if let Some(meta) = PodMeta::from_pod(&pod) {
                    self.apply(meta);
                }
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.delete(uid);
                }
            }
            Event::InitDone => self.end_list(),
        }
    }

    /// The pod of a process, from the ids its cgroup gave: the container id names the container
    /// too; the pod uid alone (a container not in the pod's status yet, the sandbox) only the pod.
    pub fn lookup(&self, pod_uid: Option<&str>, container_id: Option<&str>) -> Option<K8sMeta> {
        if let Some(id) = container_id
            && let Some(pod) = self.containers.get(id).and_then(|uid| self.pods.get(uid))
        {
            return Some(K8sMeta {
                container: pod.containers.get(id).cloned(),
                pod: Arc::clone(pod),
            });
        }
        let pod = self.pods.get(pod_uid?)?;
        Some(K8sMeta {
            pod: Arc::clone(pod),
            container: None,
        })
    }
}
