//! Rendering records: one JSON object per line (`--output json`, the stable contract of
//! [`crate::record`]) or one readable line (`--output pretty`, coloured only on a terminal); and
//! the [`Sink`] that writes them to stdout.

use crate::record::Record;

mod json;
mod pretty;
mod sink;

pub use self::sink::Sink;

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Pretty,
    Json,
}

/// Renders one record as one line (without the newline).
pub fn render(record: &Record, format: Format, colour: bool) -> String {
    let mut line = Vec::new();
    render_into(record, format, colour, &mut line);
    String::from_utf8_lossy(&line).into_owned()
}

/// Appends one record's line (without the newline) to `out`: the observer renders every record
/// into one reused buffer.
pub fn render_into(record: &Record, format: Format, colour: bool, out: &mut Vec<u8>) {
    match format {
        Format::Json if let Record::Span(s) = record => json::span(s, out),
        Format::Json => {
            let start = out.len();
            if let Err(e) = serde_json::to_writer(&mut *out, record) {
                // Only a writer's error can fail this (the records hold no maps with non-string
                // keys), and a `Vec` does not fail: still, never half a line.
                out.truncate(start);
                let error = serde_json::Value::String(e.to_string());
                out.extend_from_slice(
                    format!("{{\"type\":\"error\",\"error\":{error}}}").as_bytes(),
                );
            }
        }
        Format::Pretty => out.extend_from_slice(pretty::line(record, colour).as_bytes()),
    }
}
