//! How the allocator gives freed memory back to the kernel.
//!
//! The binary allocates with jemalloc (`main.rs`), not glibc malloc: glibc returns freed memory
//! only from the top of its heap, so after 10,000 connections closed ~10 MiB stayed resident for
//! good, pinned by a few live allocations above them (docs/benchmarks.md, item 5). jemalloc
//! purges the pages nobody uses after a decay time; [`return_freed_memory`] makes that about a
//! second (jemalloc's default is 10 s, and without its background thread it purges only while the
//! process allocates, so an idle observer would keep them).

use tikv_jemalloc_ctl::{Access as _, AsName as _, background_thread};

/// How long unused dirty pages stay before they are purged (jemalloc's default: 10,000).
pub const DIRTY_DECAY_MS: isize = 1000;
/// 0: purged pages are released at once (`MADV_DONTNEED`), not first made lazily freeable
/// (`MADV_FREE`, which the kernel reclaims only under memory pressure: RSS would not drop).
pub const MUZZY_DECAY_MS: isize = 0;

#[derive(Debug, thiserror::Error)]
#[error("configuring jemalloc ({key}): {source}")]
pub struct AllocatorError {
    key: String,
    source: tikv_jemalloc_ctl::Error,
}

fn write(key: &str, value: isize) -> Result<(), AllocatorError> {
    let name = format!("{key}\0");
    name.as_str()
        .name()
        .write(value)
        .map_err(|source| AllocatorError {
            key: key.to_owned(),
            source,
        })
}

/// Sets the decay times of every arena (those created later too) and starts jemalloc's
/// background thread, which purges on time whether or not the process allocates. Call early.
pub fn return_freed_memory() -> Result<(), AllocatorError> {
    write("arenas.dirty_decay_ms", DIRTY_DECAY_MS)?;
    write("arenas.muzzy_decay_ms", MUZZY_DECAY_MS)?;
    // Arenas already created keep the decay they were created with; those not created yet fail
    // here (EFAULT) and will take the defaults above.
    let narenas = tikv_jemalloc_ctl::arenas::narenas::read().map_err(|source| AllocatorError {
        key: "arenas.narenas".into(),
        source,
    })?;
    for i in 0..narenas {
        let _ = write(&format!("arena.{i}.dirty_decay_ms"), DIRTY_DECAY_MS);
        let _ = write(&format!("arena.{i}.muzzy_decay_ms"), MUZZY_DECAY_MS);
    }
    background_thread::write(true).map_err(|source| AllocatorError {
        key: "background_thread".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &str) -> isize {
        format!("{key}\0").as_str().name().read().unwrap()
    }

    #[test]
    fn decay_is_set_for_existing_and_later_arenas_and_the_background_thread_runs() {
        // The test binary allocates with the system allocator; jemalloc is linked all the same
        // and answers mallctl. Arena 0 exists once jemalloc is initialised (by this read).
        assert_eq!(read("arena.0.dirty_decay_ms"), 10_000, "jemalloc's default");
        return_freed_memory().unwrap();
        assert_eq!(read("arenas.dirty_decay_ms"), DIRTY_DECAY_MS);
        assert_eq!(read("arenas.muzzy_decay_ms"), MUZZY_DECAY_MS);
        assert_eq!(read("arena.0.dirty_decay_ms"), DIRTY_DECAY_MS);
        assert_eq!(read("arena.0.muzzy_decay_ms"), MUZZY_DECAY_MS);
        assert!(background_thread::read().unwrap());
    }
}
