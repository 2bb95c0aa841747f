//! The real watcher against a fake API server (hyper on 127.0.0.1): a PodList for the list
//! request, then newline-delimited watch events pushed by the test.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::pod_tests::{CHECKOUT_ID, CHECKOUT_UID, json as fixture_json};
use super::{SharedIndex, watch};
use crate::testutil::eventually;

const DEPLOYMENT: &str = include_str!("../../tests/fixtures/k8s/deployment-pod.json");
const STATEFULSET: &str = include_str!("../../tests/fixtures/k8s/statefulset-pod.json");
const DAEMONSET: &str = include_str!("../../tests/fixtures/k8s/daemonset-pod.json");

/// What the fake API server saw and serves.
struct Fake {
    /// Path and query of every request.
    requests: Mutex<Vec<String>>,
    list: Value,
    /// List requests to refuse (403) before serving the list.
    refuse: Mutex<usize>,
    /// The first watch streams what the test sends here; later ones stay silent.
    events: Mutex<Option<mpsc::UnboundedReceiver<Value>>>,
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(status: u16, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .expect("a valid response")
}

fn full(v: &Value) -> Body {
    Full::new(Bytes::from(v.to_string())).boxed()
}

fn handle(fake: &Fake, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    let uri = req.uri().to_string();
    fake.requests.lock().unwrap().push(uri);
    let query = req.uri().query().unwrap_or_default();
    if req.uri().path() != "/api/v1/pods" {
        return respond(404, full(&json!({"kind": "Status", "code": 404})));
    }
    if query_value(query, "watch").as_deref() == Some("true") {
        let events = fake.events.lock().unwrap().take();
        let stream = futures_util::stream::unfold(events, |rx| async move {
            let mut rx = rx?;
            let ev = rx.recv().await?;
            let line = format!("{ev}\n");
            Some((Ok(Frame::data(Bytes::from(line))), Some(rx)))
        });
        let silent = futures_util::stream::pending();
        let body = futures_util::StreamExt::chain(stream, silent);
        return respond(200, StreamBody::new(body).boxed());
    }
    let mut refuse = fake.refuse.lock().unwrap();
    if *refuse > 0 {
        *refuse -= 1;
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "pods is forbidden: User \"system:serviceaccount:observer:observer\" cannot list resource \"pods\"",
            "reason": "Forbidden", "code": 403});
        return respond(403, full(&status));
    }
    respond(200, full(&fake.list))
}

/// Serves `fake` on 127.0.0.1 (any port); returns the address.
async fn serve(fake: Arc<Fake>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = Arc::clone(&fake);
            let service = hyper::service::service_fn(move |req| {
                let r = handle(&fake, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn client(addr: std::net::SocketAddr) -> kube::Client {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// The decoded value of `key` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(if c == b'+' { b' ' } else { c });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pod_list(items: &[&str]) -> Value {
    let items: Vec<Value> = items.iter().map(|f| fixture_json(f)).collect();
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "48300"},
           "items": items})
}

fn fake(list: Value, refuse: usize) -> (Arc<Fake>, mpsc::UnboundedSender<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake {
        requests: Mutex::new(Vec::new()),
        list,
        refuse: Mutex::new(refuse),
        events: Mutex::new(Some(rx)),
    });
    (fake, tx)
}

#[tokio::test]
async fn lists_then_watches_only_this_nodes_pods() {
    let (fake, events) = fake(pod_list(&[DEPLOYMENT, STATEFULSET]), 0);
    let addr = serve(Arc::clone(&fake)).await;
    let index = SharedIndex::default();
    let task = watch::spawn(client(addr), "node-a".into(), index.clone());

    eventually("the listed pods", 10, || index.read().len() == 2).await;
    let k = index.lookup(None, Some(CHECKOUT_ID)).expect("listed pod");
    assert_eq!(k.container.as_deref(), Some("checkout"));
    assert_eq!(k.service_name().as_deref(), Some("checkout"));
    let gen_listed = index.generation();

    // A pod scheduled later.
    let mut added = fixture_json(DAEMONSET);
    added["metadata"]["resourceVersion"] = json!("48301");
    events
        .send(json!({"type": "ADDED", "object": added}))
        .unwrap();
    let ds_uid = "4fa70491-b97b-4978-8668-6fb6a2d3bb68";
    eventually("the added pod", 10, || {
        index.lookup(Some(ds_uid), None).is_some()
    })
    .await;
    assert!(index.generation() > gen_listed);

    // A pod deleted.
    let mut deleted = fixture_json(DEPLOYMENT);
    deleted["metadata"]["resourceVersion"] = json!("48302");
    events
        .send(json!({"type": "DELETED", "object": deleted}))
        .unwrap();
    eventually("the deleted pod gone", 10, || {
        index.lookup(Some(CHECKOUT_UID), None).is_none()
    })
    .await;
    assert_eq!(index.read().len(), 2);

    let requests = fake.requests.lock().unwrap().clone();
    assert!(requests.len() >= 2, "{requests:?}");
    for r in &requests {
        let (path, query) = r.split_once('?').expect("a query");
        assert_eq!(path, "/api/v1/pods", "all pods of the node, any namespace");
        assert_eq!(
            query_value(query, "fieldSelector").as_deref(),
            Some("spec.nodeName=node-a"),
            "{r}"
        );
    }
    let watch = requests
        .iter()
        .find_map(|r| {
            let q = r.split_once('?')?.1;
            (query_value(q, "watch").as_deref() == Some("true")).then_some(q)
        })
        .expect("a watch request");
    assert_eq!(
        query_value(watch, "resourceVersion").as_deref(),
        Some("48300"),
        "the watch continues from the list"
    );
    task.abort();
}

#[tokio::test]
async fn a_refused_list_is_retried_and_the_observer_keeps_going() {
    let (fake, _events) = fake(pod_list(&[STATEFULSET]), 1);
    let addr = serve(Arc::clone(&fake)).await;
    let index = SharedIndex::default();
    let task = watch::spawn(client(addr), "node-a".into(), index.clone());
    eventually("the list after the retry", 10, || index.read().len() == 1).await;
    assert!(fake.requests.lock().unwrap().len() >= 2);
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test]
async fn an_unreachable_api_server_leaves_the_index_empty_without_ending() {
    // A port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let index = SharedIndex::default();
    let task = watch::spawn(client(addr), "node-a".into(), index.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "the watcher retries, it does not end");
    assert!(index.read().is_empty());
    assert_eq!(index.generation(), 0);
    task.abort();
}

#[test]
fn query_decoding() {
    assert_eq!(
        query_value("a=1&fieldSelector=spec.nodeName%3Dnode-a", "fieldSelector").as_deref(),
        Some("spec.nodeName=node-a")
    );
    assert_eq!(query_value("a=1", "b"), None);
    assert_eq!(percent_decode("x%2"), "x%2");
}
