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

/// Bounded text kept inline, without an allocation: the ids, timestamps and addresses of
/// records, whose lengths have a known maximum (`N`).
pub type InlineStr<const N: usize> = arrayvec::ArrayString<N>;

/// `s` as an [`InlineStr`]; cut at the last char boundary within `N` bytes if it is longer
/// (callers size `N` for the longest text they hold, so this does not happen).
pub fn inline_str<const N: usize>(s: &str) -> InlineStr<N> {
    let mut out = InlineStr::new();
    out.push_str(&s[..s.floor_char_boundary(N)]);
    out
}

/// Bytes the caller built or checked to be ASCII (digits, separators, printable header values)
/// as an [`InlineStr`], cut like [`inline_str`]; anything else gives the empty text.
pub fn inline_ascii<const N: usize>(b: &[u8]) -> InlineStr<N> {
    inline_str(std::str::from_utf8(b).unwrap_or_default())
}

/// `v`'s `Display` as an [`InlineStr`], cut at `N` bytes like [`inline_str`].
pub fn inline_display<const N: usize>(v: impl fmt::Display) -> InlineStr<N> {
    let mut out = InlineStr::new();
    if fmt::Write::write_fmt(&mut out, format_args!("{v}")).is_err() {
        // Longer than `N`: keep what fits, as `inline_str` does.
        return inline_str(&v.to_string());
    }
    out
}

/// `name` is `lower` (a lower-case constant) in any case. Inlined, which bytes of `lower` are
/// letters is known at compile time and the comparison of header names (done for every header
/// line of every head) is a few vector operations, without a loop, a lowercased copy or a
/// `memcmp` call.
#[inline(always)]
pub fn is_name<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    let mut diff = 0u8;
    for (&n, &l) in name.iter().zip(lower) {
        // The case bit is ignored for letters only: `-` (0x2d) is not `\r` (0x0d).
        let case = if l.is_ascii_lowercase() { 0x20 } else { 0 };
        diff |= (n | case) ^ l;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position of the names it is used with (letters, digits and
    /// `-`), and every length around theirs: `is_name` says what `eq_ignore_ascii_case` says.
    #[test]
    fn is_name_is_eq_ignore_ascii_case_against_a_lower_case_constant() {
        fn check<const N: usize>(lower: &[u8; N]) {
            let mut tried = 0;
            for at in 0..N {
                for b in 0..=255u8 {
                    let mut name = *lower;
                    name[at] = b;
                    assert_eq!(
                        is_name(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(lower)
                    );
                    tried += 1;
                }
            }
            assert_eq!(tried, N * 256);
            assert!(is_name(&lower.to_ascii_uppercase(), lower));
            assert!(!is_name(&lower[..N - 1], lower));
            assert!(!is_name(&[lower.as_slice(), b"x"].concat(), lower));
            assert!(!is_name(b"", lower));
        }
        check(b"b3");
        check(b"host");
        check(b"x-b3-traceid");
        check(b"content-length");
        check(b"x-ot-span-context");
    }

    #[test]
    fn inline_strs_hold_what_fits_and_cut_the_rest_on_a_char_boundary() {
        for text in ["", "a", "0123456789abcdef", "é€😀 text!"] {
            let s = inline_str::<16>(text);
            assert_eq!(s.as_str(), text);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
        assert_eq!(
            inline_str::<16>("0123456789abcdef0").as_str(),
            "0123456789abcdef"
        );
        // "é" is two bytes: a cut in its middle leaves it out whole.
        assert_eq!(inline_str::<4>("abcé").as_str(), "abc");
    }

    #[test]
    fn inline_ascii_is_the_text_of_ascii_bytes() {
        assert_eq!(
            inline_ascii::<32>(b"00f067aa0ba902b7").as_str(),
            "00f067aa0ba902b7"
        );
        assert_eq!(inline_ascii::<4>(b"2026-11-22").as_str(), "2026");
        assert_eq!(inline_ascii::<8>(b"\xff\xfe").as_str(), "");
    }

    #[test]
    fn inline_display_writes_like_to_string() {
        let v6: std::net::SocketAddr = "[2001:db8::ff00:42:8329%7]:65535".parse().unwrap();
        let v4: std::net::SocketAddr = "255.255.255.255:65535".parse().unwrap();
        for v in [v4, v6] {
            assert_eq!(inline_display::<64>(v).as_str(), v.to_string());
        }
        // Too long: what fits, in several writes or one.
        let s = inline_display::<4>(format_args!("{}-{}-{}", "ab", "cd", "ef"));
        assert_eq!(s.as_str(), "ab-c");
        assert_eq!(inline_display::<4>("abcdef").as_str(), "abcd");
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
