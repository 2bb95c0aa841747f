//! The ring-buffer reader: waits for records with tokio's `AsyncFd` (epoll, no polling loop) and
//! hands each record, decoded, to a callback.
//!
//! Between reads the caller may [`park`](RingReader::park) it: the ring's fd then leaves the
//! runtime's epoll set, so the first record written while the caller sleeps out its read interval
//! does not wake the thread only for it to sleep again (one wake-up per interval instead of two).
//! The next [`read`](RingReader::read) registers it again; epoll reports a ring that already holds
//! records as ready at once, so nothing written while parked waits for a later record.
//!
//! This module holds the crate's only `unsafe` block (registering the ring buffer's fd).

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::record::{self, DecodeError, Event};

type Ring = RingBuf<MapData>;

/// Exactly one of the two is set between calls: the ring is either registered with the runtime
/// (`armed`) or not (`parked`).
pub struct RingReader {
    armed: Option<AsyncFd<Ring>>,
    parked: Option<Ring>,
}

impl RingReader {
    /// Registers the ring with the current runtime.
    pub fn new(ring: Ring) -> io::Result<Self> {
        let mut reader = RingReader {
            armed: None,
            parked: Some(ring),
        };
        reader.arm()?;
        Ok(reader)
    }

    /// Waits until records are available, then decodes up to `max` of them. Returns whether it
    /// emptied the ring buffer; readiness is kept when records remain, so the next call does not
    /// wait.
    pub async fn read(
        &mut self,
        max: usize,
        f: impl FnMut(Result<Event, DecodeError>),
    ) -> io::Result<bool> {
        let mut guard = self.arm()?.readable_mut().await?;
        let emptied = drain(guard.get_inner_mut(), max, f);
        if emptied {
            guard.clear_ready();
        }
        Ok(emptied)
    }

    /// Takes the ring out of the runtime's epoll set until the next `read`. Idempotent.
    pub fn park(&mut self) {
        if let Some(fd) = self.armed.take() {
            self.parked = Some(fd.into_inner());
        }
    }

    /// Decodes everything there is now, without waiting.
    pub fn read_all_now(&mut self, f: impl FnMut(Result<Event, DecodeError>)) {
        if let Some(ring) = self.ring_mut() {
            drain(ring, usize::MAX, f);
        }
    }

    fn ring_mut(&mut self) -> Option<&mut Ring> {
        match (&mut self.armed, &mut self.parked) {
            (Some(fd), _) => Some(fd.get_mut()),
            (None, parked) => parked.as_mut(),
        }
    }

    /// Registers a parked ring; a failed registration leaves it parked, so nothing is lost.
    fn arm(&mut self) -> io::Result<&mut AsyncFd<Ring>> {
        if let Some(ring) = self.parked.take() {
            // SAFETY: the fd belongs to `ring`, which the AsyncFd owns: it stays open for as long
            // as it is registered, and `into_inner` (in `park`) or the AsyncFd's drop deregisters
            // it before giving `ring` back or dropping it.
            match unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } {
                Ok(fd) => self.armed = Some(fd),
                Err(e) => {
                    let (ring, err) = e.into_parts();
                    self.parked = Some(ring);
                    return Err(err);
                }
            }
        }
        self.armed
            .as_mut()
            .ok_or_else(|| io::Error::other("the ring buffer reader holds no ring"))
    }
}

fn drain(ring: &mut Ring, max: usize, mut f: impl FnMut(Result<Event, DecodeError>)) -> bool {
    for _ in 0..max {
        let Some(item) = ring.next() else {
            return true;
        };
        f(record::decode_ref(&item));
    }
    false
}
