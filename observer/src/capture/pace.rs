//! When the reader reads the ring buffer next (pure: durations in, durations out).
//!
//! A read costs more than the records it takes until batches reach hundreds of records (cold
//! caches after a sleep: docs/benchmarks.md), so the reader reads on a timer, `interval` after a
//! read that emptied the ring buffer, and the kernel wakes it sooner only when a quarter of the
//! ring is unread. A read that stopped at its batch limit is followed at once. A read that found
//! nothing doubles the wait, up to `MAX_IDLE_WAIT`, so that an idle observer wakes a few times a
//! second rather than twenty; the first records after a quiet spell wait at most that long.

use std::time::Duration;

use super::reader::Drained;

/// The longest wait after reads that found nothing.
pub const MAX_IDLE_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    wait: Duration,
}

impl Pacer {
    /// `None` for a zero interval: the reader then reads each record as the kernel signals it.
    pub fn new(interval: Duration) -> Option<Pacer> {
        (!interval.is_zero()).then_some(Pacer {
            interval,
            wait: interval,
        })
    }

    /// The kernel's wake-up watermark (`CaptureConfig::wake_at_bytes`) for a ring of
    /// `ring_bytes`: with a pacer, a quarter of the ring, so that a burst wakes the reader with
    /// three quarters still free; without one, 0 (the kernel wakes it for each record written
    /// to an empty ring).
    pub fn wake_at_bytes(pacer: Option<&Pacer>, ring_bytes: u32) -> u32 {
        pacer.map_or(0, |_| ring_bytes / 4)
    }

    /// How long to wait after `read` before the next read.
    pub fn after(&mut self, read: Drained) -> Duration {
        if !read.emptied {
            self.wait = self.interval;
            return Duration::ZERO;
        }
        self.wait = if read.records == 0 {
            (self.wait * 2).min(MAX_IDLE_WAIT.max(self.interval))
        } else {
            self.interval
        };
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn read(records: usize, emptied: bool) -> Drained {
        Drained { records, emptied }
    }

    #[test]
    fn zero_interval_has_no_pacer() {
        assert!(Pacer::new(Duration::ZERO).is_none());
    }

    #[test]
    fn the_watermark_is_a_quarter_of_the_ring_with_a_pacer_and_none_without() {
        let ring = 8 << 20;
        let p = Pacer::new(50 * MS);
        assert_eq!(Pacer::wake_at_bytes(p.as_ref(), ring), 2 << 20);
        assert_eq!(Pacer::wake_at_bytes(None, ring), 0);
    }

    #[test]
    fn a_read_that_emptied_the_ring_waits_the_interval() {
        let mut p = Pacer::new(50 * MS).unwrap();
        assert_eq!(p.after(read(3, true)), 50 * MS);
        assert_eq!(p.after(read(8192, true)), 50 * MS);
    }

    #[test]
    fn a_read_cut_at_its_batch_limit_is_followed_at_once() {
        let mut p = Pacer::new(50 * MS).unwrap();
        assert_eq!(p.after(read(8192, false)), Duration::ZERO);
        assert_eq!(p.after(read(10, true)), 50 * MS);
    }

    #[test]
    fn empty_reads_back_off_to_the_idle_cap_and_records_reset_the_wait() {
        let mut p = Pacer::new(50 * MS).unwrap();
        let waits: Vec<_> = (0..6).map(|_| p.after(read(0, true))).collect();
        assert_eq!(
            waits,
            [100 * MS, 200 * MS, 400 * MS, 500 * MS, 500 * MS, 500 * MS]
        );
        assert_eq!(p.after(read(1, true)), 50 * MS);
        assert_eq!(p.after(read(0, true)), 100 * MS);
    }

    #[test]
    fn a_read_cut_at_its_batch_limit_ends_the_back_off() {
        let mut p = Pacer::new(50 * MS).unwrap();
        p.after(read(0, true));
        p.after(read(0, true));
        assert_eq!(p.after(read(8192, false)), Duration::ZERO);
        assert_eq!(p.after(read(0, true)), 100 * MS);
    }

    #[test]
    fn an_interval_above_the_idle_cap_is_kept_when_idle() {
        let mut p = Pacer::new(Duration::from_secs(1)).unwrap();
        assert_eq!(p.after(read(0, true)), Duration::from_secs(1));
    }
}
