//! Sending OTLP requests: gRPC (tonic) or http/protobuf (hyper), with the configured headers and
//! per-request timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic::transport::Channel;

use super::config::{ExportConfig, Protocol, SignalConfig};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("gRPC: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("invalid endpoint {0}")]
    Endpoint(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
}

/// One signal's way out.
enum Way {
    Grpc(Channel),
    Http(Box<Client<HttpConnector, Full<Bytes>>>),
    Invalid(String),
}

struct Target {
    way: Way,
    cfg: SignalConfig,
}

pub struct Transport {
    traces: Target,
    logs: Target,
    metrics: Target,
}

fn target(cfg: &SignalConfig) -> Target {
    let way = match cfg.protocol {
        // Connected on first use, reconnected after failures: a backend that is down at start
        // or goes away is not an error until something is sent.
        Protocol::Grpc => match Channel::from_shared(cfg.endpoint.clone()) {
            Ok(ep) => Way::Grpc(ep.connect_timeout(cfg.timeout).connect_lazy()),
            Err(e) => Way::Invalid(format!("{}: {e}", cfg.endpoint)),
        },
        Protocol::HttpProtobuf => {
            Way::Http(Box::new(Client::builder(TokioExecutor::new()).build_http()))
        }
    };
    Target {
        way,
        cfg: cfg.clone(),
    }
}

fn grpc_request<T>(msg: T, cfg: &SignalConfig) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    for (k, v) in &cfg.headers {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
            tonic::metadata::MetadataValue::try_from(v.as_str()),
        ) {
            req.metadata_mut().insert(k, v);
        }
    }
    req.set_timeout(cfg.timeout);
    req
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    cfg: &SignalConfig,
    body: Vec<u8>,
) -> Result<(), ExportError> {
    let mut req =
        hyper::Request::post(&cfg.endpoint).header("content-type", "application/x-protobuf");
    for (k, v) in &cfg.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ExportError::Endpoint(format!("{}: {e}", cfg.endpoint)))?;
    let send = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| ExportError::Http(e.to_string()))?;
        let status = resp.status();
        // Drain the body so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Status(status.as_u16()))
        }
    };
    tokio::time::timeout(cfg.timeout, send)
        .await
        .map_err(|_| ExportError::Timeout(cfg.timeout))?
}

/// Sends one request to a target: the generated gRPC client of its signal, or an HTTP POST.
macro_rules! send {
    ($target:expr, $req:expr, $client:ident) => {{
        let t: &Target = $target;
        match &t.way {
            Way::Grpc(ch) => {
                let mut client = $client::new(ch.clone());
                let call = client.export(grpc_request($req, &t.cfg));
                tokio::time::timeout(t.cfg.timeout, call)
                    .await
                    .map_err(|_| ExportError::Timeout(t.cfg.timeout))??;
                Ok(())
            }
            Way::Http(c) => post(c, &t.cfg, $req.encode_to_vec()).await,
            Way::Invalid(e) => Err(ExportError::Endpoint(e.clone())),
        }
    }};
}

impl Transport {
    pub fn new(cfg: &ExportConfig) -> Transport {
        Transport {
            traces: target(&cfg.traces),
            logs: target(&cfg.logs),
            metrics: target(&cfg.metrics),
        }
    }

    pub async fn traces(&mut self, req: ExportTraceServiceRequest) -> Result<(), ExportError> {
        send!(&self.traces, req, TraceServiceClient)
    }

    pub async fn logs(&mut self, req: ExportLogsServiceRequest) -> Result<(), ExportError> {
        send!(&self.logs, req, LogsServiceClient)
    }

    pub async fn metrics(&mut self, req: ExportMetricsServiceRequest) -> Result<(), ExportError> {
        send!(&self.metrics, req, MetricsServiceClient)
    }
}
