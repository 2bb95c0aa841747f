//! Span ids: where new ones come from, and the memory that keeps an id taken from the traffic
//! from being emitted twice.

use std::collections::VecDeque;

use foldhash::HashSet;

use crate::tracectx::SpanId;

/// Bounded memory of the span ids taken from the traffic (an app's own client span ids), so
/// none is emitted twice: HTTP clients re-send the same headers on a retry. Generated ids are
/// not kept here: they are random, and one equal to any of the remembered ids has odds of
/// 2^-48 (a hash set of 65,536 ids cost a cache miss per insert and per eviction, for every
/// span).
#[derive(Debug, Default)]
struct IdRegistry {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

/// Span ids of the traffic remembered.
const ID_MEMORY: usize = 1 << 16;

impl IdRegistry {
    fn claim(&mut self, id: u64) -> bool {
        if id == 0 || !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > ID_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Source of new span ids: random in production, a counter in tests. The correlator trusts
/// them to be fresh (it only skips 0): never returned before, and not equal to an id seen in
/// the traffic.
pub trait IdSource {
    fn next_id(&mut self) -> u64;
}

/// Random span ids (`rand`'s thread-local generator).
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> u64 {
        rand::random()
    }
}

/// The span ids the correlator gives its spans: new ones from an [`IdSource`], or ids taken from
/// the traffic when none was given before.
pub(super) struct SpanIds {
    taken: IdRegistry,
    source: Box<dyn IdSource + Send>,
}

impl SpanIds {
    pub(super) fn new(source: Box<dyn IdSource + Send>) -> Self {
        SpanIds {
            taken: IdRegistry::default(),
            source,
        }
    }

    /// A new span id (the source's next non-zero one).
    pub(super) fn fresh(&mut self) -> SpanId {
        loop {
            if let Some(id) = SpanId::new(self.source.next_id()) {
                return id;
            }
        }
    }

    /// `id`, seen in the traffic, unless it was taken before (a retry re-sends the same
    /// headers): then a new one.
    pub(super) fn own_or_fresh(&mut self, id: SpanId) -> SpanId {
        if self.taken.claim(id.value()) {
            id
        } else {
            self.fresh()
        }
    }
}
