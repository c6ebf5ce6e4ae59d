//! Start-up shared by `braid edge` and `braid core`: the command line, the config for the
//! role, logging, and the current-thread runtime the event loop runs on.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::model::{Config, Role};

/// Parsed command line of `braid edge` / `braid core`.
pub(crate) struct DaemonArgs {
    config: PathBuf,
    stderr: bool,
    /// `--devices FILE` (edge only).
    pub(crate) devices: Option<PathBuf>,
}

/// Parses `--config FILE --stderr --help` (and `--devices FILE` for the edge); `Err(code)` to
/// exit with.
pub(crate) fn parse_args(
    cmd: &str,
    help: &str,
    args: Vec<OsString>,
) -> Result<DaemonArgs, ExitCode> {
    use lexopt::prelude::*;
    let mut out = DaemonArgs {
        config: PathBuf::from(crate::config::DEFAULT_PATH),
        stderr: false,
        devices: None,
    };
    let mut p = lexopt::Parser::from_args(args);
    loop {
        match p.next() {
            Ok(None) => return Ok(out),
            Ok(Some(Short('h') | Long("help"))) => {
                print!("{help}");
                return Err(ExitCode::SUCCESS);
            }
            Ok(Some(Short('c') | Long("config"))) => match p.value() {
                Ok(v) => out.config = v.into(),
                Err(e) => return Err(crate::cli::usage_error(cmd, e)),
            },
            Ok(Some(Long("stderr"))) => out.stderr = true,
            Ok(Some(Long("devices"))) if cmd == "edge" => match p.value() {
                Ok(v) => out.devices = Some(v.into()),
                Err(e) => return Err(crate::cli::usage_error(cmd, e)),
            },
            Ok(Some(other)) => return Err(crate::cli::usage_error(cmd, other.unexpected())),
            Err(e) => return Err(crate::cli::usage_error(cmd, e)),
        }
    }
}

/// Loads the config for `role`, printing every diagnostic; `Err(code)` to exit with.
pub(crate) fn load_config(cmd: &str, args: &DaemonArgs, role: Role) -> Result<Config, ExitCode> {
    let cfg = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("braid {cmd}: {d}");
            }
            if e.diagnostics().is_empty() {
                eprintln!("braid {cmd}: {e}");
            }
            return Err(ExitCode::from(1));
        }
    };
    for w in &cfg.warnings {
        eprintln!("braid {cmd}: warning: {w}");
    }
    if cfg.main.role != role {
        eprintln!(
            "braid {cmd}: {}:{}: role is '{}' but this is `braid {cmd}` (set option role '{cmd}')",
            cfg.file,
            cfg.main.line,
            if cfg.main.role == Role::Edge {
                "edge"
            } else {
                "core"
            }
        );
        return Err(ExitCode::from(1));
    }
    if !cfg.main.enabled {
        eprintln!(
            "braid {cmd}: warning: {}:{}: enabled is '0'; running anyway because started by hand",
            cfg.file, cfg.main.line
        );
    }
    Ok(cfg)
}

/// Runs a daemon's async main on a current-thread runtime.
pub(crate) fn run_local<E: std::fmt::Display, F: std::future::Future<Output = Result<(), E>>>(
    cmd: &str,
    f: F,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("braid {cmd}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("braid {cmd}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The shared entry of `braid edge` and `braid core`: arguments, config for `role`, logging,
/// then the daemon's async `main` on a current-thread runtime.
pub(crate) fn daemon_main<F, Fut, E>(
    cmd: &str,
    help: &str,
    role: Role,
    args: Vec<OsString>,
    main: F,
) -> ExitCode
where
    F: FnOnce(DaemonArgs, Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let args = match parse_args(cmd, help, args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let cfg = match load_config(cmd, &args, role) {
        Ok(c) => c,
        Err(code) => return code,
    };
    super::init_logging(cfg.main.log_level.to_filter(), args.stderr);
    run_local(cmd, main(args, cfg))
}
