//! Emulated topologies in network namespaces: links, scenarios, workloads, reports.

use std::ffi::OsString;
use std::process::ExitCode;

/// `braid lab ...`.
pub fn cli_main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("braid lab: not built yet");
    ExitCode::from(2)
}
