//! `braid`: the command-line entry point.

use std::process::ExitCode;

const HELP: &str = "\
braid - bond every uplink of a router into one multipath tunnel

USAGE:
    braid <COMMAND> [OPTIONS]

COMMANDS:
    edge      run the router side (reads /etc/config/braid)
    core      run the server side
    status    show session, links, users and counters of the running daemon
    link      take a link in or out: braid link up|down NAME
    reload    re-read the configuration without dropping flows
    stop      stop the core for good (SIGTERM is a restart: it keeps its NAT for the next start)
    genkey    print a new private key (base64)
    pubkey    read a private key on stdin, print its public key
    sim       run a simulated scenario: braid sim scenarios/hetero.toml
    trace     generate cellular link traces, print a trace's statistics (host builds)
    lab       build an emulated topology in namespaces and measure it (host builds)

OPTIONS:
    -h, --help       print help (also: braid <COMMAND> --help)
    -V, --version    print the version
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(cmd) = args.next() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let rest: Vec<std::ffi::OsString> = args.collect();
    match cmd.to_str().unwrap_or("") {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("braid {}", braid::cli::VERSION);
            ExitCode::SUCCESS
        }
        "edge" => braid::edge::cli_main(rest),
        "core" => braid::core_daemon::cli_main(rest),
        "genkey" => braid::cli::genkey(rest),
        "pubkey" => braid::cli::pubkey(rest),
        "status" => braid::cli::status(rest),
        "link" => braid::cli::link(rest),
        "reload" => braid::cli::reload(rest),
        "stop" => braid::cli::stop(rest),
        #[cfg(feature = "sim")]
        "sim" => braid::sim::cli_main(rest),
        #[cfg(feature = "sim")]
        "trace" => braid::trace::cli::cli_main(rest),
        #[cfg(feature = "lab")]
        "lab" => braid::lab::cli_main(rest),
        other => {
            eprintln!("braid: unknown command '{other}'\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}
