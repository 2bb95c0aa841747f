//! The ring-buffer reader: waits for records with tokio's `AsyncFd` (epoll, no polling loop) and
//! hands each record, decoded, to a callback.
//!
//! This module holds the crate's only `unsafe` block (registering the ring buffer's fd).

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::record::{self, DecodeError, Event};

pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        // SAFETY: the fd belongs to `ring`, which the AsyncFd owns: it stays open for as long as it
        // is registered, and AsyncFd deregisters it before dropping `ring`.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(RingReader { fd })
    }

    /// Waits until records are available, then decodes up to `max` of them. Returns whether it
    /// emptied the ring buffer; readiness is kept when records remain, so the next call does not
    /// wait.
    pub async fn read(
        &mut self,
        max: usize,
        f: impl FnMut(Result<Event, DecodeError>),
    ) -> std::io::Result<bool> {
        let mut guard = self.fd.readable_mut().await?;
        let emptied = drain(guard.get_inner_mut(), max, f);
        if emptied {
            guard.clear_ready();
        }
        Ok(emptied)
    }

    /// Decodes everything there is now, without waiting.
    pub fn read_all_now(&mut self, f: impl FnMut(Result<Event, DecodeError>)) {
        drain(self.fd.get_mut(), usize::MAX, f);
    }
}

fn drain(
    ring: &mut RingBuf<MapData>,
    max: usize,
    mut f: impl FnMut(Result<Event, DecodeError>),
) -> bool {
    for _ in 0..max {
        let Some(item) = ring.next() else {
            return true;
        };
        f(record::decode_ref(&item));
    }
    false
}
