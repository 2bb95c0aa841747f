//! Pure parsers of what the benchmarks read: wrk's report, /proc/PID/stat and status, the
//! observer's JSON lines, criterion's estimates. Unit-tested below.

use serde_json::Value;

/// What `wrk --latency` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors (connect + read + write + timeout) and non-2xx/3xx responses.
    pub errors: u64,
}

/// A wrk duration such as `313.59us`, `1.23ms`, `2.00s` or `1.50m`, in microseconds.
pub fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(v * scale)
}

/// Parses wrk's output (run with `--latency`).
pub fn wrk(out: &str) -> Option<WrkReport> {
    let mut r = WrkReport::default();
    let (mut have_rps, mut have_p99) = (false, false);
    for line in out.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().ok()?;
            have_rps = true;
        } else if t.starts_with("50%") {
            r.p50_us = duration_us(words.nth(1)?)?;
        } else if t.starts_with("99%") {
            r.p99_us = duration_us(words.nth(1)?)?;
            have_p99 = true;
        } else if t.contains(" requests in ") {
            // "1234567 requests in 10.00s, 200.00MB read"
            r.requests = words.next()?.parse().ok()?;
            let secs = t.split(" requests in ").nth(1)?.split(',').next()?;
            r.seconds = duration_us(secs)? / 1e6;
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "Socket errors: connect 0, read 12, write 0, timeout 3"
            for part in rest.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    r.errors += n.parse::<u64>().ok()?;
                }
            }
        } else if let Some(n) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += n.trim().parse::<u64>().ok()?;
        }
    }
    (have_rps && have_p99).then_some(r)
}

/// utime + stime of a process, in clock ticks, from the text of /proc/PID/stat.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's CPU time from the `cpu` line of /proc/stat, in clock ticks: all of it (user
/// through steal; guest time is already inside user and nice) and the part the hypervisor gave
/// to other guests (steal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub total: u64,
    pub steal: u64,
    /// Time the CPUs ran something: user, nice, system, irq and softirq (not idle, iowait or
    /// steal).
    pub busy: u64,
}

pub fn cpu_times(proc_stat: &str) -> Option<CpuTimes> {
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let base = f.get(..8)?;
    Some(CpuTimes {
        total: base.iter().sum(),
        steal: base[7],
        busy: base[0] + base[1] + base[2] + base[5] + base[6],
    })
}

/// Busy CPU time (all CPUs, in clock ticks) between two readings; `None` when the counters went
/// back.
pub fn busy_ticks(before: CpuTimes, after: CpuTimes) -> Option<u64> {
    after.busy.checked_sub(before.busy)
}

/// The share of CPU time stolen between two readings, in per cent; `None` when no time passed
/// or the counters went back.
pub fn steal_pct(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|&t| t > 0)?;
    let steal = after.steal.checked_sub(before.steal)?;
    Some(100.0 * steal as f64 / total as f64)
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// The observer's summary line, when `line` is one.
pub fn summary(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["type"] == "summary").then_some(v)
}

/// The figures of a summary the benchmarks report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capture {
    pub records: u64,
    pub ringbuf_drops: u64,
    pub unknown: u64,
    pub lost_heads: u64,
    pub inbound: u64,
}

pub fn capture(summary: &Value) -> Capture {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let c = &summary["capture"];
    Capture {
        records: n(&c["records"]),
        ringbuf_drops: n(&c["ringbuf_drops"]),
        lost_heads: n(&c["lost_heads"]),
        unknown: n(&summary["unknown"]),
        inbound: n(&summary["inbound"]),
    }
}

/// The (mean, median) time per iteration (ns) in criterion's `estimates.json`.
pub fn criterion_ns(estimates: &str) -> Option<(f64, f64)> {
    let v: Value = serde_json::from_str(estimates).ok()?;
    Some((
        v["mean"]["point_estimate"].as_f64()?,
        v["median"]["point_estimate"].as_f64()?,
    ))
}

/// (name, run_time_ns, run_cnt) of the programs in `bpftool prog show --json` held by process
/// `owner` (its `pids` field); every program when bpftool does not say who holds them.
pub fn bpf_prog_stats(progs: &Value, owner: u32) -> Vec<(String, u64, u64)> {
    let list = progs.as_array().map(Vec::as_slice).unwrap_or_default();
    let knows_owners = list.iter().any(|p| p.get("pids").is_some());
    list.iter()
        .filter(|p| {
            !knows_owners
                || p["pids"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|x| x["pid"] == owner))
        })
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                p["run_time_ns"].as_u64().unwrap_or(0),
                p["run_cnt"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

type ProgStats = [(String, u64, u64)];

/// Run time and runs of the programs named `name` between two snapshots.
fn delta(before: &ProgStats, after: &ProgStats, name: &str) -> (u64, u64) {
    let sum = |s: &ProgStats| {
        s.iter()
            .filter(|(n, _, _)| n == name)
            .fold((0u64, 0u64), |(t, c), (_, pt, pc)| (t + pt, c + pc))
    };
    let (b, a) = (sum(before), sum(after));
    (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1))
}

/// Run time and runs of all the programs between two snapshots (tail calls count in the
/// program that made them).
pub fn total_run(before: &ProgStats, after: &ProgStats) -> (u64, u64) {
    let sum = |s: &ProgStats| {
        s.iter()
            .fold((0u64, 0u64), |(t, c), (_, pt, pc)| (t + pt, c + pc))
    };
    let (b, a) = (sum(before), sum(after));
    (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1))
}

/// Per program name: runs and mean ns per run between two snapshots (programs that ran).
pub fn deltas(before: &ProgStats, after: &ProgStats) -> Value {
    let mut names: Vec<&str> = after.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut m = serde_json::Map::new();
    for n in names {
        let (ns, runs) = delta(before, after, n);
        if runs > 0 {
            m.insert(
                n.to_owned(),
                serde_json::json!({"runs": runs, "ns_per_run": ns as f64 / runs as f64}),
            );
        }
    }
    Value::Object(m)
}

/// The median of `v` (mean of the middle two for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:40123/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   313.59us  412.10us  20.01ms   95.12%
    Req/Sec    51.22k     3.10k   60.00k    70.50%
  Latency Distribution
     50%  255.00us
     75%  340.00us
     90%  480.00us
     99%    1.23ms
  1019876 requests in 10.00s, 160.49MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 101987.61
Transfer/sec:     16.05MB
";

    #[test]
    fn cpu_times_and_steal_share() {
        let before = "cpu  100 5 50 800 10 0 5 30 7 0\ncpu0 50 2 25 400 5 0 2 15 3 0\n";
        let after = "cpu  200 5 70 900 10 0 5 70 9 0\ncpu0 100 2 35 450 5 0 2 35 4 0\n";
        let b = cpu_times(before).unwrap();
        let a = cpu_times(after).unwrap();
        // guest time (7, 9) is part of user already: not added again.
        assert_eq!(
            b,
            CpuTimes {
                total: 1000,
                steal: 30,
                busy: 160
            }
        );
        assert_eq!(
            a,
            CpuTimes {
                total: 1260,
                steal: 70,
                busy: 280
            }
        );
        assert_eq!(busy_ticks(b, a), Some(120));
        assert_eq!(busy_ticks(a, b), None);
        let pct = steal_pct(b, a).unwrap();
        assert!((pct - 100.0 * 40.0 / 260.0).abs() < 1e-9, "{pct}");
        assert_eq!(steal_pct(a, a), None);
        assert_eq!(steal_pct(a, b), None);
        // Kernels without steal accounting (fewer fields), per-CPU lines only, garbage.
        assert_eq!(cpu_times("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(cpu_times("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(cpu_times("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn wrk_report() {
        let r = wrk(WRK).unwrap();
        assert_eq!(r.requests, 1_019_876);
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.rps, 101_987.61);
        assert_eq!(r.p50_us, 255.0);
        assert_eq!(r.p99_us, 1230.0);
        assert_eq!(r.errors, 7);
    }

    #[test]
    fn wrk_without_latency_distribution_is_rejected() {
        let no_latency: String = WRK.lines().filter(|l| !l.contains("99%")).collect();
        assert_eq!(wrk(&no_latency), None);
        assert_eq!(wrk(""), None);
    }

    #[test]
    fn wrk_units() {
        assert_eq!(duration_us("313.59us"), Some(313.59));
        assert_eq!(duration_us("1.23ms"), Some(1230.0));
        assert_eq!(duration_us("2.00s"), Some(2_000_000.0));
        assert_eq!(duration_us("1.50m"), Some(90_000_000.0));
        assert_eq!(duration_us(" 10.00s"), Some(10_000_000.0));
        assert_eq!(duration_us("12"), None);
        assert_eq!(duration_us("1.0xs"), None);
    }

    #[test]
    fn proc_stat_cpu() {
        // A command name with a space and a parenthesis.
        let stat = "4242 (obs erver)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 3 0 \
                    100 123456 789 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(187));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn proc_status_fields() {
        let status = "Name:\tobserver\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(20480));
        assert_eq!(status_kib(status, "VmHWM"), Some(40960));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn observer_summary() {
        assert_eq!(summary(r#"{"type":"ready","pids":[1]}"#), None);
        assert_eq!(summary("not json"), None);
        let s = summary(
            r#"{"type":"summary","inbound":10,"unknown":3,"capture":{"records":1234,"ringbuf_drops":56,"lost_heads":2}}"#,
        )
        .unwrap();
        assert_eq!(
            capture(&s),
            Capture {
                records: 1234,
                ringbuf_drops: 56,
                unknown: 3,
                lost_heads: 2,
                inbound: 10,
            }
        );
    }

    #[test]
    fn criterion_estimates() {
        let e = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2072503.5,"standard_error":1.0},"median":{"point_estimate":2.0}}"#;
        assert_eq!(criterion_ns(e), Some((2_072_503.5, 2.0)));
        assert_eq!(criterion_ns("{}"), None);
    }

    #[test]
    fn bpftool_stats() {
        let before: Value = serde_json::from_str(
            r#"[{"id":1,"name":"sys_enter_write","run_time_ns":1000,"run_cnt":10,"pids":[{"pid":7,"comm":"observer"}]},
                {"id":2,"name":"sys_enter_write","run_time_ns":5,"run_cnt":5,"pids":[{"pid":8,"comm":"other"}]},
                {"id":3,"name":"sys_exit_write","pids":[{"pid":7,"comm":"observer"}]}]"#,
        )
        .unwrap();
        let after: Value = serde_json::from_str(
            r#"[{"id":1,"name":"sys_enter_write","run_time_ns":31000,"run_cnt":1010,"pids":[{"pid":7,"comm":"observer"}]},
                {"id":2,"name":"sys_enter_write","run_time_ns":99999,"run_cnt":6,"pids":[{"pid":8,"comm":"other"}]},
                {"id":3,"name":"sys_exit_write","run_time_ns":500,"run_cnt":10,"pids":[{"pid":7,"comm":"observer"}]}]"#,
        )
        .unwrap();
        let (b, a) = (bpf_prog_stats(&before, 7), bpf_prog_stats(&after, 7));
        assert_eq!(b.len(), 2);
        assert_eq!(deltas(&b, &a)["sys_enter_write"]["ns_per_run"], 30.0);
        assert_eq!(deltas(&b, &a)["sys_exit_write"]["ns_per_run"], 50.0);
        assert!(deltas(&b, &a).get("sys_enter_read").is_none());
        assert_eq!(deltas(&b, &a)["sys_exit_write"]["runs"], 10);
        assert_eq!(total_run(&b, &a), (30_500, 1_010));
        // Without owner information every program counts.
        let anon: Value =
            serde_json::from_str(r#"[{"name":"a","run_time_ns":1,"run_cnt":1}]"#).unwrap();
        assert_eq!(bpf_prog_stats(&anon, 7).len(), 1);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }
}
