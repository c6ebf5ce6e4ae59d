//! The one test-support module of the tests that need root (tests/e2e_*, lab_*, os_*): include
//! it with `mod support;` and start each test with its gate:
//!
//! ```ignore
//! let Some(_lab) = support::needs_lab() else { return };   // root, iproute2, one lab test at a time
//! let Some(_root) = support::needs_root() else { return }; // root only (tests/os_*)
//! ```
//!
//! A test that cannot run says so: the gate writes `SKIP <test>: <why>` to the process's stderr
//! itself, past the test harness's capture, so the line shows in every run and CI can count it
//! (.ci/run fails when a root test skipped while running as root). Never a silent pass.
//!
//! - [`ns`]: anonymous namespaces owned by the test process, veth plumbing, packet builders.
//! - [`lab`]: the end-to-end lab: topology, `braid edge`/`braid core` processes, their UCI files
//!   and control socket, traffic endpoints, captures, snapshots of a namespace's state.
//!
//! tests/e2e_util and tests/os_util are its old names: a test written against them builds here
//! with `mod support; use support::*;` ([`SERIAL`], [`can_run`] and [`root`] are kept).
#![allow(dead_code, unused_imports)]

pub mod lab;
pub mod ns;

pub use lab::*;
pub use ns::*;

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Tests in one binary share the machine's namespaces and the two CPUs: one lab test at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Held while a lab test runs: the other lab tests of this binary wait.
pub type LabGuard = MutexGuard<'static, ()>;

/// Writes `SKIP <test>: <why>` to stderr, past the harness's capture (`eprintln!` would be
/// captured and shown only for a failing test). `<test>` is the running test's name.
pub fn skip(why: &str) {
    let name = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIP {name}: {why}");
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Proof that the test runs as root (see [`needs_root`]).
pub struct Root;

/// The gate of a test that needs root only: `None` after a SKIP line when not root.
pub fn needs_root() -> Option<Root> {
    if !is_root() {
        skip("needs root (network namespaces)");
        return None;
    }
    Some(Root)
}

/// The gate of a lab test: root, iproute2 (the lab builds its topology with `ip`), and the
/// binary's lab lock, held until the guard drops. `None` after a SKIP line.
pub fn needs_lab() -> Option<LabGuard> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    needs_root()?;
    if !have_ip() {
        skip("needs `ip` (iproute2): the lab builds its topology with it");
        return None;
    }
    Some(g)
}

/// The first of `paths` that exists; `None` after a SKIP line naming `what` otherwise.
pub fn needs_file(what: &str, paths: &[&'static str]) -> Option<&'static str> {
    let found = paths.iter().copied().find(|p| Path::new(p).exists());
    if found.is_none() {
        skip(&format!("needs {what} (none of {})", paths.join(", ")));
    }
    found
}

fn have_ip() -> bool {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// A namespace tag unique to this test process (several worktrees may run these tests at once):
/// `first` then two base-36 digits of the pid.
pub fn tag(first: char) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let p = std::process::id() as usize;
    format!("{first}{}{}", D[p / 36 % 36] as char, D[p % 36] as char)
}

/// Old gate (tests/e2e_util): whether a lab test can run, after a SKIP line when not. The
/// caller holds [`SERIAL`] itself. New tests use [`needs_lab`].
pub fn can_run() -> bool {
    if needs_root().is_none() {
        return false;
    }
    if !have_ip() {
        skip("needs `ip` (iproute2): the lab builds its topology with it");
        return false;
    }
    true
}

/// Old gate (tests/os_util): whether running as root, after a SKIP line when not. New tests
/// use [`needs_root`].
pub fn root() -> bool {
    needs_root().is_some()
}
