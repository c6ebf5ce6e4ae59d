//! The shipped `/etc/config/braid` (openwrt/files/braid.config) against the daemon's parser:
//! it loads without an error or a warning, leaves the service off, carries the two example
//! links, and shows every option the parser knows in the section it belongs to (set or
//! commented), so an operator reading the file sees all of them.

use braid::config::load;
use braid::config::model::Role;
use std::collections::BTreeSet;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openwrt/files/braid.config");
const MODEL: &str = include_str!("../src/config/model.rs");

#[test]
fn shipped_config_loads_cleanly_and_is_off() {
    let c = load(SHIPPED).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!c.main.enabled, "the shipped file must leave braid off");
    assert_eq!(c.main.role, Role::Edge);
    let links: Vec<&str> = c.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(links, ["wan", "wwan"]);
}

/// The option names the parser accepts in one section type, from `const <KIND>_KEYS` in
/// src/config/model.rs (the list behind its "unknown option" warning).
fn parser_keys(kind: &str) -> BTreeSet<String> {
    let start = MODEL
        .find(&format!("const {kind}_KEYS: &str ="))
        .unwrap_or_else(|| panic!("no {kind}_KEYS in model.rs"));
    let rest = &MODEL[start..];
    let open = rest.find('"').expect("a string follows") + 1;
    let close = open + rest[open..].find('"').expect("the string ends");
    rest[open..close]
        .split(',')
        .map(|k| k.trim().to_string())
        .collect()
}

/// Option and list names in the shipped file per section type, commented or not.
fn shipped_keys(ty: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(SHIPPED).unwrap();
    let mut cur = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .trim_start_matches(|c: char| c == '#' || c.is_whitespace())
            .split_whitespace()
            .collect();
        match words.as_slice() {
            ["config", t, ..] => cur = t.to_string(),
            ["option" | "list", name, ..] if cur == ty => {
                out.insert(name.to_string());
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_option_is_shown_in_its_section() {
    for (kind, ty) in [
        ("MAIN", "braid"),
        ("LINK", "link"),
        ("POLICY", "policy"),
        ("PEER", "peer"),
    ] {
        let want = parser_keys(kind);
        let have = shipped_keys(ty);
        let missing: Vec<_> = want.difference(&have).collect();
        let unknown: Vec<_> = have.difference(&want).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "config {ty}: missing from the shipped file {missing:?}, unknown to the parser {unknown:?}"
        );
    }
}

/// What an operator does after `opkg install braid`: the three `uci set` of the keys and the
/// core, then `enabled=1`. Before the keys are set, enabling names each missing option.
#[test]
fn shipped_config_enables_with_three_uci_sets() {
    use braid::config::{load_str, uci};
    let text = std::fs::read_to_string(SHIPPED).unwrap();

    let mut doc = uci::parse("braid", &text).unwrap();
    doc.section_mut("braid", "main").set_option("enabled", "1");
    let err = load_str("braid", &uci::write(&doc)).expect_err("keys and core are missing");
    let msgs: Vec<String> = err
        .diagnostics()
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    for want in ["private_key", "core_host", "core_public_key"] {
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "no message names {want}: {msgs:?}"
        );
    }

    let main = doc.section_mut("braid", "main");
    main.set_option(
        "private_key",
        "ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng=",
    );
    main.set_option("core_host", "core.example.net");
    main.set_option(
        "core_public_key",
        "Nfb+YVedbvKoooMOHuOgWY+0dFrUHatY9F8McRw1uwg=",
    );
    let c = load_str("braid", &uci::write(&doc)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.main.enabled);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.links.len(), 2);
    assert_eq!(c.main.lan.len(), 1, "the default OpenWrt LAN is bonded");
}
