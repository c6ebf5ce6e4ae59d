//! The small commands, run as a user runs them.

use std::io::Write;
use std::process::{Command, Stdio};

fn braid(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("braid runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn genkey_then_pubkey_as_wg_does() {
    let (code, private, _) = braid(&["genkey"], "");
    assert_eq!(code, 0);
    assert_eq!(private.trim().len(), 44);
    let (code, public, _) = braid(&["pubkey"], &private);
    assert_eq!(code, 0);
    assert_eq!(public.trim().len(), 44);
    assert_ne!(public, private);
    // Deterministic: the same private key gives the same public key.
    assert_eq!(braid(&["pubkey"], &private).1, public);
    // RFC 7748 Alice: private 77076d0a..., public 8520f009...
    let (_, p, _) = braid(&["pubkey"], "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=");
    assert_eq!(p.trim(), "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
}

#[test]
fn bad_input_gets_a_clear_message() {
    let (code, _, err) = braid(&["pubkey"], "not a key");
    assert_eq!(code, 1);
    assert!(err.contains("not a base64 key"), "{err}");
    let (code, _, err) = braid(&["link", "sideways", "wan"], "");
    assert_eq!(code, 2);
    assert!(err.contains("up|down"), "{err}");
    let (code, _, err) = braid(&["link", "down", "wan", "--device", "eth1"], "");
    assert_eq!(code, 2);
    assert!(err.contains("--device goes with `braid link up`"), "{err}");
    let (code, _, err) = braid(&["core", "--devices", "/tmp/x"], "");
    assert_eq!(code, 2, "--devices is the edge's");
    assert!(err.contains("--devices"), "{err}");
    let (code, _, err) = braid(&["frobnicate"], "");
    assert_eq!(code, 2);
    assert!(err.contains("unknown command"), "{err}");
}

#[test]
fn status_without_a_daemon_says_so() {
    let (code, _, err) = braid(&["status", "--socket", "/nonexistent/braid.sock"], "");
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn every_command_teaches_with_help() {
    for cmd in [
        "genkey",
        "pubkey",
        "status",
        "link",
        "reload",
        "edge",
        "core",
        "sim",
        "trace",
        "trace gen",
        "trace stats",
        "lab",
        "lab run",
        "lab bench",
        "lab demo",
    ] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let (code, out, _) = braid(&args, "");
        assert_eq!(code, 0, "{cmd}");
        assert!(
            out.contains("EXAMPLE") || out.contains("USAGE"),
            "{cmd}: {out}"
        );
    }
    let (code, out, _) = braid(&["--version"], "");
    assert_eq!(code, 0);
    assert!(out.starts_with("braid "));
}

#[test]
fn trace_gen_writes_mahimahi_and_stats_reads_it() {
    // One direction to standard output: Mahimahi lines, the period = --seconds.
    let (code, out, err) = braid(
        &[
            "trace",
            "gen",
            "lte-good/up",
            "--seed",
            "2",
            "--seconds",
            "5",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let ms: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*ms.last().unwrap(), 5000);
    let mbit = ms.len() as f64 * 12_000.0 / 5.0 / 1e6;
    assert!((mbit / 13.0 - 1.0).abs() < 0.02, "{mbit} Mbit/s");
    // The same with the scenario spelling gives the same trace.
    let (_, same, _) = braid(&["trace", "gen", "gen:lte-good/up?seed=2&seconds=5"], "");
    assert_eq!(same, out);

    // Both directions of a modem into NAME.up and NAME.down; stats reads them back.
    let dir = std::env::temp_dir().join(format!("braid-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("hsr");
    let (code, _, err) = braid(
        &[
            "trace",
            "gen",
            "hsr",
            "--seed",
            "3",
            "--modem",
            "1",
            "--seconds",
            "30",
            "--out",
            base.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("gen:hsr/down?seed=3&modem=1&seconds=30"),
        "{err}"
    );
    let up = base.with_extension("up");
    let (code, out, err) = braid(
        &[
            "trace",
            "stats",
            up.to_str().unwrap(),
            "gen:hsr/down?seed=3&modem=1&seconds=30",
        ],
        "",
    );
    let down_file = std::fs::read_to_string(base.with_extension("down")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("mean") && lines[0].contains("p90") && lines[0].contains("dead"));
    let mean = |l: &str| -> f64 { l.split_whitespace().nth(2).unwrap().parse().unwrap() };
    assert!((mean(lines[1]) / 4.0 - 1.0).abs() < 0.02, "{out}");
    assert!((mean(lines[2]) / 10.0 - 1.0).abs() < 0.02, "{out}");
    // The file written for `down` is the trace stats generated.
    let (_, gen_down, _) = braid(
        &["trace", "gen", "gen:hsr/down?seed=3&modem=1&seconds=30"],
        "",
    );
    assert_eq!(down_file, gen_down);
}

#[test]
fn trace_errors_teach() {
    let (code, _, err) = braid(&["trace", "gen", "hsr"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("hsr/up or hsr/down") && err.contains("--out"),
        "{err}"
    );
    let (code, _, err) = braid(&["trace", "gen", "5g"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("no preset `5g`") && err.contains("lte-driving"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["trace", "stats", "TMobile-LTE-short.up"])
        .env_remove("BRAID_TRACES")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for part in [
        "TMobile-LTE-short.up` not found",
        "BRAID_TRACES is not set",
        "github.com/ravinet/mahimahi",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let (code, out, _) = braid(&["trace", "list"], "");
    assert_eq!(code, 0);
    for p in ["lte-good", "lte-driving", "umts", "hsr"] {
        assert!(
            out.contains(&format!("gen:{p}/up")) && out.contains(&format!("gen:{p}/down")),
            "{out}"
        );
    }
}

#[test]
fn sim_and_lab_find_a_scenario_by_name_or_path_alike() {
    // The simulator's table, less its CPU line (the only part that is not a function of the file).
    let table = |out: &str| -> String {
        out.lines()
            .filter(|l| !l.starts_with("cpu "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let by_path = braid(&["sim", "scenarios/pipe.toml", "--duration", "2s"], "");
    assert_eq!(by_path.0, 0, "{}", by_path.2);
    for name in ["pipe", "pipe.toml"] {
        let by_name = braid(&["sim", name, "--duration", "2s"], "");
        assert_eq!(by_name.0, 0, "{name}: {}", by_name.2);
        assert_eq!(table(&by_name.1), table(&by_path.1), "{name}");
    }
    let (code, _, err) = braid(&["sim", "no-such-scenario"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("no scenario 'no-such-scenario' (a file, or scenarios/no-such-scenario.toml or scenarios/lab/no-such-scenario.toml)"),
        "{err}"
    );
    // One format: `braid sim` runs a lab scenario (it has no traffic: --workload gives it some).
    let (code, _, err) = braid(&["sim", "flap", "--duration", "2s"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("no [[traffic]]") && err.contains("--workload"),
        "{err}"
    );
    let (code, out, err) = braid(
        &["sim", "flap", "--duration", "2s", "--workload", "bulk2-up"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wan1"), "{out}");
    // `braid lab show` needs no root: the same rules, scenarios/lab/ first, then scenarios/.
    let (code, by_name, err) = braid(&["lab", "show", "hetero"], "");
    assert_eq!(code, 0, "{err}");
    let (code, by_path, err) = braid(&["lab", "show", "scenarios/lab/hetero.toml"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(by_name, by_path);
    assert!(by_name.contains("20 s per workload"), "{by_name}");
    let (code, shared, err) = braid(&["lab", "show", "hsr-pair"], "");
    assert_eq!(code, 0, "{err}");
    let (_, by_path, _) = braid(&["lab", "show", "scenarios/hsr-pair.toml"], "");
    assert_eq!(shared, by_path);
    let (code, _, err) = braid(&["lab", "show", "no-such-scenario"], "");
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "no scenario 'no-such-scenario' (a file, or scenarios/lab/no-such-scenario.toml or scenarios/no-such-scenario.toml)"
        ),
        "{err}"
    );
}
