use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn snapshot() -> Snapshot {
    let mut s = Snapshot::default();
    s.summary.inbound = 7;
    s.summary.outbound = 5;
    s.summary.breaks.missing = 2;
    s.summary.breaks.mismatch = 1;
    s.summary.capture.records = 1234;
    s.summary.capture.ringbuf_drops = 3;
    s.summary.capture.unread_socket_calls = 6;
    s.summary.capture.connections = 42;
    s.summary.capture.connections_evicted_overflow = 9;
    s.processes = 4;
    s.go_processes = 1;
    s.export_dropped = 11;
    s
}

#[test]
fn readyz_follows_the_probes_and_healthz_the_main_loop() {
    let h = Health::default();
    assert_eq!(
        h.answer(&Method::GET, "/readyz").0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.answer(&Method::GET, "/healthz").0, StatusCode::OK);
    h.set_ready();
    assert_eq!(h.answer(&Method::GET, "/readyz").0, StatusCode::OK);
    // The main loop stopped publishing.
    let past = Instant::now().checked_sub(STALE_AFTER + Duration::from_secs(1));
    if let Some(past) = past {
        h.state.lock().unwrap().published = past;
        let (status, _, body) = h.answer(&Method::GET, "/healthz");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("silent"), "{body}");
        h.publish(Snapshot::default());
        assert_eq!(h.answer(&Method::GET, "/healthz").0, StatusCode::OK);
    }
}

#[test]
fn other_paths_and_methods_are_refused() {
    let h = Health::default();
    assert_eq!(h.answer(&Method::GET, "/").0, StatusCode::NOT_FOUND);
    assert_eq!(h.answer(&Method::GET, "/metricsx").0, StatusCode::NOT_FOUND);
    assert_eq!(
        h.answer(&Method::POST, "/healthz").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[test]
fn metrics_carry_every_counter_with_its_labels() {
    let text = render_metrics(&snapshot(), true).unwrap();
    for line in [
        "observer_ready 1",
        "observer_requests_total{direction=\"inbound\"} 7",
        "observer_requests_total{direction=\"outbound\"} 5",
        "observer_propagation_breaks_total{reason=\"missing\"} 2",
        "observer_propagation_breaks_total{reason=\"partial\"} 0",
        "observer_propagation_breaks_total{reason=\"mismatch\"} 1",
        "observer_records_total 1234",
        "observer_capture_losses_total{kind=\"ringbuf_drops\"} 3",
        "observer_unread_socket_calls_total 6",
        "observer_connections 42",
        "observer_connections_evicted_total{cause=\"overflow\"} 9",
        "observer_processes 4",
        "observer_go_processes 1",
        "observer_export_dropped_total 11",
        "# TYPE observer_propagation_breaks counter",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    let not_ready = render_metrics(&Snapshot::default(), false).unwrap();
    assert!(
        not_ready.lines().any(|l| l == "observer_ready 0"),
        "{not_ready}"
    );
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_server_answers_over_http() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = Arc::new(Health::default());
    tokio::spawn(serve(listener, Arc::clone(&health)));
    let r = get(addr, "/readyz").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    health.set_ready();
    health.publish(snapshot());
    let r = get(addr, "/readyz").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get(addr, "/metrics").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("application/openmetrics-text"), "{r}");
    assert!(r.contains("observer_records_total 1234"), "{r}");
}

#[tokio::test]
async fn binding_a_taken_port_names_the_address() {
    let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = first.local_addr().unwrap();
    let err = bind(addr).await.unwrap_err().to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
}
