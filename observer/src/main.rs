use aya::programs::TracePoint;
fn main() -> anyhow::Result<()> {
    let mut ebpf = aya::EbpfLoader::new().set_max_entries("SCRATCH", aya::util::nr_cpus().unwrap() as u32).load(observer::capture::loader::EBPF_OBJECT)?;
    let names: Vec<(String, String)> = ebpf.programs().map(|(n, _)| (n.to_string(), String::new())).collect();
    for (name, _) in names {
        let cat = if name.starts_with("sched") { "sched" } else { "syscalls" };
        let p: &mut TracePoint = ebpf.program_mut(&name).unwrap().try_into()?;
        if let Err(e) = p.load() { eprintln!("LOAD {name}: {e:?}"); std::process::exit(1) }
        p.attach(cat, &name)?;
        eprintln!("attached {name}");
    }
    Ok(())
}
