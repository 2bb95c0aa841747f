//! The connection table of all observed processes, bounded in memory.
//!
//! * Connections are grouped by process, so a process exit drops its connections at once.
//! * A process may hold at most [`Limits::max_per_process`] connections and all processes together
//!   at most [`Limits::max_connections`]. Making room evicts the least recently used connections
//!   of the full set, a batch of 1/16 at a time (one O(n) pass per n/16 insertions).
//! * Connections idle for [`Limits::idle_ns`] are evicted by [`ConnTable::evict_idle`], which also
//!   gives back the room of maps that are less than a quarter full (a process that held 10,000
//!   connections and keeps ten would otherwise keep a map of 16,384 slots).
//!
//! Time is the kernel's monotonic clock of the records (`Origin::ts_ns`); the table reads no clock.
//! What is evicted is handed back to the caller, which reports its unanswered requests.

use foldhash::{HashMap, HashMapExt};
use std::collections::hash_map::Entry;

/// What the table needs of a connection: when it last had a record.
pub trait LastUse {
    fn last_ns(&self) -> u64;
}

/// Bounds of the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All processes together.
    pub max_connections: usize,
    /// One process.
    pub max_per_process: usize,
    /// A connection with no record for this long is forgotten.
    pub idle_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 65_536,
            max_per_process: 16_384,
            idle_ns: 300 * 1_000_000_000,
        }
    }
}

/// Counters of evictions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EvictionStats {
    pub evicted_idle: u64,
    pub evicted_overflow: u64,
}

#[derive(Debug)]
pub struct ConnTable<Conn> {
    procs: HashMap<u32, HashMap<i32, Conn>>,
    len: usize,
    limits: Limits,
    stats: EvictionStats,
}

impl<Conn: LastUse> Default for ConnTable<Conn> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<Conn: LastUse> ConnTable<Conn> {
    pub fn new(limits: Limits) -> Self {
        ConnTable {
            procs: HashMap::new(),
            len: 0,
            limits,
            stats: EvictionStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn stats(&self) -> EvictionStats {
        self.stats
    }

    pub fn contains(&self, pid: u32, fd: i32) -> bool {
        self.procs.get(&pid).is_some_and(|p| p.contains_key(&fd))
    }

    pub fn get_mut(&mut self, pid: u32, fd: i32) -> Option<&mut Conn> {
        self.procs.get_mut(&pid)?.get_mut(&fd)
    }

    pub fn remove(&mut self, pid: u32, fd: i32) -> Option<Conn> {
        let Entry::Occupied(mut p) = self.procs.entry(pid) else {
            return None;
        };
        let conn = p.get_mut().remove(&fd)?;
        if p.get().is_empty() {
            p.remove();
        }
        self.len -= 1;
        Some(conn)
    }

    /// Every connection of a process that ended.
    pub fn remove_process(&mut self, pid: u32) -> Vec<Conn> {
        let conns: Vec<Conn> = self
            .procs
            .remove(&pid)
            .map(|p| p.into_values().collect())
            .unwrap_or_default();
        self.len -= conns.len();
        conns
    }

    /// Adds a connection (there is none at its (pid, fd)), first making room within the caps;
    /// what had to go is appended to `evicted`.
    pub fn insert(&mut self, pid: u32, fd: i32, conn: Conn, evicted: &mut Vec<Conn>) {
        let per_process = self.procs.get(&pid).map_or(0, HashMap::len);
        if per_process >= self.limits.max_per_process.max(1) {
            self.evict_lru(Some(pid), evicted);
        }
        if self.len >= self.limits.max_connections.max(1) {
            self.evict_lru(None, evicted);
        }
        if self
            .procs
            .entry(pid)
            .or_default()
            .insert(fd, conn)
            .is_none()
        {
            self.len += 1;
        }
    }

    /// Evicts the least recently used 1/16 (at least one) of a process's connections, or of all.
    fn evict_lru(&mut self, pid: Option<u32>, evicted: &mut Vec<Conn>) {
        let mut ages: Vec<(u64, u32, i32)> = match pid {
            Some(pid) => self
                .procs
                .get(&pid)
                .into_iter()
                .flat_map(|p| p.iter().map(move |(&fd, c)| (c.last_ns(), pid, fd)))
                .collect(),
            None => self
                .procs
                .iter()
                .flat_map(|(&pid, p)| p.iter().map(move |(&fd, c)| (c.last_ns(), pid, fd)))
                .collect(),
        };
        if ages.is_empty() {
            return;
        }
        let n = (ages.len() / 16).max(1);
        if n < ages.len() {
            ages.select_nth_unstable(n - 1);
        }
        for &(_, pid, fd) in &ages[..n] {
            if let Some(c) = self.remove(pid, fd) {
                self.stats.evicted_overflow += 1;
                evicted.push(c);
            }
        }
    }

    /// Evicts the connections with no record since `now_ns - idle_ns`.
    pub fn evict_idle(&mut self, now_ns: u64, evicted: &mut Vec<Conn>) {
        let Some(cutoff) = now_ns.checked_sub(self.limits.idle_ns) else {
            return;
        };
        let before = evicted.len();
        self.procs.retain(|_, p| {
            let idle: Vec<i32> = p
                .iter()
                .filter(|(_, c)| c.last_ns() < cutoff)
                .map(|(&fd, _)| fd)
                .collect();
            for fd in idle {
                if let Some(c) = p.remove(&fd) {
                    evicted.push(c);
                }
            }
            !p.is_empty()
        });
        let n = evicted.len() - before;
        self.len -= n;
        self.stats.evicted_idle += n as u64;
        for p in self.procs.values_mut() {
            shrink_if_sparse(p);
        }
        shrink_if_sparse(&mut self.procs);
    }
}

/// Halves, or more, a map that is less than a quarter full, leaving it room to double.
fn shrink_if_sparse<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.len() < m.capacity() / 4 {
        m.shrink_to(m.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct C(u64);
    impl LastUse for C {
        fn last_ns(&self) -> u64 {
            self.0
        }
    }

    fn limits(max_connections: usize, max_per_process: usize) -> Limits {
        Limits {
            max_connections,
            max_per_process,
            idle_ns: 100,
        }
    }

    fn fds(t: &ConnTable<C>, pid: u32) -> Vec<i32> {
        let mut v: Vec<i32> = t
            .procs
            .get(&pid)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn per_process_cap_evicts_that_process_least_recently_used() {
        let mut t = ConnTable::new(limits(100, 3));
        let mut ev = Vec::new();
        t.insert(1, 10, C(5), &mut ev);
        t.insert(1, 11, C(1), &mut ev);
        t.insert(1, 12, C(9), &mut ev);
        t.insert(2, 10, C(0), &mut ev);
        assert!(ev.is_empty());
        t.insert(1, 13, C(10), &mut ev);
        assert_eq!(ev, vec![C(1)]);
        assert_eq!(fds(&t, 1), vec![10, 12, 13]);
        // The other process, older still, is untouched.
        assert_eq!(fds(&t, 2), vec![10]);
        assert_eq!(t.len(), 4);
        assert_eq!(t.stats().evicted_overflow, 1);
    }

    #[test]
    fn global_cap_evicts_the_oldest_of_all_in_batches_of_a_sixteenth() {
        let mut t = ConnTable::new(limits(32, 100));
        let mut ev = Vec::new();
        for i in 0..32 {
            // pid 1 gets the odd ages, pid 2 the even ones.
            t.insert(1 + (i % 2) as u32, i, C(u64::from(i as u32)), &mut ev);
        }
        assert!(ev.is_empty());
        t.insert(3, 0, C(100), &mut ev);
        let mut ages: Vec<u64> = ev.iter().map(|c| c.0).collect();
        ages.sort();
        assert_eq!(ages, vec![0, 1], "32 / 16 = 2 oldest evicted");
        assert_eq!(t.len(), 31);
        assert!(t.contains(3, 0));
        assert!(!t.contains(2, 0) && !t.contains(1, 1));
    }

    #[test]
    fn replacing_an_entry_does_not_grow_the_count() {
        let mut t = ConnTable::new(limits(2, 2));
        let mut ev = Vec::new();
        t.insert(1, 3, C(1), &mut ev);
        let old = t.remove(1, 3);
        assert_eq!(old, Some(C(1)));
        assert!(t.is_empty());
        assert!(t.procs.is_empty(), "empty process entries are dropped");
        t.insert(1, 3, C(2), &mut ev);
        t.insert(1, 4, C(3), &mut ev);
        assert_eq!(t.len(), 2);
        assert!(ev.is_empty());
        assert_eq!(t.get_mut(1, 3).map(|c| c.0), Some(2));
    }

    #[test]
    fn idle_eviction_uses_the_cutoff_and_counts() {
        let mut t = ConnTable::new(limits(100, 100));
        let mut ev = Vec::new();
        t.insert(1, 3, C(10), &mut ev);
        t.insert(1, 4, C(150), &mut ev);
        t.insert(2, 3, C(99), &mut ev);
        // Before the idle window has passed even once, nothing is evicted.
        t.evict_idle(50, &mut ev);
        assert!(ev.is_empty());
        t.evict_idle(200, &mut ev);
        let mut ages: Vec<u64> = ev.iter().map(|c| c.0).collect();
        ages.sort();
        assert_eq!(ages, vec![10, 99]);
        assert_eq!(
            t.stats().evicted_overflow,
            0,
            "counted as idle, not overflow"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(fds(&t, 2), Vec::<i32>::new());
        assert_eq!(t.stats().evicted_idle, 2);
    }

    #[test]
    fn the_idle_sweep_gives_back_the_room_of_sparse_maps() {
        let mut t = ConnTable::new(limits(100_000, 100_000));
        let mut ev = Vec::new();
        for fd in 0..10_000 {
            t.insert(1, fd, C(1_000), &mut ev);
        }
        let full = t.procs[&1].capacity();
        assert!(full >= 10_000);
        for fd in 10..10_000 {
            t.remove(1, fd);
        }
        // Nothing is idle: only the room goes.
        t.evict_idle(1_000, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(t.len(), 10);
        let left = t.procs[&1].capacity();
        assert!(
            left < 64,
            "capacity {left} of {full} kept for 10 connections"
        );
        // A map at least a quarter full keeps its room (no churn at steady state).
        for fd in 10..20 {
            t.insert(1, fd, C(1_000), &mut ev);
        }
        let steady = t.procs[&1].capacity();
        t.evict_idle(1_000, &mut ev);
        assert_eq!(t.procs[&1].capacity(), steady);
    }

    #[test]
    fn process_exit_takes_all_its_connections() {
        let mut t = ConnTable::new(Limits::default());
        let mut ev = Vec::new();
        for fd in 0..10 {
            t.insert(7, fd, C(0), &mut ev);
        }
        t.insert(8, 0, C(0), &mut ev);
        assert_eq!(t.remove_process(7).len(), 10);
        assert_eq!(t.len(), 1);
        assert!(t.remove_process(7).is_empty());
    }

    #[test]
    fn zero_caps_still_admit_one() {
        let mut t = ConnTable::new(limits(0, 0));
        let mut ev = Vec::new();
        t.insert(1, 1, C(1), &mut ev);
        t.insert(1, 2, C(2), &mut ev);
        assert_eq!(t.len(), 1);
        assert_eq!(ev.len(), 1);
    }
}
