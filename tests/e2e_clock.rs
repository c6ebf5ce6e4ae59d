//! A router whose clock went back between two runs (issue #12, item 4), end to end with the
//! built `braid` binary in the lab's namespaces and libfaketime on the edge (the real-time
//! clock cannot be set per namespace; `LD_PRELOAD` moves the edge's `clock_gettime` of
//! CLOCK_REALTIME only, the monotonic clock its timers run on stays true).
//!
//! The handshake carries the edge's time, and the core refuses one not newer than the last it
//! accepted from that key. Before, an edge restarted with its clock a day behind (a router
//! without a real-time clock, set at boot from the newest file in /etc) was refused until its
//! clock passed the first run's: a day here. Now its handshake times go on from the mark it
//! keeps in its state file, and it bonds at once; and with the state file lost (a sysupgrade
//! that did not keep /etc/braid) the core answers the first handshake with the time to beat,
//! and it bonds one round trip later.
//!
//! Needs root, iproute2 and libfaketime (Debian package `faketime`, which .ci/run installs);
//! a SKIP line otherwise. Namespaces: `blg<pid>-*`.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

fn faketime_env(lib: &'static str, offset: &'static str) -> [(&'static str, &'static str); 3] {
    [
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}

#[test]
fn an_edge_whose_clock_went_back_a_day_bonds_at_once() {
    let Some(_lab) = needs_lab() else { return };
    let Some(lib) = needs_file("libfaketime (apt-get install faketime)", LIBFAKETIME) else {
        return;
    };
    let mut lab = Lab::new(
        &tag('g'),
        vec![edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 15)])],
    );
    let state = lab.edge_conf(0).state;
    // The first run, clock true: the core accepts its handshakes (and remembers their time).
    let first = lab.start_bonded()[0];
    lab.edge_mut(0).term();
    let mark = read_mark(&state);
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;

    // The router reboots with its clock a day behind; the state file kept.
    lab.start_edge_env(0, &faketime_env(lib, "-1d"));
    let behind = lab.wait_bonded(0, Duration::from_secs(5));
    let log = lab.edge(0).log_text();
    lab.edge_mut(0).term();
    // ... and again two days behind, the state file lost.
    let _ = std::fs::remove_file(&state);
    lab.start_edge_env(0, &faketime_env(lib, "-2d"));
    let lost = lab.wait_bonded(0, Duration::from_secs(5));
    println!(
        "bonded: clock true {} ms; a day behind, state kept: {:?}; two days behind, state \
         lost: {:?}",
        first.as_millis(),
        behind.as_ref().map(|d| d.as_millis()),
        lost.as_ref().map(|d| d.as_millis()),
    );
    let behind = behind.unwrap_or_else(|e| panic!("a day behind: {e}\n{log}"));
    assert!(
        mark > now_us,
        "the mark {mark} is not ahead of the clock {now_us}"
    );
    let lost = lost.unwrap_or_else(|e| panic!("state file lost: {e}"));
    // As fast as a first start (the lab's handshake and steering take well under a second),
    // within a generous bound for a loaded machine.
    assert!(behind < Duration::from_secs(3), "{behind:?}");
    assert!(lost < Duration::from_secs(3), "{lost:?}");
    // The lost state file was written again, its mark past the true time although the edge's
    // clock is two days behind: it went on from the time the core told.
    lab.edge_mut(0).term();
    let again = read_mark(&state);
    assert!(
        again > now_us,
        "mark {again} after the lost file, true clock {now_us}"
    );
}

/// The handshake clock mark in a state file (0 if none).
fn read_mark(state: &Path) -> u64 {
    std::fs::read_to_string(state)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("handshake_clock "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
