//! The deterministic multi-link simulator behind `braid sim`.

use std::ffi::OsString;
use std::process::ExitCode;

/// `braid sim SCENARIO [--json]`.
pub fn cli_main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("braid sim: not built yet");
    ExitCode::from(2)
}
