//! OTLP exporter settings from `--otlp-endpoint` and the standard environment variables
//! (`OTEL_EXPORTER_OTLP_*`, their per-signal variants, `OTEL_RESOURCE_ATTRIBUTES`). Pure: the
//! environment is passed in as a lookup function.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    fn env(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    /// Path appended to a generic http/protobuf endpoint.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

/// Where and how one signal is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    /// Full URL: for http/protobuf including the signal path.
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub traces: SignalConfig,
    pub logs: SignalConfig,
    pub metrics: SignalConfig,
    /// From OTEL_RESOURCE_ATTRIBUTES, added to every resource.
    pub resource: Vec<(String, String)>,
}

impl ExportConfig {
    pub fn signal(&self, s: Signal) -> &SignalConfig {
        match s {
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: unknown OTLP protocol {value:?} (use grpc or http/protobuf)")]
    Protocol { var: String, value: String },
    #[error("{var}: not a timeout in milliseconds: {value:?}")]
    Timeout { var: String, value: String },
    #[error(
        "{var}: {value:?} is not an http:// URL (https endpoints are not supported yet: use a local collector)"
    )]
    Endpoint { var: String, value: String },
    #[error("{var}: malformed key=value list: {value:?}")]
    List { var: String, value: String },
}

/// `k1=v1,k2=v2` with percent-decoding of keys and values (W3C Baggage-like, as the spec asks).
fn parse_list(var: &str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| ConfigError::List {
            var: var.into(),
            value: value.into(),
        })?;
        let (k, v) = (percent_decode(k.trim()), percent_decode(v.trim()));
        if k.is_empty() {
            return Err(ConfigError::List {
                var: var.into(),
                value: value.into(),
            });
        }
        out.push((k, v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds the configuration; `None` when no endpoint is configured anywhere (no export).
pub fn from_env(
    cli_endpoint: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ExportConfig>, ConfigError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let generic = cli_endpoint
        .map(str::to_owned)
        .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let any_signal = Signal::ALL
        .iter()
        .any(|s| get(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", s.env())).is_some());
    if generic.is_none() && !any_signal {
        return Ok(None);
    }
    let protocol = |var: &str, default: Protocol| -> Result<Protocol, ConfigError> {
        match get(var).as_deref().map(str::trim) {
            None => Ok(default),
            Some("grpc") => Ok(Protocol::Grpc),
            Some("http/protobuf") => Ok(Protocol::HttpProtobuf),
            Some(other) => Err(ConfigError::Protocol {
                var: var.into(),
                value: other.into(),
            }),
        }
    };
    let generic_protocol = protocol("OTEL_EXPORTER_OTLP_PROTOCOL", Protocol::HttpProtobuf)?;
    let generic_headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(v) => parse_list("OTEL_EXPORTER_OTLP_HEADERS", &v)?,
        None => Vec::new(),
    };
    let timeout = |var: &str, default: Duration| -> Result<Duration, ConfigError> {
        match get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::Timeout {
                    var: var.into(),
                    value: v,
                }),
        }
    };
    let generic_timeout = timeout("OTEL_EXPORTER_OTLP_TIMEOUT", Duration::from_secs(10))?;

    let signal = |s: Signal| -> Result<SignalConfig, ConfigError> {
        let pvar = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", s.env());
        let protocol = protocol(&pvar, generic_protocol)?;
        let evar = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", s.env());
        let (endpoint, var) = match get(&evar) {
            // A per-signal endpoint is used as it is.
            Some(e) => (e.trim().to_owned(), evar),
            None => {
                let base = generic.clone().unwrap_or_else(|| match protocol {
                    Protocol::Grpc => "http://localhost:4317".into(),
                    Protocol::HttpProtobuf => "http://localhost:4318".into(),
                });
                let base = base.trim().trim_end_matches('/').to_owned();
                let e = match protocol {
                    Protocol::Grpc => base,
                    Protocol::HttpProtobuf => format!("{base}{}", s.http_path()),
                };
                (e, "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned())
            }
        };
        if !endpoint.starts_with("http://") {
            return Err(ConfigError::Endpoint {
                var,
                value: endpoint,
            });
        }
        let hvar = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", s.env());
        let mut headers = generic_headers.clone();
        if let Some(v) = get(&hvar) {
            for (k, v) in parse_list(&hvar, &v)? {
                headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
        }
        let timeout = timeout(
            &format!("OTEL_EXPORTER_OTLP_{}_TIMEOUT", s.env()),
            generic_timeout,
        )?;
        Ok(SignalConfig {
            endpoint,
            protocol,
            headers,
            timeout,
        })
    };
    let resource = match get("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => parse_list("OTEL_RESOURCE_ATTRIBUTES", &v)?,
        None => Vec::new(),
    };
    Ok(Some(ExportConfig {
        traces: signal(Signal::Traces)?,
        logs: signal(Signal::Logs)?,
        metrics: signal(Signal::Metrics)?,
        resource,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn nothing_configured_means_no_export() {
        assert_eq!(from_env(None, &env(&[])).unwrap(), None);
        assert_eq!(
            from_env(None, &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap(),
            None
        );
    }

    #[test]
    fn cli_endpoint_with_default_http_protobuf_appends_signal_paths() {
        let c = from_env(Some("http://collector:4318/"), &env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(c.traces.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.logs.endpoint, "http://collector:4318/v1/logs");
        assert_eq!(c.metrics.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(c.traces.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.traces.timeout, Duration::from_secs(10));
    }

    #[test]
    fn grpc_uses_the_endpoint_as_is_and_cli_wins_over_env() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let c = from_env(Some("http://127.0.0.1:4317"), &e)
            .unwrap()
            .unwrap();
        assert_eq!(c.traces.endpoint, "http://127.0.0.1:4317");
        assert_eq!(c.metrics.protocol, Protocol::Grpc);
    }

    #[test]
    fn per_signal_variables_override() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc,x-tenant=t1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:9999/custom",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "API-KEY=logs%20key"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, k8s.cluster.name=c%2C1",
            ),
        ]);
        let c = from_env(None, &e).unwrap().unwrap();
        assert_eq!(c.logs.endpoint, "http://logs:9999/custom");
        assert_eq!(
            c.logs.headers,
            vec![
                ("x-tenant".into(), "t1".into()),
                ("API-KEY".into(), "logs key".into())
            ]
        );
        assert_eq!(
            c.traces.headers,
            vec![
                ("api-key".into(), "abc".into()),
                ("x-tenant".into(), "t1".into())
            ]
        );
        assert_eq!(c.metrics.protocol, Protocol::Grpc);
        assert_eq!(c.metrics.endpoint, "http://c:4318");
        assert_eq!(c.traces.timeout, Duration::from_millis(100));
        assert_eq!(c.logs.timeout, Duration::from_millis(2500));
        assert_eq!(
            c.resource,
            vec![
                ("deployment.environment".into(), "prod".into()),
                ("k8s.cluster.name".into(), "c,1".into())
            ]
        );
    }

    #[test]
    fn only_a_signal_endpoint_enables_export_with_defaults_for_the_others() {
        let c = from_env(
            None,
            &env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://t:4318/v1/traces",
            )]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.traces.endpoint, "http://t:4318/v1/traces");
        assert_eq!(c.logs.endpoint, "http://localhost:4318/v1/logs");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = from_env(
            Some("http://c:4318"),
            &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL") && e.to_string().contains("grpc"),
            "{e}"
        );
        let e = from_env(
            Some("http://c:4318"),
            &env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Timeout { .. }));
        let e = from_env(Some("https://c:4318"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        let e = from_env(
            Some("http://c"),
            &env(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::List { .. }));
    }
}
