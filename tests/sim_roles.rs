//! Issue #5's role cases on the simulator: a backup link carries nothing while a primary is up,
//! and takes over within the failover budget when the primary fails.

use std::path::Path;

use braid::sim::scenario::Dir;
use braid::sim::{run, Report, Scenario};

fn run_named(name: &str) -> Report {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let sc = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let r = run(&sc).unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{}", r.table());
    r
}

fn carried(r: &Report, link: &str) -> f64 {
    r.links
        .iter()
        .filter(|l| l.link == link && l.dir == Dir::Up)
        .map(|l| l.carried_mbit)
        .sum()
}

#[test]
fn backup_link_is_idle_while_the_primary_is_up() {
    let r = run_named("roles");
    let backup = carried(&r, "backup");
    let primary = carried(&r, "primary");
    assert!(
        backup < 0.1,
        "backup carried {backup:.3} Mbit/s with the primary up (probes only allowed)"
    );
    assert!(primary > 18.0, "primary carried only {primary:.2} Mbit/s");
}

#[test]
fn backup_link_takes_over_when_the_primary_fails() {
    let r = run_named("roles-failover");
    let up = r.dir(Dir::Up).unwrap();
    let backup = carried(&r, "backup");
    // 3 s of a 10 Mbit/s link over 20 s is 1.5 Mbit/s on average: most of it must be used.
    assert!(
        backup > 1.0,
        "backup carried {backup:.3} Mbit/s on average; it should carry the outage"
    );
    assert!(
        up.longest_gap_ms <= 300.0,
        "longest delivery gap {} ms",
        up.longest_gap_ms
    );
    assert_eq!(up.lost, 0, "lost {} of {}", up.lost, up.sent);
}
