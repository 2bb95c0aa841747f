//! The readable line of each record (`--output pretty`).

use std::fmt::Write as _;

use crate::record::{BreakReason, Record};

fn opt<S: std::ops::Deref<Target = str>>(v: &Option<S>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn paint(s: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// The readable line of a record.
pub(super) fn line(record: &Record, colour: bool) -> String {
    match record {
        Record::Ready {
            pids,
            all,
            probes,
            hooks,
            go_pids,
            ..
        } => {
            let what = if *all {
                "all processes".to_owned()
            } else {
                format!("pid {pids:?}")
            };
            let go = if go_pids.is_empty() {
                String::new()
            } else {
                format!("; Go programs {go_pids:?}, attributed without the thread rule")
            };
            format!(
                "{} observing {what} with {probes} probes attached ({hooks} hooks{go})",
                paint("READY", "1;32", colour)
            )
        }
        Record::Span(s) => {
            let mut line = format!(
                "{} {:<6} {}[{}/{}] {} {} -> {} {:.1}ms peer {} trace {} span {}",
                paint("SPAN ", "36", colour),
                s.kind.as_str(),
                s.service,
                s.pid,
                s.tid,
                opt(&s.method),
                opt(&s.path),
                s.status,
                s.duration_ms,
                opt(&s.peer),
                opt(&s.trace_id),
                s.span_id,
            );
            if let Some(p) = &s.parent_span_id {
                let _ = write!(line, " parent {p}");
            }
            if let Some(a) = s.attribution {
                let _ = write!(line, " ({})", a.as_str());
            }
            line
        }
        Record::Break(b) => {
            let inbound = match (&b.inbound.trace_id, &b.inbound.method, &b.inbound.path) {
                (Some(t), Some(m), Some(p)) => format!("serving trace {t} ({m} {p})"),
                (Some(t), _, _) => format!("serving trace {t}"),
                _ => "serving a traced request".to_owned(),
            };
            // "GET http://inventory:8080/stock", plus the peer address when it says more.
            let host = b.outbound.host.as_deref();
            let mut dest = format!(
                "{} http://{}{}",
                b.outbound.method,
                host.or(b.outbound.peer.as_deref()).unwrap_or("?"),
                b.outbound.path
            );
            if let Some(peer) = &b.outbound.peer
                && host.is_some_and(|h| h != peer.as_str())
            {
                let _ = write!(dest, " ({peer})");
            }
            let what = match b.reason {
                BreakReason::Missing => "without the trace headers".to_owned(),
                BreakReason::Mismatch => format!(
                    "with another trace {}",
                    b.outbound.trace_id.as_deref().unwrap_or("?")
                ),
                BreakReason::Partial => format!("without {}", b.missing.join(", ")),
            };
            format!(
                "{} {} (pid {}, tid {}) {inbound} called {dest} {what} [{}, attributed by {}]",
                paint("BREAK", "1;31", colour),
                b.service,
                b.pid,
                b.tid,
                b.reason.as_str(),
                b.attribution.as_str()
            )
        }
        Record::Summary(s) => format!(
            "{} inbound {} outbound {} propagated {} breaks: missing {} partial {} mismatch {}; unknown {} unattributed {} untraced {} background {}; records {} dropped {} truncated {} unparsable {}",
            paint("SUMMARY", "1", colour),
            s.inbound,
            s.outbound,
            s.propagated,
            s.breaks.missing,
            s.breaks.partial,
            s.breaks.mismatch,
            s.unknown,
            s.unattributed,
            s.untraced,
            s.background,
            s.capture.records,
            s.capture.ringbuf_drops,
            s.capture.truncated_heads,
            s.capture.unparsable_heads,
        ),
    }
}
