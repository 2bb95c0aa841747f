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

#[cfg(test)]
mod tests {
    use super::*;

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
