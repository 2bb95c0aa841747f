//! Parsing of one HTTP/1.x message head with `httparse`.
//!
//! Only what the observer may report is kept: method, path (the query string only when asked
//! for), Host, User-Agent, the status, framing headers (to skip bodies) and the trace context.
//! Every other header value (Cookie, Authorization, ...) is dropped here and never stored.

use std::borrow::Cow;
use std::sync::Arc;

use foldhash::HashSet;

use crate::text::{SharedStr, is_name};
use crate::tracectx::{TraceContext, TraceHeader, TraceHeaders};

/// Most header lines parsed in one head; more makes the head unparsable (reported unknown).
pub const MAX_HEADERS: usize = 256;
/// Longest path kept; longer ones are cut at a character boundary and end with `...`.
pub const MAX_PATH: usize = 1024;
/// Longest Host / User-Agent kept.
pub const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: SharedStr,
    /// Path without its query string unless `ParseOptions::keep_query`.
    pub path: SharedStr,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub host: Option<SharedStr>,
    pub user_agent: Option<SharedStr>,
    pub trace: TraceContext,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: u8,
    pub body: Body,
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `Content-Length: n` (0 for requests without framing headers).
    Length(u64),
    Chunked,
    /// A response without framing: the body runs to the end of the connection.
    UntilClose,
}

/// A parsed head. A request head is allocated once, here, and shared by the events and records
/// made from it (it is ~0.5 KiB: moving it by value cost a copy at each step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Request(Arc<RequestHead>),
    Response(ResponseHead),
}

/// Why a head could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("not an HTTP/1.x head: {0}")]
    Syntax(&'static str),
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("conflicting or invalid Content-Length")]
    BadLength,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole head of `len` bytes.
    Complete {
        head: Head,
        len: usize,
    },
    /// A valid beginning; more bytes are needed.
    Partial,
    Invalid(HeadError),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Keep the query string of request paths (`--capture-query`).
    pub keep_query: bool,
}

/// Host and User-Agent texts of recent heads, shared by the heads that carry the same value: a
/// service sees few distinct ones, and each head would otherwise allocate its own copy. At most
/// [`TEXT_CACHE`] texts (of at most [`MAX_TEXT`] bytes); it starts over when full.
#[derive(Debug, Default)]
pub struct TextCache {
    texts: HashSet<Known>,
}

/// A cached text, found by its bytes: a hit needs no UTF-8 or printable check (the text passed
/// them when it was cached).
#[derive(Debug, PartialEq, Eq)]
struct Known(SharedStr);

impl std::hash::Hash for Known {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, for `Borrow<[u8]>`.
        self.0.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Known {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Most texts a [`TextCache`] holds.
pub const TEXT_CACHE: usize = 128;

impl TextCache {
    /// [`text`], shared with an earlier head when it carried the same value.
    fn text(&mut self, value: &[u8]) -> SharedStr {
        if let Some(known) = self.texts.get(clip(value)) {
            return known.0.clone();
        }
        let Some(s) = printable_text(value) else {
            return text(value);
        };
        let new = SharedStr::from(s);
        if self.texts.len() >= TEXT_CACHE {
            self.texts.clear();
        }
        self.texts.insert(Known(new.clone()));
        new
    }
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8], opts: ParseOptions) -> Parsed {
    parse_with(buf, opts, &mut TextCache::default())
}

/// [`parse`], sharing Host and User-Agent texts through `cache`.
pub fn parse_with(buf: &[u8], opts: ParseOptions, cache: &mut TextCache) -> Parsed {
    // Left uninitialised: httparse fills what it uses (zeroing 256 headers costs more than most
    // parses).
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let config = httparse::ParserConfig::default();
    if buf.starts_with(b"HTTP/") {
        let mut resp = httparse::Response::new(&mut []);
        match config.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let version = resp.version.unwrap_or(1);
                let mut framing = Framing::default();
                for h in resp.headers.iter() {
                    if let Some(name) = Name::of(h.name) {
                        framing.add(name, h.value);
                    }
                }
                match framing.body(false, status) {
                    Ok(body) => Parsed::Complete {
                        head: Head::Response(ResponseHead {
                            status,
                            version,
                            body,
                        }),
                        len,
                    },
                    Err(e) => Parsed::Invalid(e),
                }
            }
            Ok(httparse::Status::Partial) => Parsed::Partial,
            Err(e) => Parsed::Invalid(map_err(e)),
        }
    } else {
        let mut req = httparse::Request::new(&mut []);
        match config.parse_request_with_uninit_headers(&mut req, buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => {
                let (Some(method), Some(path)) = (req.method, req.path) else {
                    return Parsed::Invalid(HeadError::Syntax("request line"));
                };
                // One pass over the header lines: each name is looked up once.
                let mut framing = Framing::default();
                let mut host = None;
                let mut user_agent = None;
                let mut trace = TraceHeaders::default();
                for h in req.headers.iter() {
                    match Name::of(h.name) {
                        None => {}
                        Some(Name::Host) => {
                            host = host.or_else(|| Some(cache.text(h.value)));
                        }
                        Some(Name::UserAgent) => {
                            user_agent = user_agent.or_else(|| Some(cache.text(h.value)));
                        }
                        Some(Name::Trace(t)) => trace.add(t, h.value),
                        Some(name) => framing.add(name, h.value),
                    }
                }
                let body = match framing.body(true, 0) {
                    Ok(b) => b,
                    Err(e) => return Parsed::Invalid(e),
                };
                let trace = trace.context();
                let head = Arc::new(RequestHead {
                    method: SharedStr::method(method),
                    path: SharedStr::from(&*clean_path(path, opts.keep_query)),
                    version: req.version.unwrap_or(1),
                    host,
                    user_agent,
                    trace,
                    body,
                });
                Parsed::Complete {
                    head: Head::Request(head),
                    len,
                }
            }
            Ok(httparse::Status::Partial) => Parsed::Partial,
            Err(e) => Parsed::Invalid(map_err(e)),
        }
    }
}

fn map_err(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::HeaderName => HeadError::Syntax("header name"),
        httparse::Error::HeaderValue => HeadError::Syntax("header value"),
        httparse::Error::NewLine => HeadError::Syntax("line ending"),
        httparse::Error::Status => HeadError::Syntax("status"),
        httparse::Error::Token => HeadError::Syntax("token"),
        httparse::Error::Version => HeadError::Syntax("version"),
    }
}

/// The header lines a head is read for, by name (ASCII case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Host,
    UserAgent,
    ContentLength,
    TransferEncoding,
    Trace(TraceHeader),
}

impl Name {
    fn of(name: &str) -> Option<Name> {
        // Most names are none of these: the length rules them out before any byte is compared.
        let b = name.as_bytes();
        match b.len() {
            4 if is_name(b, b"host") => Some(Name::Host),
            10 if is_name(b, b"user-agent") => Some(Name::UserAgent),
            14 if is_name(b, b"content-length") => Some(Name::ContentLength),
            17 if is_name(b, b"transfer-encoding") => Some(Name::TransferEncoding),
            _ => TraceHeader::from_name(name).map(Name::Trace),
        }
    }
}

/// Body framing per RFC 9112 section 6.3, gathered from the framing header lines.
#[derive(Debug, Default)]
struct Framing {
    length: Option<u64>,
    chunked: bool,
    bad_length: bool,
}

impl Framing {
    /// A `Content-Length` or `Transfer-Encoding` line; other names are ignored.
    fn add(&mut self, name: Name, value: &[u8]) {
        match name {
            Name::TransferEncoding => {
                self.chunked |= value
                    .split(|&b| b == b',')
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Name::ContentLength => {
                let v = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                match (v, self.length) {
                    (None, _) => self.bad_length = true,
                    (Some(v), Some(l)) if l != v => self.bad_length = true,
                    (Some(v), _) => self.length = Some(v),
                }
            }
            _ => {}
        }
    }

    fn body(self, request: bool, status: u16) -> Result<Body, HeadError> {
        if self.bad_length {
            return Err(HeadError::BadLength);
        }
        if !request && (status < 200 || status == 204 || status == 304) {
            return Ok(Body::Length(0));
        }
        Ok(match (self.chunked, self.length) {
            (true, _) => Body::Chunked,
            (false, Some(n)) => Body::Length(n),
            (false, None) if request => Body::Length(0),
            (false, None) => Body::UntilClose,
        })
    }
}

/// Length of a whole chunked body (chunks, last chunk, trailer section and its empty line) at
/// the start of `buf`; `None` when it does not end within `buf` or is not well formed.
pub fn chunked_len(buf: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    loop {
        // httparse takes an empty size line for 0.
        if !buf.get(at)?.is_ascii_hexdigit() {
            return None;
        }
        let Ok(httparse::Status::Complete((n, size))) = httparse::parse_chunk_size(&buf[at..])
        else {
            return None;
        };
        at += n;
        if size == 0 {
            break;
        }
        at = at.checked_add(usize::try_from(size).ok()?)?;
        if buf.get(at..at.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
    // Trailer fields, then an empty line.
    loop {
        let line = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        at += line + 2;
        if line == 0 {
            return Some(at);
        }
    }
}

/// The part of a header value kept for output: trimmed, at most `MAX_TEXT` bytes.
fn clip(value: &[u8]) -> &[u8] {
    let value = value.trim_ascii();
    &value[..value.len().min(MAX_TEXT)]
}

fn printable(b: &u8) -> bool {
    (0x20..0x7f).contains(b)
}

/// The header text of `value` when it needs no cleaning (see [`text`]).
fn printable_text(value: &[u8]) -> Option<&str> {
    let value = clip(value);
    if value.iter().all(printable) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Header text for output: printable ASCII only (others become `?`), at most `MAX_TEXT` bytes.
fn text(value: &[u8]) -> SharedStr {
    match printable_text(value) {
        Some(s) => SharedStr::from(s),
        None => SharedStr::from(
            clip(value)
                .iter()
                .map(|b| if printable(b) { char::from(*b) } else { '?' })
                .collect::<String>(),
        ),
    }
}

fn clean_path(path: &str, keep_query: bool) -> Cow<'_, str> {
    let path = match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(end) if !keep_query => &path[..end],
        _ => path,
    };
    let cut = if path.len() <= MAX_PATH {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!(
            "{}...",
            &path[..path.floor_char_boundary(MAX_PATH)]
        ))
    };
    // httparse lets any UTF-8 through, C1 controls (U+0080..U+009F) included, which a terminal
    // showing the readable output would take for escape sequences. An ASCII path (httparse
    // rejects ASCII controls) has none, and is not decoded to find out.
    if !cut.is_ascii() && cut.contains(char::is_control) {
        Cow::Owned(cut.replace(char::is_control, "?"))
    } else {
        cut
    }
}

/// True when `buf` may begin an HTTP/1.x head: a method token followed by a space, or `HTTP/`.
/// Shorter input that is a prefix of one counts.
pub fn looks_like_head(buf: &[u8]) -> bool {
    const STARTS: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"PATCH ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
        b"HTTP/1.",
    ];
    !buf.is_empty()
        && STARTS.iter().any(|s| {
            let n = s.len().min(buf.len());
            buf[..n] == s[..n]
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &[u8]) -> (Arc<RequestHead>, usize) {
        match parse(raw, ParseOptions::default()) {
            Parsed::Complete {
                head: Head::Request(r),
                len,
            } => (r, len),
            other => panic!("not a complete request: {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a/b?token=secret HTTP/1.1\r\nHost: svc:8080\r\nUser-Agent: curl/8\r\n\r\n";
        let (r, len) = req(raw);
        assert_eq!(len, raw.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/a/b");
        assert_eq!(r.version, 1);
        assert_eq!(r.host.as_deref(), Some("svc:8080"));
        assert_eq!(r.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(r.body, Body::Length(0));
        assert!(!r.trace.carries_trace());
    }

    #[test]
    fn query_kept_only_when_asked() {
        let raw = b"GET /a?x=1#f HTTP/1.1\r\n\r\n";
        let Parsed::Complete {
            head: Head::Request(r),
            ..
        } = parse(raw, ParseOptions { keep_query: true })
        else {
            panic!()
        };
        assert_eq!(r.path, "/a?x=1#f");
    }

    #[test]
    fn http10_and_mixed_case_trace_headers() {
        let raw = b"GET / HTTP/1.0\r\nX-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124\r\nX-B3-SPANID: a2fb4a1d1a96d312\r\n\r\n";
        let (r, _) = req(raw);
        assert_eq!(r.version, 0);
        assert_eq!(
            r.trace.primary().unwrap().trace_id.wire().as_str(),
            "463ac35c9f6413ad48485a3953bb6124"
        );
        assert!(r.trace.present.contains(TraceHeader::B3SpanId));
    }

    #[test]
    fn trace_headers_after_a_6kb_cookie() {
        let mut raw = b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: ".to_vec();
        raw.extend(std::iter::repeat_n(b'c', 6 * 1024));
        raw.extend_from_slice(
            b"\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
        );
        let (r, len) = req(&raw);
        assert_eq!(len, raw.len());
        assert_eq!(
            r.trace.w3c.as_ref().unwrap().trace_id.wire().as_str(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        // The cookie value is not kept anywhere in the parsed head.
        assert!(!format!("{r:?}").contains("ccccccccccc"));
    }

    #[test]
    fn partial_heads_at_every_cut() {
        let raw = b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n\r\nabc";
        let head_len = raw.len() - 3;
        for cut in 1..head_len {
            assert_eq!(
                parse(&raw[..cut], ParseOptions::default()),
                Parsed::Partial,
                "cut {cut}"
            );
        }
        let (r, len) = req(raw);
        assert_eq!(len, head_len);
        assert_eq!(r.body, Body::Length(3));
    }

    #[test]
    fn responses_and_framing() {
        let cases: [(&[u8], u16, Body); 5] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                200,
                Body::Length(2),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                200,
                Body::Chunked,
            ),
            (b"HTTP/1.0 200 OK\r\n\r\n", 200, Body::UntilClose),
            (b"HTTP/1.1 204 No Content\r\n\r\n", 204, Body::Length(0)),
            (b"HTTP/1.1 100 Continue\r\n\r\n", 100, Body::Length(0)),
        ];
        for (raw, status, body) in cases {
            let Parsed::Complete {
                head: Head::Response(r),
                ..
            } = parse(raw, ParseOptions::default())
            else {
                panic!("{raw:?}")
            };
            assert_eq!((r.status, r.body), (status, body));
        }
    }

    #[test]
    fn conflicting_content_length_is_invalid() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(raw, ParseOptions::default()),
            Parsed::Invalid(HeadError::BadLength)
        );
        let raw = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(
            parse(raw, ParseOptions::default()),
            Parsed::Invalid(HeadError::BadLength)
        );
    }

    #[test]
    fn garbage_is_invalid() {
        for raw in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"*2\r\n$3\r\nGET\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw, ParseOptions::default()), Parsed::Invalid(_)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn too_many_headers_is_invalid() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&raw, ParseOptions::default()),
            Parsed::Invalid(HeadError::TooManyHeaders)
        );
    }

    #[test]
    fn control_characters_in_host_are_masked_and_long_paths_cut() {
        let long = "/".to_owned() + &"p".repeat(3000);
        let raw = format!("GET {long} HTTP/1.1\r\nHost: a\tb\r\n\r\n");
        let (r, _) = req(raw.as_bytes());
        assert_eq!(r.host.as_deref(), Some("a?b"));
        assert_eq!(r.path.len(), MAX_PATH + 3);
        assert!(r.path.ends_with("..."));
    }

    #[test]
    fn text_cache_shares_equal_texts_and_gives_what_text_gives() {
        let mut cache = TextCache::default();
        let values: [&[u8]; 6] = [
            b"svc:8080",
            b"  svc:8080 ",
            b"curl/8",
            b"a\tb",
            b"caf\xc3\xa9",
            b"",
        ];
        for _ in 0..2 {
            for v in values {
                assert_eq!(cache.text(v), text(v), "{v:?}");
            }
        }
        assert!(std::ptr::eq(
            cache.text(b"svc:8080").as_str(),
            cache.text(b" svc:8080").as_str()
        ));
        // Bounded: it starts over when full, and still answers the same.
        for i in 0..3 * TEXT_CACHE {
            let v = format!("host-{i}");
            assert_eq!(cache.text(v.as_bytes()), v.as_str());
            assert!(cache.texts.len() <= TEXT_CACHE);
        }
        let long = vec![b'h'; 2 * MAX_TEXT];
        assert_eq!(cache.text(&long), text(&long));
        assert_eq!(cache.text(&long).len(), MAX_TEXT);
    }

    #[test]
    fn c1_control_characters_in_paths_are_masked() {
        // Caught by the pipeline fuzz target (no control character in a rendered line): U+009B
        // (CSI) in a path reached the readable output as it was.
        let (r, _) = req(b"GET /a\xc2\x9b31mb\xc2\x85/\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.path, "/a?31mb?/\u{e9}");
    }

    #[test]
    fn ascii_control_characters_never_reach_a_path() {
        // `clean_path` only looks for controls in paths that are not ASCII: httparse must keep
        // rejecting every ASCII control (DEL included) in the request target.
        for c in (0u8..0x20).chain([0x7f]) {
            let raw = [&b"GET /a"[..], &[c], b"b HTTP/1.1\r\nHost: h\r\n\r\n"].concat();
            match parse(&raw, ParseOptions { keep_query: true }) {
                Parsed::Invalid(_) => {}
                Parsed::Complete {
                    head: Head::Request(r),
                    ..
                } => assert!(!r.path.contains(char::is_control), "{c:#x}: {:?}", r.path),
                other => panic!("{c:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn header_names_are_matched_in_any_case_in_one_pass() {
        let raw = b"GET / HTTP/1.1\r\nhOsT: a\r\nUSER-agent: b\r\ncontent-LENGTH: 3\r\n\
            X-B3-TRACEID: 463ac35c9f6413ad\r\nHost: second\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        let (r, _) = req(raw);
        assert_eq!(r.host.as_deref(), Some("a"));
        assert_eq!(r.user_agent.as_deref(), Some("b"));
        assert_eq!(r.body, Body::Chunked);
        assert!(r.trace.present.contains(TraceHeader::B3TraceId));
        for (name, want) in [
            ("host", Some(Name::Host)),
            ("hosts", None),
            ("User-Agent", Some(Name::UserAgent)),
            ("Content-Length", Some(Name::ContentLength)),
            ("content-lengths", None),
            ("TRANSFER-ENCODING", Some(Name::TransferEncoding)),
            ("Traceparent", Some(Name::Trace(TraceHeader::Traceparent))),
            ("b3", Some(Name::Trace(TraceHeader::B3Single))),
            ("", None),
        ] {
            assert_eq!(Name::of(name), want, "{name}");
        }
    }

    #[test]
    fn head_prefix_detection() {
        for yes in [
            &b"GET / HTTP/1.1"[..],
            b"G",
            b"PO",
            b"HTTP/1.1 200",
            b"OPTIONS * HTTP/1.1",
        ] {
            assert!(looks_like_head(yes), "{yes:?}");
        }
        for no in [&b""[..], b"GETX", b"\x16\x03", b"hello", b"HTTP/2"] {
            assert!(!looks_like_head(no), "{no:?}");
        }
    }
}
