//! observer: transparent eBPF observer of HTTP/1.1 trace-context propagation.
//!
//! Sources -> transforms -> sinks:
//! * source: [`capture`] loads the kernel programs and decodes ring-buffer records into
//!   [`capture::record::Event`]s;
//! * transforms (pure, no I/O): [`http::tracker`] reassembles heads and pairs exchanges,
//!   [`correlate`] relates inbound to outbound requests and finds propagation breaks,
//!   [`pipeline`] joins them and turns findings into records ([`record`], the model of what is
//!   reported);
//! * metadata: [`procinfo`] reads `/proc` ([`cgroup`] for containers, [`runtime`] for the
//!   language runtime of the executable), [`k8s`] adds the pod from the Kubernetes API
//!   (`--kubernetes`);
//! * sinks: [`output`] renders records as JSON lines or readable lines; [`export`] sends them over
//!   OTLP; [`health`] serves their counters on `/metrics`.
//!
//! Data flows one way, capture -> http -> correlate -> pipeline -> record -> output, export,
//! health, and so do the imports: a module imports those upstream of it, and the record model
//! that the pipeline fills and the sinks read; nothing imports back up.
pub mod allocator;
pub mod capture;
pub mod cgroup;
pub mod correlate;
pub mod export;
pub mod health;
pub mod http;
pub mod k8s;
pub mod output;
pub mod pipeline;
pub mod procinfo;
pub mod record;
pub mod runtime;
#[cfg(test)]
mod testutil;
pub mod text;
pub mod tracectx;
