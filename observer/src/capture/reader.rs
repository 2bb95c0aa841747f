//! The ring-buffer reader: waits for the kernel's wake-up with tokio's `AsyncFd` (epoll), or for a
//! deadline, and hands each record, decoded, to a callback.
//!
//! This module holds the library's only `unsafe` block (registering the ring buffer's fd).

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::record::{self, DecodeError, Event};

pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        #[expect(
            unsafe_code,
            reason = "registering an fd with epoll is unsafe: it must stay open while registered"
        )]
        // SAFETY: the fd belongs to `ring`, which the AsyncFd owns: it stays open for as long as it
        // is registered, and AsyncFd deregisters it before dropping `ring`.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(RingReader { fd })
    }

    /// Waits until the kernel signals records, or until `deadline` if there is one, then decodes
    /// up to `max` records. Readiness is kept when records remain, so the next call does not wait.
    ///
    /// With a wake-up watermark set in the kernel (`CaptureConfig::wake_at_bytes`) the kernel
    /// signals only when unread records pile up, so the reader must be given a deadline: that is
    /// when it reads what came in quietly (`Pacer`).
    pub async fn read(
        &mut self,
        deadline: Option<Instant>,
        max: usize,
        f: impl FnMut(Result<Event, DecodeError>),
    ) -> std::io::Result<Drained> {
        let signalled = self.fd.readable_mut();
        let guard = match deadline {
            None => Some(signalled.await?),
            Some(d) => match tokio::time::timeout_at(d, signalled).await {
                Ok(guard) => Some(guard?),
                Err(_elapsed) => None,
            },
        };
        Ok(match guard {
            Some(mut guard) => {
                let drained = drain(guard.get_inner_mut(), max, f);
                if drained.emptied {
                    guard.clear_ready();
                }
                drained
            }
            // Readiness is left as it is: a stale one costs one empty read at most.
            None => drain(self.fd.get_mut(), max, f),
        })
    }

    /// Decodes everything there is now, without waiting.
    pub fn read_all_now(&mut self, f: impl FnMut(Result<Event, DecodeError>)) {
        drain(self.fd.get_mut(), usize::MAX, f);
    }
}

/// What one read took from the ring buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub records: usize,
    /// The ring buffer was empty when the read stopped (else it stopped at its `max`).
    pub emptied: bool,
}

fn drain(
    ring: &mut RingBuf<MapData>,
    max: usize,
    mut f: impl FnMut(Result<Event, DecodeError>),
) -> Drained {
    let mut records = 0;
    while records < max {
        let Some(item) = ring.next() else {
            return Drained {
                records,
                emptied: true,
            };
        };
        f(record::decode_ref(&item));
        records += 1;
    }
    Drained {
        records,
        emptied: false,
    }
}
