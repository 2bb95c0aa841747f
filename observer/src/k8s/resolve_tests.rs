//! From a process to its pod: `Procfs` over a fake `/proc` (a temp dir as `--proc-root`) with
//! recorded cgroup files, and the pipeline re-resolving processes seen before their pod.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;

use super::SharedIndex;
use super::pod_tests::{CHECKOUT_ID, CHECKOUT_UID, json, meta};
use crate::capture::record::{Connection, Data, Direction, Event, Origin, Payload, Syscall};
use crate::correlate::{Config, RandomIds};
use crate::http::head::ParseOptions;
use crate::http::table::Limits;
use crate::output::{Format, render};
use crate::pipeline::{Pipeline, ProcView, ProcessFilter};
use crate::procinfo::Procfs;
use crate::record::Record;

const DEPLOYMENT: &str = include_str!("../../tests/fixtures/k8s/deployment-pod.json");

/// The checkout container of the Deployment's pod (containerd, systemd driver, cgroup v2).
const IN_POD: u32 = 4242;
/// A host process.
const ON_HOST: u32 = 4343;

/// A fake `/proc` with the two processes; removed on drop.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(test: &str) -> Self {
        let root = std::env::temp_dir().join(format!("observer-k8s-{test}-{}", std::process::id()));
        let uid = CHECKOUT_UID.replace('-', "_");
        let pod_cgroup = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{CHECKOUT_ID}.scope\n"
        );
        for (pid, comm, cgroup) in [
            (IN_POD, "java", pod_cgroup.as_str()),
            (ON_HOST, "nginx", "0::/system.slice/nginx.service\n"),
        ] {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        }
        FakeProc(root)
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn index_with_checkout() -> SharedIndex {
    let index = SharedIndex::default();
    index.write().apply(meta(&json(DEPLOYMENT)));
    index
}

#[test]
fn a_process_in_a_pod_is_named_by_the_kubernetes_rule() {
    let root = FakeProc::new("named");
    let mut os = Procfs::new(&root.0).with_pods(index_with_checkout());
    let m = os.process(IN_POD);
    assert_eq!(
        m.service, "checkout",
        "app.kubernetes.io/name, not the comm"
    );
    assert_eq!(m.container_id.as_deref(), Some(CHECKOUT_ID));
    let k = m.k8s.expect("the pod");
    assert_eq!(k.pod.namespace, "shop");
    assert_eq!(k.container.as_deref(), Some("checkout"));
    let host = os.process(ON_HOST);
    assert_eq!((host.service.as_str(), host.k8s), ("nginx", None));
    // Without --kubernetes: as before, the process name.
    let mut local = Procfs::new(&root.0);
    let m = local.process(IN_POD);
    assert_eq!((m.service.as_str(), m.k8s), ("java", None));
    assert_eq!(m.pod_uid.as_deref(), Some(CHECKOUT_UID));
}

/// One complete inbound exchange on a fresh fd of `pid`.
fn exchange(pid: u32, fd: i32, ts: u64) -> Vec<Event<'static>> {
    let origin = |dt: u64| Origin {
        pid,
        tid: pid,
        ts_ns: ts + dt,
    };
    let data = |dt, direction, syscall, bytes: &'static [u8]| {
        Event::Data(Data {
            origin: origin(dt),
            fd,
            direction,
            syscall,
            head_start: true,
            capped: false,
            iov_cut: false,
            lost_before: false,
            read_fault: false,
            total_len: bytes.len() as u64,
            data: Payload::Shared(Bytes::from_static(bytes)),
        })
    };
    vec![
        Event::Accept(Connection {
            origin: origin(0),
            fd,
            peer: Some(SocketAddr::from(([10, 244, 1, 7], 41000))),
            unix: false,
        }),
        data(
            1_000,
            Direction::Ingress,
            Syscall::Read,
            b"GET /cart HTTP/1.1\r\nHost: checkout\r\n\r\n",
        ),
        data(
            2_000,
            Direction::Egress,
            Syscall::Write,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        Event::Close {
            origin: origin(3_000),
            fd,
        },
    ]
}

/// A fake `/proc`, an empty pod index, `Procfs` over both, and a pipeline.
fn setup(test: &str) -> (FakeProc, SharedIndex, Procfs, Pipeline) {
    let root = FakeProc::new(test);
    let index = SharedIndex::default();
    let os = Procfs::new(&root.0).with_pods(index.clone());
    let p = Pipeline::new(
        ParseOptions::default(),
        Limits::default(),
        Config::default(),
        Box::new(RandomIds),
        0,
    );
    (root, index, os, p)
}

/// (service, pod name) of the spans of `pid` produced by one exchange.
fn spans(p: &mut Pipeline, os: &mut Procfs, pid: u32, fd: i32) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for ev in exchange(pid, fd, u64::from(fd as u32) * 1_000_000) {
        p.on_event(&ev, os, &mut out);
    }
    out.iter()
        .filter_map(|r| match r {
            Record::Span(s) => Some((
                s.service.to_string(),
                s.k8s.as_ref().map(|k| k.pod.name.clone()),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_process_seen_before_its_pod_gets_it_on_refresh() {
    let (_root, index, mut os, mut p) = setup("refresh");
    assert_eq!(spans(&mut p, &mut os, IN_POD, 5), [("java".into(), None)]);

    // The watcher lists the pod; the main loop sees the generation move.
    index.write().apply(meta(&json(DEPLOYMENT)));
    assert_eq!(
        spans(&mut p, &mut os, IN_POD, 6),
        [("java".into(), None)],
        "cached until refreshed"
    );
    p.refresh_metadata(&mut os);
    let pod = Some("checkout-7d9f8b6c5d-x2x7q".to_owned());
    assert_eq!(
        spans(&mut p, &mut os, IN_POD, 7),
        [("checkout".into(), pod.clone())]
    );

    // The pod deleted while the process lingers: it keeps what it had.
    index.write().delete(CHECKOUT_UID);
    p.refresh_metadata(&mut os);
    assert_eq!(
        spans(&mut p, &mut os, IN_POD, 8),
        [("checkout".into(), pod)]
    );
}

#[test]
fn service_name_flag_wins_and_exclusions_stand_after_a_refresh() {
    let (_root, index, mut os, mut p) = setup("override");
    p.set_service_name(Some("shop".into()));
    p.set_filter(ProcessFilter {
        exclude_comm: vec!["nginx".into()],
        ..ProcessFilter::default()
    });
    assert_eq!(spans(&mut p, &mut os, IN_POD, 5), [("shop".into(), None)]);
    assert!(spans(&mut p, &mut os, ON_HOST, 5).is_empty());
    assert_eq!(p.take_excluded().0, [ON_HOST]);

    index.write().apply(meta(&json(DEPLOYMENT)));
    p.refresh_metadata(&mut os);
    let pod = Some("checkout-7d9f8b6c5d-x2x7q".to_owned());
    assert_eq!(spans(&mut p, &mut os, IN_POD, 6), [("shop".into(), pod)]);
    assert!(
        spans(&mut p, &mut os, ON_HOST, 6).is_empty(),
        "still left out"
    );
    assert_eq!(p.take_excluded(), (vec![], vec![]));
}

#[test]
fn json_records_carry_the_k8s_object_only_when_known() {
    let (_root, index, mut os, mut p) = setup("json");
    index.write().apply(meta(&json(DEPLOYMENT)));
    let mut out = Vec::new();
    for pid in [IN_POD, ON_HOST] {
        for ev in exchange(pid, 5, 1_000_000) {
            p.on_event(&ev, &mut os, &mut out);
        }
    }
    let lines: Vec<serde_json::Value> = out
        .iter()
        .map(|r| serde_json::from_str(&render(r, Format::Json, false)).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["k8s"],
        serde_json::json!({"namespace": "shop", "pod": "checkout-7d9f8b6c5d-x2x7q",
            "container": "checkout", "workload_kind": "Deployment", "workload": "checkout"})
    );
    assert_eq!(lines[0]["service"], "checkout");
    assert_eq!(lines[0]["container_id"], CHECKOUT_ID);
    assert_eq!(lines[1]["service"], "nginx");
    assert!(lines[1].get("k8s").is_none(), "{}", lines[1]);
}
