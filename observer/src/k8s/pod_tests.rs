//! The pure mapping on recorded Pod objects (`kubectl get pod -o json`, in
//! `observer/tests/fixtures/k8s/`), and the index.

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use super::pod::strip_runtime;
use super::*;

const DEPLOYMENT: &str = include_str!("../../tests/fixtures/k8s/deployment-pod.json");
const REPLICASET: &str = include_str!("../../tests/fixtures/k8s/replicaset-pod.json");
const STATEFULSET: &str = include_str!("../../tests/fixtures/k8s/statefulset-pod.json");
const DAEMONSET: &str = include_str!("../../tests/fixtures/k8s/daemonset-pod.json");
const CRONJOB: &str = include_str!("../../tests/fixtures/k8s/cronjob-pod.json");
const JOB: &str = include_str!("../../tests/fixtures/k8s/job-pod.json");
const BARE: &str = include_str!("../../tests/fixtures/k8s/bare-pod.json");

pub(super) const CHECKOUT_UID: &str = "1fa938dc-45eb-4328-8b9c-7414c40e8b1f";
pub(super) const CHECKOUT_ID: &str =
    "c7761e58969f7edd498186641b2021e8477e1bcd230de4cf3435242da4a40d14";
const ISTIO_ID: &str = "b8e9c2a497daf0198e1b79d0044361efcbeb110b0e12096e96fcf46aadefd73e";
const MIGRATE_ID: &str = "3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";

pub(super) fn json(fixture: &str) -> Value {
    serde_json::from_str(fixture).expect("fixture is JSON")
}

pub(super) fn pod(v: &Value) -> Pod {
    serde_json::from_value(v.clone()).expect("fixture is a Pod")
}

pub(super) fn meta(v: &Value) -> PodMeta {
    PodMeta::from_pod(&pod(v)).expect("fixture has a uid")
}

fn workload(m: &PodMeta) -> Option<(WorkloadKind, &str)> {
    m.workload.as_ref().map(|w| (w.kind, w.name.as_str()))
}

fn container<'a>(m: &'a PodMeta, id: &str) -> Option<&'a str> {
    m.containers.get(id).map(String::as_str)
}

fn controller(m: &PodMeta) -> Option<(WorkloadKind, &str)> {
    m.controller.as_ref().map(|w| (w.kind, w.name.as_str()))
}

#[test]
fn deployment_pod_with_init_container_and_sidecar() {
    let m = meta(&json(DEPLOYMENT));
    assert_eq!(m.uid, CHECKOUT_UID);
    assert_eq!(m.namespace, "shop");
    assert_eq!(m.name, "checkout-7d9f8b6c5d-x2x7q");
    assert_eq!(m.node.as_deref(), Some("node-a"));
    let containers: Vec<(&str, &str)> = m
        .containers
        .iter()
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .collect();
    let mut expected = vec![
        (MIGRATE_ID, "migrate"),
        (CHECKOUT_ID, "checkout"),
        (ISTIO_ID, "istio-proxy"),
    ];
    expected.sort();
    assert_eq!(containers, expected);
    assert_eq!(
        controller(&m),
        Some((WorkloadKind::ReplicaSet, "checkout-7d9f8b6c5d"))
    );
    assert_eq!(workload(&m), Some((WorkloadKind::Deployment, "checkout")));
    assert_eq!(
        m.service_name(Some("checkout")).as_deref(),
        Some("checkout")
    );
}

#[test]
fn replicaset_without_a_deployment() {
    let m = meta(&json(REPLICASET));
    assert_eq!(workload(&m), Some((WorkloadKind::ReplicaSet, "legacy-rs")));
    assert_eq!(m.service_name(Some("legacy")).as_deref(), Some("legacy-rs"));
    // Named like a Deployment's, but its pods carry another template hash: still the ReplicaSet.
    let mut v = json(DEPLOYMENT);
    v["metadata"]["labels"]["pod-template-hash"] = json!("5f6a7b8c9d");
    let m = meta(&v);
    assert_eq!(
        workload(&m),
        Some((WorkloadKind::ReplicaSet, "checkout-7d9f8b6c5d"))
    );
    // No hash label at all.
    let labels = v["metadata"]["labels"].as_object_mut().unwrap();
    labels.remove("pod-template-hash");
    assert_eq!(
        workload(&meta(&v)),
        Some((WorkloadKind::ReplicaSet, "checkout-7d9f8b6c5d"))
    );
}

#[test]
fn statefulset_pod_on_cri_o_named_by_its_annotation() {
    let m = meta(&json(STATEFULSET));
    assert_eq!(workload(&m), Some((WorkloadKind::StatefulSet, "postgres")));
    assert_eq!(m.controller, m.workload);
    assert_eq!(
        container(
            &m,
            "a942b37ccfaf5a813b1432caa209a43b9d144e47ad0de1549c289c253e556cd5"
        ),
        Some("postgres")
    );
    assert_eq!(
        container(
            &m,
            "ab4b8dee0e75c4504a231c54d2195f3baad2c6ecaf9233e0bf9d5fd11f4c05b8"
        ),
        Some("init-perms")
    );
    assert_eq!(m.containers.len(), 3);
    assert_eq!(
        m.service_name(Some("pg-exporter")).as_deref(),
        Some("orders-database")
    );
}

#[test]
fn daemonset_pod_on_docker_with_an_upper_case_id() {
    let m = meta(&json(DAEMONSET));
    assert_eq!(workload(&m), Some((WorkloadKind::DaemonSet, "fluent-bit")));
    assert_eq!(
        container(
            &m,
            "b4096a195e1b6039ba44347320431fecc94069b735e47f37b813bc8ddba9427c"
        ),
        Some("fluent-bit")
    );
    assert_eq!(
        m.service_name(Some("fluent-bit")).as_deref(),
        Some("fluent-bit")
    );
}

#[test]
fn cronjob_pod_through_its_job() {
    let m = meta(&json(CRONJOB));
    assert_eq!(controller(&m), Some((WorkloadKind::Job, "backup-29146200")));
    assert_eq!(workload(&m), Some((WorkloadKind::CronJob, "backup")));
    assert_eq!(m.service_name(Some("backup")).as_deref(), Some("backup"));
}

#[test]
fn job_pods_that_no_cronjob_made() {
    let v = json(JOB);
    assert_eq!(
        workload(&meta(&v)),
        Some((WorkloadKind::Job, "migrate-db-v2"))
    );
    // A short number is a name someone chose, not a CronJob's schedule time.
    for name in ["migrate-2", "-29146200", "migrate-2914620x"] {
        let mut v = v.clone();
        v["metadata"]["ownerReferences"][0]["name"] = json!(name);
        assert_eq!(
            workload(&meta(&v)),
            Some((WorkloadKind::Job, name)),
            "{name}"
        );
    }
}

#[test]
fn bare_pod_with_an_ephemeral_container() {
    let m = meta(&json(BARE));
    assert_eq!(m.workload, None);
    assert_eq!(m.controller, None);
    assert_eq!(
        container(
            &m,
            "4c44d7c28ec0f6ca3e2624c6af1d3be324576d01ef6f6c2dc0af7e61664b8c2c"
        ),
        Some("debugger-x7k2p")
    );
    assert_eq!(m.containers.len(), 2);
    assert_eq!(
        m.service_name(Some("toolbox")).as_deref(),
        Some("debug-shell")
    );
}

#[test]
fn only_a_known_controller_makes_a_workload() {
    let mut v = json(DAEMONSET);
    v["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    assert_eq!(meta(&v).workload, None);
    // Static pods are "owned" by their node.
    v["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Node", "name": "node-a",
        "uid": "9e8d7c6b-5a49-4382-a716-0f1e2d3c4b5a", "controller": true
    }]);
    assert_eq!(meta(&v).workload, None);
    assert_eq!(
        meta(&v).service_name(None).as_deref(),
        Some("fluent-bit-8kq5x")
    );
}

#[test]
fn container_id_prefixes_of_each_runtime() {
    for (raw, id) in [
        ("containerd://abc123", "abc123"),
        ("cri-o://abc123", "abc123"),
        ("docker://abc123", "abc123"),
        ("abc123", "abc123"),
        ("containerd://", ""),
    ] {
        assert_eq!(strip_runtime(raw), id, "{raw}");
    }
    // A container still waiting to start has no id yet, and is not mapped.
    let mut v = json(DEPLOYMENT);
    v["status"]["containerStatuses"][1]
        .as_object_mut()
        .unwrap()
        .remove("containerID");
    v["status"]["containerStatuses"][0]["containerID"] = json!("containerd://");
    assert_eq!(meta(&v).containers.len(), 1, "only the init container");
}

#[test]
fn a_pod_without_uid_or_status_or_spec() {
    let mut v = json(BARE);
    v["metadata"].as_object_mut().unwrap().remove("uid");
    assert_eq!(PodMeta::from_pod(&pod(&v)), None);
    let p = Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            uid: Some("u".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let m = PodMeta::from_pod(&p).unwrap();
    assert!(m.containers.is_empty());
    assert_eq!(m.node, None);
}

#[test]
fn service_name_rules_in_order_each_winning_when_the_earlier_are_absent() {
    let mut v = json(DEPLOYMENT);
    v["metadata"]["annotations"][pod::SERVICE_NAME_ANNOTATION] = json!("from-annotation");
    v["metadata"]["labels"][pod::INSTANCE_LABEL] = json!("from-instance");
    v["metadata"]["labels"][pod::NAME_LABEL] = json!("from-name");
    let name = |v: &Value| meta(v).service_name(Some("checkout-container"));
    assert_eq!(name(&v).as_deref(), Some("from-annotation"));
    // An empty value counts as absent.
    v["metadata"]["annotations"][pod::SERVICE_NAME_ANNOTATION] = json!("");
    assert_eq!(name(&v).as_deref(), Some("from-instance"));
    let labels = v["metadata"]["labels"].as_object_mut().unwrap();
    labels.remove(pod::INSTANCE_LABEL);
    assert_eq!(name(&v).as_deref(), Some("from-name"));
    let labels = v["metadata"]["labels"].as_object_mut().unwrap();
    labels.remove(pod::NAME_LABEL);
    assert_eq!(name(&v).as_deref(), Some("checkout"), "the Deployment");
    v["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    assert_eq!(name(&v).as_deref(), Some("checkout-7d9f8b6c5d-x2x7q"));
    v["metadata"].as_object_mut().unwrap().remove("name");
    assert_eq!(name(&v).as_deref(), Some("checkout-container"));
    assert_eq!(meta(&v).service_name(None), None);
}

fn index_of(fixtures: &[&str]) -> PodIndex {
    let mut index = PodIndex::default();
    for f in fixtures {
        index.apply(meta(&json(f)));
    }
    index
}

#[test]
fn index_finds_pods_by_container_id_then_by_pod_uid() {
    let index = index_of(&[DEPLOYMENT, STATEFULSET, BARE]);
    assert_eq!(index.len(), 3);
    let k = index.lookup(Some(CHECKOUT_UID), Some(ISTIO_ID)).unwrap();
    assert_eq!(k.pod.name, "checkout-7d9f8b6c5d-x2x7q");
    assert_eq!(k.container.as_deref(), Some("istio-proxy"));
    // Without a pod uid (a cgroup layout that has none), the container id is enough.
    let k = index.lookup(None, Some(MIGRATE_ID)).unwrap();
    assert_eq!(k.container.as_deref(), Some("migrate"));
    // The sandbox (pause) or a container not in the status yet: the pod only.
    let unknown = "0".repeat(64);
    let k = index.lookup(Some(CHECKOUT_UID), Some(&unknown)).unwrap();
    assert_eq!((k.pod.uid.as_str(), k.container), (CHECKOUT_UID, None));
    assert_eq!(index.lookup(None, Some(&unknown)), None);
    assert_eq!(index.lookup(Some("not-a-pod"), None), None);
    assert_eq!(index.lookup(None, None), None);
}

#[test]
fn generation_moves_on_every_change_and_only_then() {
    let mut index = PodIndex::default();
    assert_eq!(index.generation(), 0);
    index.apply(meta(&json(DEPLOYMENT)));
    assert_eq!(index.generation(), 1);
    index.apply(meta(&json(DEPLOYMENT)));
    assert_eq!(index.generation(), 1, "the same pod again is no change");
    // The sidecar restarts with a new container id.
    let mut v = json(DEPLOYMENT);
    let new_id = "f".repeat(64);
    v["status"]["containerStatuses"][1]["containerID"] = json!(format!("containerd://{new_id}"));
    index.apply(meta(&v));
    assert_eq!(index.generation(), 2);
    assert_eq!(
        index.lookup(None, Some(ISTIO_ID)),
        None,
        "the old id is gone"
    );
    let k = index.lookup(None, Some(&new_id)).unwrap();
    assert_eq!(k.container.as_deref(), Some("istio-proxy"));
    index.delete("not-a-pod");
    assert_eq!(index.generation(), 2);
    index.delete(CHECKOUT_UID);
    assert_eq!(index.generation(), 3);
    assert!(index.is_empty());
    assert_eq!(index.lookup(Some(CHECKOUT_UID), Some(&new_id)), None);
}

#[test]
fn watcher_events_list_apply_and_delete() {
    let mut index = PodIndex::default();
    index.on_event(Event::Init);
    index.on_event(Event::InitApply(pod(&json(DEPLOYMENT))));
    index.on_event(Event::InitApply(pod(&json(CRONJOB))));
    // Listed pods are usable before the list ends.
    assert!(index.lookup(Some(CHECKOUT_UID), None).is_some());
    index.on_event(Event::InitDone);
    assert_eq!(index.len(), 2);
    index.on_event(Event::Apply(pod(&json(DAEMONSET))));
    assert_eq!(index.len(), 3);
    index.on_event(Event::Delete(pod(&json(CRONJOB))));
    assert_eq!(index.len(), 2);
    assert_eq!(
        index.lookup(
            None,
            Some("54d00d867758cef816bc4685f58e327b949712b07ebd17c3485f3ffc9e9f5133")
        ),
        None
    );
    // A relist (after a watch expired) that no longer names the DaemonSet's pod: it went while
    // the watch was down.
    let before = index.generation();
    index.on_event(Event::Init);
    index.on_event(Event::InitApply(pod(&json(DEPLOYMENT))));
    index.on_event(Event::InitDone);
    assert_eq!(index.len(), 1);
    assert!(index.lookup(Some(CHECKOUT_UID), None).is_some());
    assert_eq!(
        index.generation(),
        before + 1,
        "one change: the pod removed"
    );
    // A pod without uid is ignored.
    let mut v = json(BARE);
    v["metadata"].as_object_mut().unwrap().remove("uid");
    index.on_event(Event::Apply(pod(&v)));
    index.on_event(Event::Delete(pod(&v)));
    assert_eq!(index.len(), 1);
}

#[test]
fn otel_attributes_and_json_object() {
    let index = index_of(&[DEPLOYMENT, CRONJOB, BARE]);
    let k = index.lookup(Some(CHECKOUT_UID), Some(CHECKOUT_ID)).unwrap();
    assert_eq!(
        k.attributes(),
        vec![
            ("k8s.namespace.name", "shop".to_owned()),
            ("k8s.pod.name", "checkout-7d9f8b6c5d-x2x7q".to_owned()),
            ("k8s.pod.uid", CHECKOUT_UID.to_owned()),
            ("k8s.container.name", "checkout".to_owned()),
            ("k8s.node.name", "node-a".to_owned()),
            ("k8s.replicaset.name", "checkout-7d9f8b6c5d".to_owned()),
            ("k8s.deployment.name", "checkout".to_owned()),
        ]
    );
    assert_eq!(
        serde_json::to_value(&k).unwrap(),
        json!({"namespace": "shop", "pod": "checkout-7d9f8b6c5d-x2x7q", "container": "checkout",
               "workload_kind": "Deployment", "workload": "checkout"})
    );
    let cron = index
        .lookup(Some("a2e49bf6-ab84-4e68-8a6f-e064ce2ca785"), None)
        .unwrap();
    let keys: Vec<&str> = cron.attributes().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "k8s.namespace.name",
            "k8s.pod.name",
            "k8s.pod.uid",
            "k8s.node.name",
            "k8s.job.name",
            "k8s.cronjob.name"
        ]
    );
    let bare = index
        .lookup(Some("5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"), None)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&bare).unwrap(),
        json!({"namespace": "default", "pod": "debug-shell", "container": null,
               "workload_kind": null, "workload": null})
    );
}
