//! The small commands of `braid`: keys and the control-socket clients.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::control::{self, Request};
use crate::keytext::{key_from_base64, key_to_base64};
use crate::proto::seal::Keypair;

/// The version string printed by `braid --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The value of the option `p` just read, or lexopt's error as a message: how `braid sim`,
/// `braid lab` and `braid trace` read their options' values.
#[cfg(feature = "sim")]
pub(crate) fn opt_value(p: &mut lexopt::Parser) -> Result<OsString, String> {
    p.value().map_err(|e| e.to_string())
}

/// [`opt_value`] as UTF-8 text (a value that is not is an error).
#[cfg(feature = "sim")]
pub(crate) fn opt_text(p: &mut lexopt::Parser) -> Result<String, String> {
    use lexopt::ValueExt;
    opt_value(p)?.string().map_err(|e| e.to_string())
}

/// CPU time (user + system) this process has used so far, in seconds (`braid sim`'s cpu line;
/// here, outside the simulator, which forbids unsafe code).
#[cfg(feature = "sim")]
pub(crate) fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the buffer it is given, which is large
    // enough and writable; RUSAGE_SELF is always a valid target.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return f64::NAN;
    }
    // SAFETY: zero-initialised above, filled by the successful call.
    let ru = unsafe { ru.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Prints `msg` as an error of `cmd` and returns the usage exit code.
pub(crate) fn usage_error(cmd: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("braid {cmd}: {msg}\n(see: braid {cmd} --help)");
    ExitCode::from(2)
}

fn fail(cmd: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("braid {cmd}: {msg}");
    ExitCode::from(1)
}

const GENKEY_HELP: &str = "\
braid genkey - print a new random private key (base64), as `wg genkey` does

EXAMPLE:
    umask 077; braid genkey > /etc/braid/private.key
    braid pubkey < /etc/braid/private.key      # give this to the other side
";

const PUBKEY_HELP: &str = "\
braid pubkey - read a private key (base64) on stdin, print its public key

EXAMPLE:
    braid genkey | tee private.key | braid pubkey > public.key
";

/// `braid genkey`.
pub fn genkey(args: Vec<OsString>) -> ExitCode {
    if let Some(code) = only_help(&args, "genkey", GENKEY_HELP) {
        return code;
    }
    println!("{}", key_to_base64(&Keypair::generate().private));
    ExitCode::SUCCESS
}

/// `braid pubkey`.
pub fn pubkey(args: Vec<OsString>) -> ExitCode {
    if let Some(code) = only_help(&args, "pubkey", PUBKEY_HELP) {
        return code;
    }
    let mut input = String::new();
    if let Err(e) = std::io::stdin().take(4096).read_to_string(&mut input) {
        return fail("pubkey", format!("reading stdin: {e}"));
    }
    let Some(private) = key_from_base64(&input) else {
        return fail(
            "pubkey",
            "stdin is not a base64 key of 32 bytes (as `braid genkey` prints)",
        );
    };
    println!("{}", key_to_base64(&Keypair::from_private(private).public));
    ExitCode::SUCCESS
}

/// Handles `--help` for commands without options; any other argument is an error.
fn only_help(args: &[OsString], cmd: &str, help: &str) -> Option<ExitCode> {
    match args.first().and_then(|a| a.to_str()) {
        None => None,
        Some("-h" | "--help") => {
            print!("{help}");
            Some(ExitCode::SUCCESS)
        }
        Some(other) => Some(usage_error(cmd, format!("unexpected argument '{other}'"))),
    }
}

const STATUS_HELP: &str = "\
braid status - show what the running daemon is doing

USAGE:
    braid status [--json] [--socket PATH]

Shows the session(s) with the bonded rates, each link (state and time in it, role, RTT, loss,
rates measured each way beside the scheduler's estimate, bytes, quota), the top users, the
classes and the counters of dropped or rejected packets. Rates are bits per second, sizes SI
(1 GB = 10^9 bytes, as option quota '20G' means).

OPTIONS:
    --json           print the JSON LuCI reads: rates in bit/s, sizes in bytes, times in
                     the unit their name ends in (_s, _ms)
    --socket PATH    control socket (default /var/run/braid.sock)

EXAMPLE:
    braid status
    braid status --json | jsonfilter -e '@.sessions[0].links[*].state'
";

const LINK_HELP: &str = "\
braid link - take a link in or out of the bond at once, or move it to another device

USAGE:
    braid link up NAME [--device DEV] [--socket PATH]
    braid link down NAME [--socket PATH]

NAME is the link's section name in /etc/config/braid (its netifd interface, e.g. wan, wwan).
`down` takes it out: queued data moves to the other links. `up` puts it back; with --device,
DEV is the link's device as netifd names it now (pppoe-wan, wwan0, eth0.2) and the link's
socket moves to it without touching the session or the other links. The hotplug script
calls `braid link up NAME --device $DEVICE` on every ifup and `braid link down NAME` on
ifdown. `option device` in the config, when set, wins over --device. A link whose device
is not there yet (or has no address) waits for it: `braid status` says so.

OPTIONS:
    --device DEV     (with up) the link's device now, from netifd
    --socket PATH    control socket (default /var/run/braid.sock)

EXAMPLE:
    braid link down wwan                     # stop using the LTE modem now
    braid link up wwan
    braid link up wan --device pppoe-wan     # what hotplug does after a PPPoE reconnect
";

const RELOAD_HELP: &str = "\
braid reload - re-read /etc/config/braid without dropping flows (same as SIGHUP)

USAGE:
    braid reload [--socket PATH]

Only what changed is touched: a changed link role or policy applies at once, a new link is
added, a removed link is drained. Errors in the new file are printed and the old config stays.
";

const STOP_HELP: &str = "\
braid stop - stop the core for good: it removes its nftables table, routes and hub

USAGE:
    braid stop [--socket PATH]

`braid core` takes SIGTERM (procd's or systemd's restart, an upgrade) for a restart: it keeps
its NAT table, steering rules and its clients' pool addresses so that the next `braid core`
adopts them and open connections go on. `braid stop` asks the running core to stop and leave
nothing behind, and waits (up to 10 s) until it has. The OpenWrt init script runs it on
`/etc/init.d/braid stop`, not on `restart`.

EXAMPLE:
    braid stop && systemctl stop braid-core
";

/// What the control-socket commands take: `--socket PATH`, `--json` (status), `--device DEV`
/// (link), and the free words.
struct Opts {
    socket: PathBuf,
    json: bool,
    device: Option<String>,
    free: Vec<String>,
}

fn parse_socket_opts(cmd: &str, help: &str, args: Vec<OsString>) -> Result<Opts, ExitCode> {
    use lexopt::prelude::*;
    let mut o = Opts {
        socket: PathBuf::from(control::DEFAULT_SOCKET),
        json: false,
        device: None,
        free: Vec::new(),
    };
    let mut p = lexopt::Parser::from_args(args);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(usage_error(cmd, e)),
        };
        match arg {
            Short('h') | Long("help") => {
                print!("{help}");
                return Err(ExitCode::SUCCESS);
            }
            Long("socket") => match p.value() {
                Ok(v) => o.socket = v.into(),
                Err(e) => return Err(usage_error(cmd, e)),
            },
            Long("json") if cmd == "status" => o.json = true,
            Long("device") if cmd == "link" => match p.value() {
                Ok(v) => o.device = Some(v.to_string_lossy().into_owned()),
                Err(e) => return Err(usage_error(cmd, e)),
            },
            Value(v) => o.free.push(v.to_string_lossy().into_owned()),
            other => return Err(usage_error(cmd, other.unexpected())),
        }
    }
    Ok(o)
}

/// [`parse_socket_opts`] for a command that takes no free words (status, reload, stop).
fn parse_socket_opts_only(cmd: &str, help: &str, args: Vec<OsString>) -> Result<Opts, ExitCode> {
    let o = parse_socket_opts(cmd, help, args)?;
    if let Some(x) = o.free.first() {
        return Err(usage_error(cmd, format!("unexpected argument '{x}'")));
    }
    Ok(o)
}

/// `braid status`.
pub fn status(args: Vec<OsString>) -> ExitCode {
    let Opts { socket, json, .. } = match parse_socket_opts_only("status", STATUS_HELP, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match control::request(&socket, &Request::Status) {
        Ok(reply) => {
            let status = reply.status.unwrap_or_default();
            let out = if json {
                serde_json::to_string_pretty(&status).expect("status serializes") + "\n"
            } else {
                control::render(&status)
            };
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail("status", e),
    }
}

/// `braid link up|down NAME [--device DEV]`.
pub fn link(args: Vec<OsString>) -> ExitCode {
    let o = match parse_socket_opts("link", LINK_HELP, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (up, name) = match o.free.as_slice() {
        [dir, name] if dir == "up" => (true, name.clone()),
        [dir, name] if dir == "down" => (false, name.clone()),
        _ => {
            return usage_error(
                "link",
                "expected: braid link up|down NAME (up takes --device DEV)",
            )
        }
    };
    if o.device.is_some() && !up {
        return usage_error("link", "--device goes with `braid link up`");
    }
    let req = Request::Link {
        name,
        up,
        device: o.device,
    };
    match control::request(&o.socket, &req) {
        Ok(reply) => {
            if let Some(n) = reply.note {
                eprintln!("braid link: {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("link", e),
    }
}

/// `braid reload`.
pub fn reload(args: Vec<OsString>) -> ExitCode {
    let Opts { socket, .. } = match parse_socket_opts_only("reload", RELOAD_HELP, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match control::request(&socket, &Request::Reload) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("reload", e),
    }
}

/// `braid stop`.
pub fn stop(args: Vec<OsString>) -> ExitCode {
    let Opts { socket, .. } = match parse_socket_opts_only("stop", STOP_HELP, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = control::request(&socket, &Request::Stop) {
        return fail("stop", e);
    }
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(10) {
        // The daemon removes its socket last, once everything else is gone.
        if !socket.exists() {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    fail("stop", "the daemon did not stop within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn status_reload_stop_refuse_free_words_but_take_their_options() {
        for cmd in ["status", "reload", "stop"] {
            assert!(parse_socket_opts_only(cmd, "", args(&["extra"])).is_err());
            let o = parse_socket_opts_only(cmd, "", args(&["--socket", "/tmp/x.sock"])).unwrap();
            assert_eq!(o.socket, PathBuf::from("/tmp/x.sock"));
        }
        assert!(
            parse_socket_opts_only("status", "", args(&["--json"]))
                .unwrap()
                .json
        );
        assert!(parse_socket_opts_only("reload", "", args(&["--json"])).is_err());
    }
}
