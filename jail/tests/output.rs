//! No lost output: many short runs, each writing 64 KiB and exiting at once.

mod common;

use common::{can_run, spec_json, Bundle, Jail};

const RUNS: usize = 500;
const BYTES: usize = 64 * 1024;

#[test]
fn every_byte_of_every_run_is_read() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json(&format!(
        "head -c {BYTES} /dev/urandom; head -c {BYTES} /dev/zero >&2"
    ));
    // Fewer namespaces keep the run short; output handling is the same.
    v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}]);
    v["hostname"] = serde_json::Value::Null;
    let started = std::time::Instant::now();
    for i in 0..RUNS {
        let out = jail.run(&bundle, &v);
        assert_eq!(out.status.code(), 0, "run {i}");
        assert_eq!(out.stdout.len(), BYTES, "run {i}: stdout");
        assert_eq!(out.stderr.len(), BYTES, "run {i}: stderr");
        assert!(out.stderr.iter().all(|b| *b == 0), "run {i}: stderr bytes");
    }
    let per_run = started.elapsed() / RUNS as u32;
    eprintln!("{RUNS} runs of {BYTES} bytes each, all read; {per_run:?} per run");
}
