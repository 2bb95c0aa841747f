//! Item 3: the user-space pipeline on recorded traffic, with criterion
//! (`observer/benches/pipeline.rs`): records per second on one core (decode + reassembly + head
//! parsing + correlation, and the same with JSON rendering) and allocations per record. Rates are
//! from criterion's median time per batch.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::parse;
use super::{Ctx, Row, cargo};
use crate::root_dir;

/// The criterion benchmark ids of `observer/benches/pipeline.rs`.
const IDS: &[&str] = &["pipeline/decode_to_findings", "pipeline/decode_to_json"];

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let home = root_dir().join("target/criterion");
    let mut c = cargo();
    c.args([
        "bench", "-p", "observer", "--bench", "pipeline", "--", "--noplot",
    ])
    .env("CRITERION_HOME", &home);
    if ctx.quick {
        c.args([
            "--warm-up-time",
            "1",
            "--measurement-time",
            "2",
            "--sample-size",
            "10",
        ]);
    }
    crate::run(&mut c)?;
    let allocs: Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("allocs.json")).context("the bench's allocs.json")?,
    )?;
    let mut rows = Vec::new();
    let mut res = serde_json::Map::new();
    for id in IDS {
        let est = home.join(id).join("new/estimates.json");
        let (mean_ns, median_ns) = parse::criterion_ns(
            &std::fs::read_to_string(&est).with_context(|| format!("reading {}", est.display()))?,
        )
        .with_context(|| format!("no mean/median in {}", est.display()))?;
        let a = &allocs[*id];
        let records = a["records"].as_f64().context("records in allocs.json")?;
        // The median: robust to neighbours' bursts on a shared machine.
        let per_s = records / (median_ns * 1e-9);
        let per_record = a["allocs_per_record"].as_f64().unwrap_or(f64::NAN);
        let name = id.trim_start_matches("pipeline/");
        rows.push(Row::check(
            "3 pipeline",
            format!("{name}: records/s on one core"),
            per_s,
            (0, ""),
            ">= 1,000,000",
            |v| v >= 1e6,
        ));
        rows.push(Row::info(
            "3 pipeline",
            format!("{name}: allocations per record"),
            format!(
                "{per_record:.2} ({:.0} B)",
                a["bytes_per_record"].as_f64().unwrap_or(f64::NAN)
            ),
        ));
        res.insert(
            (*id).into(),
            json!({"mean_ns_per_batch": mean_ns, "median_ns_per_batch": median_ns,
                   "records_per_batch": records,
                   "records_per_second": per_s, "ns_per_record": median_ns / records,
                   "allocs_per_record": per_record, "bytes_per_record": a["bytes_per_record"],
                   "outputs_per_batch": a["outputs"]}),
        );
    }
    Ok((rows, Value::Object(res)))
}
