//! Model -> UCI text -> model gives back the same configuration, for arbitrary valid models.
//! This ties the writer, the parser and every value parser to the Display of its type.

use braid::config::model::*;
use braid::config::{load_str, uci};
use proptest::prelude::*;
use std::net::IpAddr;

fn arb_cidr() -> impl Strategy<Value = Cidr> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| Cidr::new(IpAddr::from(a), p).unwrap()),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| Cidr::new(IpAddr::from(a), p).unwrap()),
    ]
}

fn arb_range() -> impl Strategy<Value = PortRange> {
    (1u16..=65535, 0u16..100).prop_map(|(lo, n)| PortRange {
        lo,
        hi: lo.saturating_add(n),
    })
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,7}"
}

fn arb_link(name: String) -> impl Strategy<Value = Link> {
    (
        proptest::option::of("[a-z][a-z0-9.]{0,14}"),
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)],
        prop_oneof![
            Just(LinkRole::Primary),
            Just(LinkRole::Secondary),
            Just(LinkRole::Backup),
            Just(LinkRole::Never)
        ],
        1u16..=1000,
        proptest::option::of(1u64..u64::MAX),
        proptest::option::of(1u64..u64::MAX),
        proptest::option::of((
            1u64..u64::MAX,
            prop_oneof![Just(QuotaPeriod::Day), Just(QuotaPeriod::Month)],
            1u8..=31,
            prop_oneof![Just(QuotaAction::Backup), Just(QuotaAction::Never)],
        )),
    )
        .prop_map(
            move |(device, transport, role, weight, upload, download, q)| Link {
                name: name.clone(),
                line: 0,
                device,
                transport,
                role,
                weight,
                upload,
                download,
                quota: q.map(|(bytes, period, reset_day, action)| Quota {
                    bytes,
                    period,
                    // A daily quota has no reset day: the model keeps the default.
                    reset_day: if period == QuotaPeriod::Day {
                        1
                    } else {
                        reset_day
                    },
                    action,
                }),
            },
        )
}

/// Class settings, chosen per class name.
#[derive(Debug, Clone)]
struct ClassSpec {
    mode: Mode,
    pinned_link: prop::sample::Index,
    priority: u8,
    weight: u16,
}

fn arb_class_spec() -> impl Strategy<Value = ClassSpec> {
    (
        prop_oneof![
            Just(Mode::Aggregate),
            Just(Mode::Redundant),
            Just(Mode::Backup),
            Just(Mode::Pinned)
        ],
        any::<prop::sample::Index>(),
        0u8..=7,
        1u16..=1000,
    )
        .prop_map(|(mode, pinned_link, priority, weight)| ClassSpec {
            mode,
            pinned_link,
            priority,
            weight,
        })
}

#[derive(Debug, Clone)]
struct PolicySpec {
    named: bool,
    src_ip: Vec<Cidr>,
    src_mac: Vec<[u8; 6]>,
    src_port: Vec<PortRange>,
    dest_ip: Vec<Cidr>,
    dest_port: Vec<PortRange>,
    proto: Proto,
    dscp: Vec<u8>,
    class: usize,
}

fn arb_policy() -> impl Strategy<Value = PolicySpec> {
    use proptest::collection::vec;
    (
        any::<bool>(),
        vec(arb_cidr(), 0..3),
        vec(any::<[u8; 6]>(), 0..2),
        vec(arb_range(), 0..2),
        vec(arb_cidr(), 0..3),
        vec(arb_range(), 0..3),
        prop_oneof![
            Just(Proto::Any),
            Just(Proto::Tcp),
            Just(Proto::Udp),
            Just(Proto::Icmp)
        ],
        vec(0u8..64, 0..3),
        0usize..4,
    )
        .prop_map(
            |(named, src_ip, src_mac, src_port, dest_ip, dest_port, proto, dscp, class)| {
                let icmp = proto == Proto::Icmp;
                PolicySpec {
                    named,
                    src_ip,
                    src_mac,
                    src_port: if icmp { vec![] } else { src_port },
                    dest_ip,
                    dest_port: if icmp { vec![] } else { dest_port },
                    proto,
                    dscp,
                    class,
                }
            },
        )
}

const CLASS_NAMES: [&str; 4] = ["default", "realtime", "bulk", "crew-1"];

fn arb_config() -> impl Strategy<Value = Config> {
    use proptest::collection::vec;
    let main = (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<Option<[u8; 32]>>(),
        "[a-z][a-z0-9.-]{0,20}",
        1u16..=65535,
        1u16..=65535,
        vec(arb_cidr(), 1..4),
        vec(arb_cidr(), 0..3),
        (any::<bool>(), 1280u16..=9000, 0usize..5),
    );
    let links = proptest::sample::subsequence(vec!["wan", "lte1", "lte2", "sat", "wifi"], 0..5)
        .prop_flat_map(|names| {
            names
                .into_iter()
                .map(|n| arb_link(n.to_string()))
                .collect::<Vec<_>>()
        });
    let peers = vec((arb_name(), any::<[u8; 32]>(), vec(arb_cidr(), 0..3)), 0..4);
    (
        main,
        links,
        vec(arb_policy(), 0..6),
        vec(arb_class_spec(), 4),
        peers,
    )
        .prop_map(|(m, links, pspecs, cspecs, peers)| {
            let (core, key, key_file, host, cport, lport, lan, bypass, (tcp, mtu, lvl)) = m;
            let role = if core { Role::Core } else { Role::Edge };
            let links = if core { vec![] } else { links };
            let main = Main {
                line: 0,
                enabled: true,
                role,
                key: Some(match key_file {
                    Some(_) => KeySource::File("/etc/braid/key".into()),
                    None => KeySource::Inline(PrivateKey(key)),
                }),
                core_host: (!core).then_some(host),
                core_port: if core { DEFAULT_PORT } else { cport },
                core_public_key: (!core).then_some(PublicKey(key)),
                listen_port: if core { lport } else { DEFAULT_PORT },
                pool: if core && cport % 2 == 0 {
                    braid::config::model::Cidr::parse("10.200.0.0/20").unwrap()
                } else {
                    braid::config::model::default_pool()
                },
                max_clients: if core {
                    cport
                } else {
                    braid::config::model::DEFAULT_MAX_CLIENTS
                },
                allow_dest: if core { lan.clone() } else { vec![] },
                deny_dest: if core { bypass.clone() } else { vec![] },
                lan: if core { vec![] } else { lan },
                steer: if tcp && !core { Steer::Tcp } else { Steer::All },
                bypass: if core { vec![] } else { bypass },
                mtu,
                log_level: [
                    LogLevel::Error,
                    LogLevel::Warn,
                    LogLevel::Info,
                    LogLevel::Debug,
                    LogLevel::Trace,
                ][lvl],
                space: "braid".into(),
                hub: "braid0".into(),
                state_file: "/etc/braid/state".into(),
                control_socket: "/var/run/braid.sock".into(),
                memory: braid::config::budget::Budget {
                    bytes: ((16 + u64::from(lport % 48)) << 20)
                        + u64::from(cport % 2) * (512 << 10),
                },
            };
            // Classes in order of first use, default first; settings from the specs.
            let mut classes = vec![Class {
                name: "default".into(),
                mode: Mode::Aggregate,
                link: None,
                priority: 0,
                weight: 1,
            }];
            let mut policies = Vec::new();
            for (i, p) in pspecs.iter().enumerate() {
                let name = CLASS_NAMES[p.class].to_string();
                let spec = &cspecs[p.class];
                let (mode, link) = match spec.mode {
                    Mode::Pinned if links.is_empty() || core => (Mode::Aggregate, None),
                    Mode::Pinned => (
                        Mode::Pinned,
                        Some(links[spec.pinned_link.index(links.len())].name.clone()),
                    ),
                    m => (m, None),
                };
                let c = Class {
                    name: name.clone(),
                    mode,
                    link,
                    priority: spec.priority,
                    weight: spec.weight,
                };
                if name == "default" {
                    classes[0] = c;
                } else if !classes.iter().any(|k| k.name == name) {
                    classes.push(c);
                }
                policies.push(Policy {
                    name: if p.named {
                        format!("p{i}")
                    } else {
                        format!("@policy[{i}]")
                    },
                    line: 0,
                    src_ip: p.src_ip.clone(),
                    src_mac: p.src_mac.iter().map(|m| Mac(*m)).collect(),
                    src_port: p.src_port.clone(),
                    dest_ip: p.dest_ip.clone(),
                    dest_port: p.dest_port.clone(),
                    proto: p.proto,
                    dscp: p.dscp.clone(),
                    class: name,
                });
            }
            let mut seen_names = Vec::new();
            let mut seen_keys = Vec::new();
            let peers = if !core {
                vec![]
            } else {
                peers
                    .into_iter()
                    .filter(|(n, k, _)| {
                        let fresh = !seen_names.contains(n) && !seen_keys.contains(k);
                        seen_names.push(n.clone());
                        seen_keys.push(*k);
                        fresh
                    })
                    .map(|(name, k, allowed_lan)| Peer {
                        name,
                        line: 0,
                        public_key: PublicKey(k),
                        allowed_lan,
                    })
                    .collect()
            };
            Config {
                file: "braid".into(),
                main,
                links,
                policies,
                classes,
                peers,
                warnings: vec![],
            }
        })
}

fn without_lines(mut c: Config) -> Config {
    c.main.line = 0;
    c.links.iter_mut().for_each(|l| l.line = 0);
    c.policies.iter_mut().for_each(|p| p.line = 0);
    c.peers.iter_mut().for_each(|p| p.line = 0);
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn model_round_trips_through_uci(cfg in arb_config()) {
        let text = uci::write(&cfg.to_document());
        let back = load_str("braid", &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(back.warnings.is_empty(), "{:?}\n{}", back.warnings, text);
        prop_assert_eq!(without_lines(back), cfg, "{}", text);
    }
}

#[test]
fn examples_round_trip() {
    for (name, text) in [
        ("edge", include_str!("fixtures/config/edge.conf")),
        ("core", include_str!("fixtures/config/core.conf")),
    ] {
        let a = load_str(name, text).unwrap();
        let b = load_str(name, &uci::write(&a.to_document())).unwrap();
        assert_eq!(without_lines(a), without_lines(b));
    }
}

/// Known section types and keys with random values: the model never panics, and a failure is
/// always a list of diagnostics that each name the file and a line of it.
fn arb_uci_text() -> impl Strategy<Value = String> {
    let ty = prop_oneof![Just("link"), Just("policy"), Just("peer"), Just("zone")];
    let key = prop_oneof![
        Just("enabled"),
        Just("role"),
        Just("private_key"),
        Just("key_file"),
        Just("core_host"),
        Just("core_port"),
        Just("core_public_key"),
        Just("listen_port"),
        Just("lan"),
        Just("steer"),
        Just("bypass"),
        Just("mtu"),
        Just("device"),
        Just("transport"),
        Just("weight"),
        Just("upload"),
        Just("quota"),
        Just("quota_period"),
        Just("reset_day"),
        Just("src_ip"),
        Just("dest_port"),
        Just("proto"),
        Just("dscp"),
        Just("class"),
        Just("mode"),
        Just("link"),
        Just("priority"),
        Just("public_key"),
        Just("allowed_lan"),
        Just("name"),
        Just("bogus")
    ];
    let value = prop_oneof![
        Just("1".to_string()),
        Just("core".to_string()),
        Just("edge".to_string()),
        Just("pinned".to_string()),
        Just("ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng=".to_string()),
        "[0-9a-f:./-]{0,12}",
        "\\PC{0,8}",
    ];
    let entry = (any::<bool>(), key, value).prop_map(|(list, k, v)| {
        format!(
            "\t{} {k} {}\n",
            if list { "list" } else { "option" },
            uci::quote(&v)
        )
    });
    let section = (
        ty,
        proptest::option::of("[a-z]{1,4}"),
        proptest::collection::vec(entry.clone(), 0..3),
    )
        .prop_map(|(t, n, es)| {
            let mut s = format!("\nconfig {t}");
            if let Some(n) = n {
                s.push_str(&format!(" '{n}'"));
            }
            s.push('\n');
            s.extend(es);
            s
        });
    // A valid main section (edge or core) first, so that loads succeed often enough to test
    // the success path too; random extra entries may still break it.
    let head = prop_oneof![
        Just(format!(
            "config braid 'main'\n\toption private_key '{K}'\n\toption core_host 'c'\n\toption core_public_key '{K}'\n\tlist lan '10.0.0.0/8'\n"
        )),
        Just(format!(
            "config braid 'main'\n\toption role 'core'\n\toption private_key '{K}'\n"
        )),
    ];
    (
        head,
        proptest::collection::vec(entry.clone(), 0..2),
        proptest::collection::vec(section, 0..6),
    )
        .prop_map(|(h, extra, v)| format!("{h}{}{}", extra.concat(), v.concat()))
}

const K: &str = "ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng=";

proptest! {
    #[test]
    fn model_never_panics_and_errors_name_lines(text in arb_uci_text()) {
        let lines = text.lines().count() as u32;
        match load_str("f", &text) {
            Ok(c) => {
                for w in &c.warnings {
                    prop_assert!(w.file == "f" && w.line >= 1 && w.line <= lines.max(1), "{}", w);
                }
                // Whatever loaded writes back and loads again to the same model.
                let again = load_str("f", &uci::write(&c.to_document()))
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(without_lines(again), without_lines(Config { warnings: vec![], ..c }));
            }
            Err(e) => {
                prop_assert!(!e.diagnostics().is_empty());
                for d in e.diagnostics() {
                    prop_assert!(d.file == "f" && d.line >= 1 && d.line <= lines.max(1), "{}", d);
                }
            }
        }
    }
}
