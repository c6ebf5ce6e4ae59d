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
