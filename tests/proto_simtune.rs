//! Runs the simulator's scenario files against the real protocol (the edge's `Session` and the
//! core's `Endpoint`, as `braid sim` runs them). Used to tune the protocol core; prints the
//! simulator's table. `cargo test --test proto_simtune -- --ignored --nocapture`
//! `SIMTUNE=hetero,lte` picks scenarios; `SIMTUNE_DURATION=10` shortens the runs (seconds),
//! `SIMTUNE_WARMUP=5` sets the warm-up, `SIMTUNE_STATS=1` prints the edge's statistics.
//! For the links' estimates over time, `braid sim NAME --timeline`.

use std::path::Path;

use braid::sim::engine;
use braid::sim::scenario::Scenario;

#[test]
#[ignore = "tuning aid, prints figures: SIMTUNE=hetero,lte cargo test --test proto_simtune -- --ignored --nocapture"]
fn simtune() {
    let which = std::env::var("SIMTUNE").unwrap_or_else(|_| "hetero".into());
    for name in which.split(',') {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{name}.toml"));
        let mut sc = Scenario::load(&path).unwrap();
        if let Ok(d) = std::env::var("SIMTUNE_DURATION") {
            sc.set_duration(d.parse::<u64>().unwrap() * 1_000_000)
                .unwrap();
        }
        if let Ok(w) = std::env::var("SIMTUNE_WARMUP") {
            sc.warmup_us = w.parse::<u64>().unwrap() * 1_000_000;
        }
        let t0 = std::time::Instant::now();
        let rep = engine::run(&sc).unwrap();
        let cpu = t0.elapsed();
        println!("{}", rep.table());
        println!("{name}: wall {:.2} s", cpu.as_secs_f64());
        if std::env::var("SIMTUNE_STATS").is_ok() {
            println!("{}", rep.endpoints[0]);
        }
    }
}
