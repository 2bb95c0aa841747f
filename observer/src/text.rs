//! [`SharedStr`]: immutable text shared between a parsed head and the records made from it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

/// Immutable, cheaply cloned text (an `Arc<str>`): a head's method, path, Host and User-Agent are
/// allocated once when parsed, and every record made from the head shares them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

/// The request methods shared by every head (no allocation for them).
static METHODS: LazyLock<[SharedStr; 9]> = LazyLock::new(|| {
    [
        "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ]
    .map(SharedStr::from)
});

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A request method: the shared copy for the standard ones.
    pub fn method(m: &str) -> SharedStr {
        METHODS
            .iter()
            .find(|s| s.as_str() == m)
            .cloned()
            .unwrap_or_else(|| SharedStr::from(m))
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        SharedStr::from("")
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Short text kept inline, without an allocation, when it fits in `N` bytes (and 255), else on
/// the heap: the ids, timestamps and addresses of records, whose lengths are bounded.
#[derive(Clone)]
pub struct SmallStr<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    /// The text is `bytes[..len]`, copied whole from a `str`.
    Inline {
        len: u8,
        bytes: [u8; N],
    },
    Heap(Box<str>),
}

impl<const N: usize> SmallStr<N> {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied whole from a `str`: always UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }

    /// Whether the text is kept inline.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// `v` as text (`to_string` without the allocation when it fits).
    pub fn display(v: impl fmt::Display) -> Self {
        let mut w = Writer::<N> {
            len: 0,
            bytes: [0; N],
            spill: None,
        };
        let _ = fmt::Write::write_fmt(&mut w, format_args!("{v}"));
        match w.spill {
            Some(s) => SmallStr(Repr::Heap(s.into_boxed_str())),
            None => SmallStr(Repr::Inline {
                len: w.len as u8,
                bytes: w.bytes,
            }),
        }
    }
}

/// Formats into an inline buffer, moving to a `String` when the text outgrows it.
struct Writer<const N: usize> {
    len: usize,
    bytes: [u8; N],
    spill: Option<String>,
}

impl<const N: usize> fmt::Write for Writer<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(spill) = &mut self.spill {
            spill.push_str(s);
            return Ok(());
        }
        let end = self.len + s.len();
        if end <= N.min(usize::from(u8::MAX)) {
            self.bytes[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
        } else {
            let mut spill = String::with_capacity(end.max(2 * N));
            // Whole `str`s were copied so far: always UTF-8.
            spill.push_str(std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default());
            spill.push_str(s);
            self.spill = Some(spill);
        }
        Ok(())
    }
}

impl<const N: usize> Default for SmallStr<N> {
    fn default() -> Self {
        SmallStr(Repr::Inline {
            len: 0,
            bytes: [0; N],
        })
    }
}

impl<const N: usize> From<&str> for SmallStr<N> {
    fn from(s: &str) -> Self {
        if s.len() <= N.min(usize::from(u8::MAX)) {
            let mut bytes = [0; N];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            SmallStr(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            SmallStr(Repr::Heap(Box::from(s)))
        }
    }
}

impl<const N: usize> From<String> for SmallStr<N> {
    fn from(s: String) -> Self {
        if s.len() <= N.min(usize::from(u8::MAX)) {
            SmallStr::from(s.as_str())
        } else {
            SmallStr(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl<const N: usize> From<SmallStr<N>> for String {
    fn from(s: SmallStr<N>) -> Self {
        match s.0 {
            Repr::Heap(h) => h.into_string(),
            Repr::Inline { .. } => s.as_str().to_owned(),
        }
    }
}

impl<const N: usize> Deref for SmallStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for SmallStr<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> Borrow<str> for SmallStr<N> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq for SmallStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for SmallStr<N> {}

impl<const N: usize> std::hash::Hash for SmallStr<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<const N: usize> PartialEq<str> for SmallStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for SmallStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> PartialEq<String> for SmallStr<N> {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> fmt::Debug for SmallStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for SmallStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> serde::Serialize for SmallStr<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_strs_inline_what_fits_and_keep_the_rest_whole() {
        for text in [
            "",
            "a",
            "0123456789abcdef",
            "0123456789abcdef0",
            "é€😀 text",
        ] {
            let s = SmallStr::<16>::from(text);
            assert_eq!(s, text);
            assert_eq!(s.is_inline(), text.len() <= 16, "{text:?}");
            assert_eq!(SmallStr::<16>::from(text.to_owned()), s);
            assert_eq!(String::from(s.clone()), text);
            assert_eq!(format!("{s} {s:?}"), format!("{text} {text:?}"));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
        let long = "x".repeat(300);
        let s = SmallStr::<400>::from(long.as_str());
        assert!(!s.is_inline(), "a length over 255 does not fit in the u8");
        assert_eq!(s, long);
        assert_eq!(SmallStr::<8>::default(), "");
    }

    #[test]
    fn small_strs_display_like_to_string() {
        let v6: std::net::SocketAddr = "[2001:db8::ff00:42:8329%7]:65535".parse().unwrap();
        let v4: std::net::SocketAddr = "255.255.255.255:65535".parse().unwrap();
        for (v, inline) in [(v4, true), (v6, false)] {
            let s = SmallStr::<24>::display(v);
            assert_eq!(s, v.to_string());
            assert_eq!(s.is_inline(), inline);
        }
        // Spilling in the middle of several writes keeps every piece.
        let s = SmallStr::<4>::display(format_args!("{}-{}-{}", "ab", "cd", "ef"));
        assert_eq!(s, "ab-cd-ef");
        assert_eq!(SmallStr::<4>::display(""), "");
    }

    #[test]
    fn methods_are_shared() {
        let a = SharedStr::method("GET");
        let b = SharedStr::method("GET");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(SharedStr::method("PROPFIND"), "PROPFIND");
    }

    #[test]
    fn reads_as_text() {
        let s = SharedStr::from("/a/b");
        assert_eq!(s, "/a/b");
        assert_eq!(format!("{s} {s:?}"), "/a/b \"/a/b\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"/a/b\"");
        assert_eq!(String::from(s), "/a/b");
    }
}
