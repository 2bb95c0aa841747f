//! Records on stdout: rendered into one buffer that is written straight to stdout's fd (no
//! `Stdout` lock or line buffering) when it fills and after each drained batch.

use std::io::{IsTerminal as _, Write as _};
use std::os::fd::AsFd as _;

use super::{Format, render_into};
use crate::record::Record;

/// Most bytes of rendered records buffered before a write to stdout: a pipe's default capacity,
/// so that a write to a pipe being read does not wait for the reader.
const SINK_BUFFER: usize = 64 << 10;

/// Room kept in the buffer for the next line: a span is ~400 bytes.
const LINE_CAPACITY: usize = 1024;

/// Where the printed records go.
pub struct Sink {
    out: std::fs::File,
    format: Format,
    colour: bool,
    /// `--no-spans`: spans are not printed (they still go to OTLP).
    spans: bool,
    /// Rendered lines not yet written.
    buf: Vec<u8>,
    /// The first write error; records after it are dropped and it is returned by [`Sink::write`].
    failed: Option<std::io::Error>,
}

impl Sink {
    /// A sink on this process's stdout, coloured when it is a terminal and the format is
    /// `pretty`; without spans unless `spans`.
    pub fn stdout(format: Format, spans: bool) -> std::io::Result<Sink> {
        let stdout = std::io::stdout();
        let colour = format == Format::Pretty && stdout.is_terminal();
        let out = std::fs::File::from(stdout.as_fd().try_clone_to_owned()?);
        Ok(Sink::new(out, format, colour, spans))
    }

    pub fn new(out: std::fs::File, format: Format, colour: bool, spans: bool) -> Sink {
        Sink {
            out,
            format,
            colour,
            spans,
            buf: Vec::with_capacity(SINK_BUFFER),
            failed: None,
        }
    }

    /// Renders records, writing the buffer out when it fills; a write error is kept for
    /// [`Sink::write`]. Records are rendered while a batch is read, not after it, so that each
    /// is rendered while what it is made of is still in the cache.
    pub fn render(&mut self, records: &mut Vec<Record>) {
        for r in records.drain(..) {
            if self.failed.is_some() || (!self.spans && matches!(r, Record::Span(_))) {
                continue;
            }
            render_into(&r, self.format, self.colour, &mut self.buf);
            self.buf.push(b'\n');
            if self.buf.len() + LINE_CAPACITY > SINK_BUFFER {
                self.write_out();
            }
        }
    }

    fn write_out(&mut self) {
        if let Err(e) = self.out.write_all(&self.buf) {
            self.failed = Some(e);
        }
        self.buf.clear();
    }

    /// Renders `records` and writes out what is buffered; `Ok(false)` when stdout is gone (a
    /// closed pipe ends the run quietly).
    pub fn write(&mut self, records: &mut Vec<Record>) -> std::io::Result<bool> {
        self.render(records);
        if !self.buf.is_empty() && self.failed.is_none() {
            self.write_out();
        }
        match self.failed.take() {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Some(e) => Err(e),
            None => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::capture::hooks::Hooks;
    use crate::record::SummaryRecord;
    use crate::testutil::server_span;

    fn span() -> Record {
        Record::Span(server_span(1))
    }

    fn ready() -> Record {
        Record::Ready {
            pids: vec![42],
            all: false,
            probes: 7,
            hooks: Hooks::Socket,
            go_pids: Vec::new(),
            version: "0.1.0",
        }
    }

    /// Writes `records` through a sink into a pipe and returns what came out.
    fn through(spans: bool, records: Vec<Record>) -> String {
        let (mut r, w) = std::io::pipe().unwrap();
        let mut sink = Sink::new(
            std::fs::File::from(std::os::fd::OwnedFd::from(w)),
            Format::Json,
            false,
            spans,
        );
        let mut records = records;
        assert!(sink.write(&mut records).unwrap());
        assert!(records.is_empty());
        drop(sink);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn one_line_per_record_and_no_spans_when_asked() {
        let all = through(
            true,
            vec![ready(), span(), Record::Summary(SummaryRecord::default())],
        );
        let types: Vec<String> = all
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
            .collect();
        assert_eq!(types, ["\"ready\"", "\"span\"", "\"summary\""]);
        let quiet = through(
            false,
            vec![ready(), span(), Record::Summary(SummaryRecord::default())],
        );
        assert_eq!(quiet.lines().count(), 2, "{quiet}");
        assert!(!quiet.contains("\"span\""), "{quiet}");
    }

    #[test]
    fn a_closed_reader_ends_the_run_quietly() {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let mut sink = Sink::new(
            std::fs::File::from(std::os::fd::OwnedFd::from(w)),
            Format::Pretty,
            false,
            true,
        );
        // The test binary ignores SIGPIPE, as Rust programs do: the write fails with EPIPE.
        assert!(!sink.write(&mut vec![ready()]).unwrap());
    }
}
