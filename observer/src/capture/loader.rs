//! Loading the kernel programs, configuring their maps and attaching them.

use aya::maps::{
    Array, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, ProgramArray, RingBuf,
};
use aya::programs::{BtfTracePoint, TracePoint};
use aya::{Btf, BtfError, Ebpf, EbpfLoader};
use observer_common::{config, stat, tail, traced_slot};

use super::hooks::{Hooks, KernelCounters};

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF programs failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no {0}")]
    Missing(String),
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("program {name} was rejected by the kernel: {source}")]
    Program {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("reading tracefs format of {0}: {1}")]
    Format(String, std::io::Error),
    #[error("reading the kernel's BTF (/sys/kernel/btf/vmlinux): {0}")]
    Btf(#[from] BtfError),
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Processes to observe (with their descendants, found by the caller).
    pub pids: Vec<u32>,
    /// Observe every process but this one.
    pub all: bool,
    /// Ring buffer size in bytes (a power of two multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Unread bytes at which the kernel wakes the reader, which otherwise reads on its own
    /// timer; 0: a wake-up for each record written to an empty ring buffer.
    pub wake_at_bytes: u32,
    pub hooks: Hooks,
}

/// The loaded and attached kernel side.
pub struct Capture {
    ebpf: Ebpf,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    probes: usize,
}

/// Offset of a field in a tracepoint's format file (`field:... NAME;\toffset:N;`).
pub fn field_offset(format: &str, name: &str) -> Option<u64> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let ident = decl.trim().rsplit([' ', '*']).next()?.split('[').next()?;
        if ident != name {
            return None;
        }
        rest.trim()
            .strip_prefix("offset:")?
            .split(';')
            .next()?
            .trim()
            .parse()
            .ok()
    })
}

fn read_format(category: &str, name: &str) -> Result<String, LoadError> {
    let path = format!(
        "{}/events/{category}/{name}/format",
        super::preflight::TRACEFS
    );
    std::fs::read_to_string(&path).map_err(|e| LoadError::Format(path, e))
}

impl Capture {
    pub fn load(cfg: &CaptureConfig) -> Result<Self, LoadError> {
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, e)| LoadError::Missing(format!("CPU count ({e})")))?
            as u32;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("SCRATCH", cpus)
            .map_max_entries("EVENTS", cfg.ring_buffer_bytes)
            .load(EBPF_OBJECT)?;
        // Kernel-side log lines (rare: only on map exhaustion) go to our tracing output.
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();

        let fork = read_format("sched", "sched_process_fork")?;
        let exit = read_format("sched", "sched_process_exit")?;
        let state = match cfg.hooks {
            Hooks::Socket => Some(read_format("sock", "inet_sock_set_state")?),
            Hooks::Syscall => None,
        };
        {
            let mut conf: Array<&mut MapData, u64> = map_mut(&mut ebpf, "CONFIG")?;
            let set = |conf: &mut Array<&mut MapData, u64>, k: u32, v: u64| {
                conf.set(k, v, 0).map_err(|source| LoadError::Map {
                    name: "CONFIG",
                    source,
                })
            };
            set(&mut conf, config::TRACE_ALL, u64::from(cfg.all))?;
            set(&mut conf, config::SELF_TGID, u64::from(std::process::id()))?;
            set(
                &mut conf,
                config::WAKE_AT_BYTES,
                u64::from(cfg.wake_at_bytes),
            )?;
            set(
                &mut conf,
                config::FORK_CHILD_PID_OFF,
                field_offset(&fork, "child_pid").unwrap_or(0),
            )?;
            set(
                &mut conf,
                config::EXIT_GROUP_DEAD_OFF,
                field_offset(&exit, "group_dead").unwrap_or(0),
            )?;
            if let Some(state) = &state {
                for (index, field) in config::STATE_FIELDS {
                    let off = field_offset(state, field).ok_or_else(|| {
                        LoadError::Missing(format!("field {field} in inet_sock_set_state"))
                    })?;
                    set(&mut conf, index, off)?;
                }
            }
        }
        let mut capture = Capture {
            ebpf,
            logger,
            probes: 0,
        };
        capture.add_pids(&cfg.pids)?;

        let btf = Btf::from_sys_fs()?;
        // The tail-called programs first, so that no call finds an empty slot once attached.
        for (array, hook, slot, name) in tail::PROGRAMS {
            if !cfg.hooks.owns(hook) {
                continue;
            }
            let prog = capture.btf_program(name)?;
            timed_load(name, || prog.load(hook, &btf))?;
            let fd = prog
                .fd()
                .map_err(|source| LoadError::Program { name, source })?
                .try_clone()
                .map_err(|e| LoadError::Missing(format!("a descriptor of {name} ({e})")))?;
            let mut tails: ProgramArray<&mut MapData> = map_mut(&mut capture.ebpf, array)?;
            tails.set(slot, &fd, 0).map_err(|source| LoadError::Map {
                name: array,
                source,
            })?;
        }
        for &(name, hook) in cfg.hooks.btf_tracepoints() {
            let prog = capture.btf_program(name)?;
            timed_load(name, || prog.load(hook, &btf))?;
            prog.attach()
                .map_err(|source| LoadError::Program { name, source })?;
            capture.probes += 1;
        }
        for &(category, name) in cfg.hooks.tracepoints() {
            let prog: &mut TracePoint = capture
                .ebpf
                .program_mut(name)
                .ok_or_else(|| LoadError::Missing(format!("program {name}")))?
                .try_into()
                .map_err(|source| LoadError::Program { name, source })?;
            timed_load(name, || prog.load())?;
            prog.attach(category, name)
                .map_err(|source| LoadError::Program { name, source })?;
            capture.probes += 1;
        }
        Ok(capture)
    }

    fn btf_program(&mut self, name: &'static str) -> Result<&mut BtfTracePoint, LoadError> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| LoadError::Missing(format!("program {name}")))?
            .try_into()
            .map_err(|source| LoadError::Program { name, source })
    }

    /// Forwards the kernel programs' log lines (rare) to the `log`/`tracing` output.
    pub fn flush_kernel_log(&mut self) {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
    }

    pub fn probes(&self) -> usize {
        self.probes
    }

    /// The set of processes excluded in `--all` mode.
    fn excluded(&mut self) -> Result<BpfHashMap<&mut MapData, u32, u8>, LoadError> {
        map_mut(&mut self.ebpf, "EXCLUDED")
    }

    /// Adds processes to the kernel's filter (the `TRACED` bitmap). Only before the programs
    /// are attached: the kernel side then changes the bitmap alone (forks and exits).
    fn add_pids(&mut self, pids: &[u32]) -> Result<(), LoadError> {
        let mut traced: Array<&mut MapData, u64> = map_mut(&mut self.ebpf, "TRACED")?;
        let err = |source| LoadError::Map {
            name: "TRACED",
            source,
        };
        for &pid in pids {
            let (word, bit) = traced_slot(pid);
            let v = traced.get(&word, 0).map_err(err)?;
            traced.set(word, v | bit, 0).map_err(err)?;
        }
        Ok(())
    }

    /// Stops observing processes in `--all` mode (they were filtered out in user space).
    pub fn exclude_pids(&mut self, pids: &[u32]) -> Result<(), LoadError> {
        let mut excluded = self.excluded()?;
        for &pid in pids {
            excluded
                .insert(pid, 1, 0)
                .map_err(|source| LoadError::Map {
                    name: "EXCLUDED",
                    source,
                })?;
        }
        Ok(())
    }

    /// Observes again processes excluded before (they exec'd into something the filter admits).
    pub fn include_pids(&mut self, pids: &[u32]) -> Result<(), LoadError> {
        let mut excluded = self.excluded()?;
        for pid in pids {
            // Already gone is fine.
            let _ = excluded.remove(pid);
        }
        Ok(())
    }

    /// Takes the ring buffer out (once) for the reader.
    pub fn ring(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| LoadError::Missing("EVENTS map".into()))?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map {
            name: "EVENTS",
            source,
        })
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, LoadError> {
        let stats: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("STATS")
                .ok_or_else(|| LoadError::Missing("STATS map".into()))?,
        )
        .map_err(|source| LoadError::Map {
            name: "STATS",
            source,
        })?;
        let sum = |i: u32| -> Result<u64, LoadError> {
            let v = stats.get(&i, 0).map_err(|source| LoadError::Map {
                name: "STATS",
                source,
            })?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(KernelCounters {
            ringbuf_drops: sum(stat::RINGBUF_DROPS)?,
            capped: sum(stat::CAPPED)?,
            iov_cut: sum(stat::IOV_CUT)?,
            read_faults: sum(stat::READ_FAULTS)?,
            unread_socket_calls: sum(stat::UNREAD_SOCKET_CALLS)?,
        })
    }
}

/// A map of the loaded object, as its typed view.
fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, LoadError>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| LoadError::Missing(format!("{name} map")))?;
    T::try_from(map).map_err(|source| LoadError::Map { name, source })
}

/// Verifies and loads one program, logging how long the verifier took.
fn timed_load(
    name: &'static str,
    load: impl FnOnce() -> Result<(), aya::programs::ProgramError>,
) -> Result<(), LoadError> {
    let started = std::time::Instant::now();
    load().map_err(|source| LoadError::Program { name, source })?;
    tracing::debug!(
        program = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "verified and loaded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork\nID: 318\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
    const FORK_5_15: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:1;\n\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:1;\n\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
    const EXIT_6_18: &str = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n";

    /// `sock:inet_sock_set_state` on 6.18 (the socket hooks read these fields).
    const STATE_6_18: &str = "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n";

    #[test]
    fn state_change_fields_the_socket_hooks_read() {
        let offsets: Vec<_> = config::STATE_FIELDS
            .iter()
            .map(|&(_, f)| field_offset(STATE_6_18, f))
            .collect();
        let want = [8, 16, 20, 26, 28, 30, 36, 56].map(Some);
        assert_eq!(offsets, want);
        // `daddr` is not mistaken for `daddr_v6`, nor `dport` for `sport`.
        assert_eq!(field_offset(STATE_6_18, "saddr"), Some(32));
        assert_eq!(field_offset(STATE_6_18, "sport"), Some(24));
        // Every field has its own CONFIG slot.
        let mut slots: Vec<u32> = config::STATE_FIELDS.iter().map(|&(i, _)| i).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), config::STATE_FIELDS.len());
        assert!(slots.iter().all(|&i| i < config::COUNT));
    }

    #[test]
    fn traced_bitmap_slots() {
        assert_eq!(traced_slot(0), (0, 1));
        assert_eq!(traced_slot(63), (0, 1 << 63));
        assert_eq!(traced_slot(64), (1, 1));
        assert_eq!(traced_slot(4242), (66, 1 << 18));
        // The largest task id the kernel hands out fits in the map.
        assert!(traced_slot(4 * 1024 * 1024 - 1).0 < observer_common::TRACED_WORDS);
    }

    #[test]
    fn format_offsets_of_both_kernel_generations() {
        assert_eq!(field_offset(FORK_6_18, "child_pid"), Some(20));
        assert_eq!(field_offset(FORK_6_18, "parent_pid"), Some(12));
        assert_eq!(field_offset(FORK_5_15, "child_pid"), Some(44));
        assert_eq!(field_offset(FORK_5_15, "child_comm"), Some(28));
        assert_eq!(field_offset(EXIT_6_18, "group_dead"), Some(32));
        assert_eq!(field_offset(FORK_5_15, "group_dead"), None);
        assert_eq!(field_offset("", "pid"), None);
    }
}
