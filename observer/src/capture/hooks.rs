//! What the kernel side is made of, as user space names it: the two sets of hooks that can
//! capture the traffic, and the counters the programs keep.

/// Which kernel hooks capture the data calls (see the kernel crate's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hooks {
    /// The socket tracepoints (`sock_send_length`, `sock_recv_length`, kernel 6.3 and later)
    /// and TCP state changes: the other syscalls of the machine pay nothing.
    Socket,
    /// The raw syscall tracepoints (`sys_enter`, `sys_exit`): every syscall of every task pays
    /// for them, on any kernel.
    Syscall,
}

impl Hooks {
    /// The socket hooks where the kernel has their tracepoints, else the syscall hooks.
    pub fn detect(tracefs: &std::path::Path) -> Self {
        if observer_common::socket_events_present(tracefs) {
            Hooks::Socket
        } else {
            Hooks::Syscall
        }
    }

    /// Its BTF tracepoints: (program, hook).
    pub fn btf_tracepoints(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Hooks::Socket => &[
                ("sock_send", "sock_send_length"),
                ("sock_recv", "sock_recv_length"),
            ],
            Hooks::Syscall => &[("sys_enter", "sys_enter"), ("sys_exit", "sys_exit")],
        }
    }

    /// Its classic tracepoints: (category, name), also the program's name.
    pub fn tracepoints(self) -> &'static [(&'static str, &'static str)] {
        const SCHED: [(&str, &str); 3] = [
            ("sched", "sched_process_fork"),
            ("sched", "sched_process_exit"),
            ("sched", "sched_process_exec"),
        ];
        const SOCKET: [(&str, &str); 4] = [
            SCHED[0],
            SCHED[1],
            SCHED[2],
            ("sock", "inet_sock_set_state"),
        ];
        match self {
            Hooks::Socket => &SOCKET,
            Hooks::Syscall => &SCHED,
        }
    }

    /// Whether a tail-called program's hook is one of these hooks'.
    pub(crate) fn owns(self, hook: &str) -> bool {
        self.btf_tracepoints().iter().any(|&(_, h)| h == hook)
    }
}

impl std::fmt::Display for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hooks::Socket => "socket",
            Hooks::Syscall => "syscall",
        })
    }
}

/// The kernel programs' counters (the `STATS` map), summed over the CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub ringbuf_drops: u64,
    pub capped: u64,
    pub iov_cut: u64,
    pub read_faults: u64,
    /// Socket hooks: socket sends and receives made by calls the programs do not read.
    pub unread_socket_calls: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use observer_common::{SOCKET_EVENTS, tail};

    #[test]
    fn hooks_are_detected_from_tracefs() {
        let dir = std::env::temp_dir().join(format!("observer-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Hooks::detect(&dir), Hooks::Syscall);
        for (i, e) in SOCKET_EVENTS.iter().enumerate() {
            std::fs::create_dir_all(dir.join(e)).unwrap();
            let want = if i + 1 == SOCKET_EVENTS.len() {
                Hooks::Socket
            } else {
                Hooks::Syscall
            };
            assert_eq!(Hooks::detect(&dir), want, "with {} of the events", i + 1);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_set_of_hooks_has_its_tail_programs_in_its_own_arrays() {
        for hooks in [Hooks::Socket, Hooks::Syscall] {
            let tails: Vec<_> = tail::PROGRAMS
                .iter()
                .filter(|&&(_, hook, _, _)| hooks.owns(hook))
                .collect();
            let mut slots: Vec<u32> = tails.iter().map(|&&(_, _, slot, _)| slot).collect();
            slots.sort_unstable();
            // Both iovec shapes, for each data hook that tail-calls (one per array).
            let arrays: std::collections::BTreeSet<_> =
                tails.iter().map(|&&(array, _, _, _)| array).collect();
            assert_eq!(slots.len(), tail::COUNT as usize * arrays.len(), "{hooks}");
            for array in &arrays {
                let in_array: Vec<_> = tails.iter().filter(|t| t.0 == *array).collect();
                // One hook per array: a tracing program may only tail-call its own hook's.
                assert!(in_array.iter().all(|t| t.1 == in_array[0].1), "{array}");
                let mut s: Vec<u32> = in_array.iter().map(|t| t.2).collect();
                s.sort_unstable();
                assert_eq!(s, [tail::IOV, tail::MSGHDR], "{array}");
            }
        }
        // Every tail program belongs to exactly one set of hooks.
        for &(_, hook, _, name) in &tail::PROGRAMS {
            let owners = [Hooks::Socket, Hooks::Syscall]
                .iter()
                .filter(|h| h.owns(hook))
                .count();
            assert_eq!(owners, 1, "{name}");
        }
    }
}
