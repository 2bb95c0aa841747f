//! The result table (stdout and Markdown) and the JSON files.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Row;

pub fn item_label(item: &str) -> &'static str {
    match item {
        "app" => "1 app",
        "syscall" => "2 syscall",
        "pipeline" => "3 pipeline",
        "loss" => "4 loss",
        _ => "5 memory",
    }
}

fn status(r: &Row) -> &'static str {
    match r.pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "—",
    }
}

/// Rows sorted by item (1..6), in the order each item produced them.
fn sorted(rows: &[Row]) -> Vec<&Row> {
    let mut v: Vec<&Row> = rows.iter().collect();
    v.sort_by_key(|r| r.item.split(' ').next().unwrap_or("").to_owned());
    v
}

/// The table as aligned text.
pub fn text(rows: &[Row]) -> String {
    let rows = sorted(rows);
    let w = |f: &dyn Fn(&Row) -> usize, min: usize| {
        rows.iter().map(|r| f(r)).max().unwrap_or(0).max(min)
    };
    let (wi, wm, wv, wt) = (
        w(&|r| r.item.chars().count(), 4),
        w(&|r| r.metric.chars().count(), 6),
        w(&|r| r.value.chars().count(), 5),
        w(&|r| r.target.chars().count(), 6),
    );
    let mut s = format!(
        "{:wi$}  {:wm$}  {:>wv$}  {:wt$}  status\n",
        "item", "metric", "value", "target"
    );
    for r in rows {
        s.push_str(&format!(
            "{:wi$}  {:wm$}  {:>wv$}  {:wt$}  {}\n",
            r.item,
            r.metric,
            r.value,
            r.target,
            status(r)
        ));
    }
    s
}

/// The table as Markdown, with the machine facts above it.
pub fn markdown(rows: &[Row], machine: &Value, quick: bool) -> String {
    let m = |k: &str| machine[k].as_str().unwrap_or("").to_owned();
    let mut s = format!(
        "Run of {date} ({mode}) on {cpu}, {n} CPUs, kernel {kernel}, commit {commit}{dirty}; load average at start {load}; kernel.bpf_stats_enabled at start: {stats}.\n\n\
         | item | metric | value | target | status |\n| --- | --- | ---: | --- | --- |\n",
        date = m("date"),
        mode = if quick {
            "quick mode: short arms, noisy"
        } else {
            "full mode"
        },
        cpu = m("cpu"),
        n = machine["nproc"],
        kernel = m("kernel"),
        commit = m("git_commit").chars().take(10).collect::<String>(),
        dirty = if machine["git_dirty"] == true {
            " (dirty)"
        } else {
            ""
        },
        load = m("loadavg_at_start"),
        stats = m("bpf_stats_enabled_at_start"),
    );
    for r in sorted(rows) {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.item,
            r.metric.replace('|', "\\|"),
            r.value.replace('|', "\\|"),
            r.target,
            status(r)
        ));
    }
    s
}

/// Prints the table and writes results-<time>.json, latest.json and latest.md into `dir`.
pub fn write(
    dir: &Path,
    machine: &Value,
    quick: bool,
    rows: &[Row],
    results: Value,
) -> anyhow::Result<()> {
    println!("\n{}", text(rows));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let table: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"item": r.item, "metric": r.metric, "value": r.value, "target": r.target, "pass": r.pass})
        })
        .collect();
    let doc = json!({
        "machine": machine,
        "mode": if quick { "quick" } else { "full" },
        "table": table,
        "results": results,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    let stamp = machine["date"]
        .as_str()
        .unwrap_or("unknown")
        .replace([':', '-'], "");
    for name in [format!("results-{stamp}.json"), "latest.json".to_owned()] {
        let p = dir.join(name);
        std::fs::write(&p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    let md = dir.join("latest.md");
    std::fs::write(&md, markdown(rows, machine, quick))
        .with_context(|| format!("writing {}", md.display()))?;
    eprintln!(
        "bench: wrote {} and {}",
        dir.join("latest.json").display(),
        md.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sorts_by_item_and_marks_status() {
        let rows = vec![
            Row::check("6 cpu", "cpu", 12.0, (1, " ms"), "<= 50 ms", |v| v <= 50.0),
            Row::check("1 app", "ratio", 0.95, (3, ""), ">= 0.99", |v| v >= 0.99),
            Row::check("1 app", "nan", f64::NAN, (3, ""), ">= 0.99", |v| v >= 0.99),
        ];
        let t = text(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].starts_with("1 app")
                && lines[1].contains("0.950")
                && lines[1].ends_with("FAIL")
        );
        assert!(lines[2].contains("n/a") && lines[2].ends_with("—"));
        assert!(
            lines[3].starts_with("6 cpu")
                && lines[3].contains("12.0 ms")
                && lines[3].ends_with("pass")
        );
        let md = markdown(
            &rows,
            &json!({"date": "2025-01-01T00:00:00Z", "nproc": 2}),
            true,
        );
        assert!(md.contains("| 1 app | ratio | 0.950 | >= 0.99 | FAIL |"));
        assert!(md.contains("quick mode"));
    }
}
