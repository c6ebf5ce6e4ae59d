//! The typed model on real-looking files: the shipped examples, every error with its message,
//! and the warnings.

use braid::config::model::*;
use braid::config::{load, load_str, ConfigError};

const EDGE: &str = include_str!("fixtures/config/edge.conf");
const CORE: &str = include_str!("fixtures/config/core.conf");

const KEY_A: &str = "ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng=";
const KEY_B: &str = "Nfb+YVedbvKoooMOHuOgWY+0dFrUHatY9F8McRw1uwg=";

fn edge_head() -> String {
    format!(
        "config braid 'main'\n\toption private_key '{KEY_A}'\n\toption core_host '198.51.100.7'\n\toption core_public_key '{KEY_B}'\n\tlist lan '192.168.1.0/24'\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    match load_str("braid", text) {
        Ok(c) => panic!(
            "expected errors, got a config with warnings {:?}",
            c.warnings
        ),
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

fn warnings(text: &str) -> Vec<String> {
    let c = load_str("braid", text).unwrap_or_else(|e| panic!("{e}"));
    c.warnings.iter().map(|d| d.to_string()).collect()
}

#[test]
fn edge_example() {
    let c = load("tests/fixtures/config/edge.conf").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let m = &c.main;
    assert!(m.enabled);
    assert_eq!(m.role, Role::Edge);
    assert_eq!(
        m.key,
        Some(KeySource::Inline(PrivateKey::from_base64(KEY_A).unwrap()))
    );
    assert_eq!(c.private_key().unwrap().to_base64(), KEY_A);
    assert_eq!(m.core_host.as_deref(), Some("core.example.net"));
    assert_eq!(m.core_port, 51830);
    assert_eq!(m.core_public_key.unwrap().to_base64(), KEY_B);
    assert_eq!(
        m.lan.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["192.168.1.0/24", "10.20.0.0/16"]
    );
    assert_eq!(m.steer, Steer::All);
    assert_eq!(m.bypass[0].to_string(), "172.16.0.0/12");
    assert_eq!(m.mtu, 1400);
    assert_eq!(m.log_level, LogLevel::Info);
    assert_eq!((m.space.as_str(), m.hub.as_str()), ("braid", "braid0"));

    let names: Vec<&str> = c.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lte1", "lte2", "sat"]);
    let lte1 = c.link("lte1").unwrap();
    assert_eq!(lte1.device.as_deref(), Some("wwan0"));
    assert_eq!(lte1.transport, Transport::Udp);
    assert_eq!(lte1.role, LinkRole::Primary);
    assert_eq!(lte1.weight, 2);
    assert_eq!(lte1.upload, Some(20_000_000));
    assert_eq!(lte1.download, Some(80_000_000));
    assert_eq!(lte1.quota, None);
    let lte2 = c.link("lte2").unwrap();
    assert_eq!(lte2.transport, Transport::Tcp);
    assert_eq!(lte2.weight, 1);
    assert_eq!(
        lte2.quota,
        Some(Quota {
            bytes: 20_000_000_000,
            period: QuotaPeriod::Month,
            reset_day: 15,
            action: QuotaAction::Backup
        })
    );
    let sat = c.link("sat").unwrap();
    assert_eq!(sat.role, LinkRole::Backup);
    assert_eq!(sat.upload, Some(512_000));
    assert_eq!(sat.download, Some(1_000_000_000));
    assert_eq!(sat.quota.unwrap().period, QuotaPeriod::Day);
    assert_eq!(sat.quota.unwrap().action, QuotaAction::Never);

    let pn: Vec<&str> = c.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pn, ["voip", "crew", "ticketing", "updates"]);
    let voip = &c.policies[0];
    assert_eq!(voip.proto, Proto::Udp);
    assert_eq!(
        voip.dest_port,
        [
            PortRange { lo: 3478, hi: 3481 },
            PortRange { lo: 5060, hi: 5060 }
        ]
    );
    assert_eq!(voip.dscp, [46]);
    let t = &c.policies[2];
    assert_eq!(t.src_mac[0].to_string(), "02:00:00:aa:bb:cc");
    assert_eq!(t.dest_ip[0].to_string(), "203.0.113.10/32");
    let up = &c.policies[3];
    assert_eq!(up.dest_port.len(), 2, "option with two values is a list");
    assert_eq!(up.dscp, [8]);

    let cn: Vec<&str> = c.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cn, ["default", "realtime", "crew", "ticketing", "bulk"]);
    let rt = c.class("realtime").unwrap();
    assert_eq!((rt.mode, rt.priority, rt.weight), (Mode::Redundant, 7, 1));
    let crew = c.class("crew").unwrap();
    assert_eq!(
        (crew.mode, crew.priority, crew.weight),
        (Mode::Aggregate, 5, 4)
    );
    let tk = c.class("ticketing").unwrap();
    assert_eq!((tk.mode, tk.link.as_deref()), (Mode::Pinned, Some("lte1")));
    assert!(c.peers.is_empty());
}

#[test]
fn core_example() {
    let c = load_str("core.conf", CORE).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.main.role, Role::Core);
    assert_eq!(
        c.main.key,
        Some(KeySource::File("/etc/braid/core.key".into()))
    );
    assert_eq!(c.main.listen_port, 51830);
    assert_eq!(c.main.log_level, LogLevel::Warn);
    assert_eq!(c.main.max_clients, 512);
    assert_eq!(c.main.pool.to_string(), "100.64.0.0/16");
    assert_eq!(c.main.allow_dest[0].to_string(), "10.10.0.0/24");
    assert_eq!(c.main.deny_dest[0].to_string(), "198.51.100.0/24");
    assert!(c.links.is_empty());
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[0].name, "train042");
    assert_eq!(
        c.peers[0].public_key.to_base64(),
        "vPBxuXSvAmy5YVwdHfgnrG+yz9c0H5rOxF1zNkpga3k="
    );
    assert_eq!(c.peers[0].allowed_lan.len(), 2);
    assert_eq!(c.peers[1].name, "train043");
    let k = c.peers[1].public_key;
    assert_eq!(c.peer(&k).unwrap().name, "train043");
    assert_eq!(c.class("realtime").unwrap().mode, Mode::Redundant);
}

#[test]
fn key_file_is_read_on_demand() {
    let dir = std::env::temp_dir().join(format!("braid-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("core.key");
    std::fs::write(&path, format!("{KEY_B}\n")).unwrap();
    let text = format!(
        "config braid 'main'\n option role core\n option key_file '{}'\n",
        path.display()
    );
    let c = load_str("braid", &text).unwrap();
    assert_eq!(c.private_key().unwrap().to_base64(), KEY_B);
    std::fs::write(&path, "not a key\n").unwrap();
    let e = c.private_key().unwrap_err().to_string();
    assert!(e.contains("expected a 32-byte key in base64"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(c.private_key(), Err(ConfigError::Io { .. })));
}

#[test]
fn defaults() {
    let c = load_str("braid", &edge_head()).unwrap();
    let m = &c.main;
    assert!(m.enabled);
    assert_eq!(m.role, Role::Edge);
    assert_eq!(m.core_port, DEFAULT_PORT);
    assert_eq!(m.listen_port, 51830);
    assert_eq!(m.steer, Steer::All);
    assert!(m.bypass.is_empty());
    assert_eq!(m.mtu, 1400);
    assert_eq!(m.log_level, LogLevel::Info);
    assert_eq!(m.state_file, "/etc/braid/state");
    assert_eq!(m.control_socket, "/var/run/braid.sock");
    assert_eq!(c.classes.len(), 1);
    assert_eq!(c.classes[0].name, "default");
    assert_eq!(c.classes[0].mode, Mode::Aggregate);

    let c = load_str("braid", &(edge_head() + "config link 'wan'\n")).unwrap();
    let l = &c.links[0];
    assert_eq!(l.device, None);
    assert_eq!(l.transport, Transport::Udp);
    assert_eq!(l.role, LinkRole::Primary);
    assert_eq!(l.weight, 1);
    assert_eq!((l.upload, l.download, l.quota), (None, None, None));

    let c = load_str(
        "braid",
        &(edge_head() + "config link 'wan'\n option quota 5G\n option upload 0\n"),
    )
    .unwrap();
    let q = c.links[0].quota.unwrap();
    assert_eq!(
        (q.bytes, q.period, q.reset_day, q.action),
        (5_000_000_000, QuotaPeriod::Month, 1, QuotaAction::Backup)
    );
    assert_eq!(c.links[0].upload, None, "0 means no cap");
}

#[test]
fn shipped_disabled_file_loads_without_keys() {
    let c = load_str("braid", "config braid 'main'\n\toption enabled '0'\n").unwrap();
    assert!(!c.main.enabled);
    assert_eq!(c.main.key, None);
    assert!(c.private_key().is_err());
    // Bad values are still errors while disabled.
    assert_eq!(
        errors("config braid 'main'\n\toption enabled '0'\n\toption mtu '99'\n"),
        ["braid:3:13: braid 'main': option 'mtu': expected a number 1280..9000, got '99'"]
    );
}

#[test]
fn disabled_sections_are_left_out() {
    let c = load_str(
        "braid",
        &(edge_head()
            + "config link 'a'\n option enabled 0\nconfig link 'b'\nconfig policy\n option enabled no\n option class x\nconfig peer\n"),
    );
    // The peer section on the edge is a warning, not an error, even though it has no key.
    let c = c.unwrap();
    assert_eq!(c.links.len(), 1);
    assert_eq!(c.links[0].name, "b");
    assert!(c.policies.is_empty());
    assert_eq!(c.classes.len(), 1);
}

#[test]
fn error_messages() {
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "config link 'wan'\n".into(),
            vec!["braid:1: no 'config braid' section: expected one, like \"config braid 'main'\""],
        ),
        (
            "config braid 'main'\n option role 'hub'\n".into(),
            vec![
                "braid:1: braid 'main': no key: expected option 'private_key' (from 'braid genkey') or 'key_file'",
                "braid:2:14: braid 'main': option 'role': expected 'edge' or 'core', got 'hub'",
            ],
        ),
        (
            "config braid 'main'\n".into(),
            vec![
                "braid:1: braid 'main': no key: expected option 'private_key' (from 'braid genkey') or 'key_file'",
                "braid:1: braid 'main': role edge needs option 'core_host' (the core's address or host name)",
                "braid:1: braid 'main': role edge needs option 'core_public_key' (the core's public key, 'braid pubkey')",
                "braid:1: braid 'main': role edge needs at least one 'list lan' subnet (the clients to bond)",
            ],
        ),
        (
            format!("config braid 'main'\n option role core\n option private_key '{KEY_A}'\n option key_file '/k'\n"),
            vec!["braid:1: braid 'main': both 'private_key' and 'key_file' are set: expected only one"],
        ),
        (
            "config braid 'main'\n option role core\n option private_key 'c2hvcnQ='\n".into(),
            vec!["braid:3:21: braid 'main': option 'private_key': expected a 32-byte key in base64 (44 characters, as 'braid genkey' prints), got 'c2hv...'"],
        ),
        (
            format!("config braid 'main'\n option role core\n option private_key '{KEY_A}'\n option pool '100.64.0.0/28'\n option max_clients 0\n list allow_dest 'x'\n list deny_dest '10.0.0.0/33'\n"),
            vec![
                "braid:4:14: braid 'main': option 'pool': expected an IPv4 subnet of /8 to /24 for the client pool, got '100.64.0.0/28'",
                "braid:5:21: braid 'main': option 'max_clients': expected a number 1..65535, got '0'",
                "braid:6:18: braid 'main': allow_dest: expected an address or subnet like '192.168.1.0/24' or 'fd00::/64', got 'x'",
                "braid:7:17: braid 'main': deny_dest: expected a prefix length 0..32 after '/', got '10.0.0.0/33'",
            ],
        ),
        (
            format!("config braid 'main'\n option role core\n option private_key '{KEY_A}'\nconfig braid 'other'\n option role core\n"),
            vec!["braid:4: a second 'config braid' section (the first is on line 1): expected exactly one"],
        ),
        (
            edge_head() + " option core_port '70000'\n list lan '192.168.300.0/24'\n option steer udp\n",
            vec![
                "braid:6:19: braid 'main': option 'core_port': expected a port 1..65535, got '70000'",
                "braid:7:11: braid 'main': lan: expected an address or subnet like '192.168.1.0/24' or 'fd00::/64', got '192.168.300.0/24'",
                "braid:8:15: braid 'main': option 'steer': expected 'all' or 'tcp', got 'udp'",
            ],
        ),
        (
            edge_head() + " list log_level 'debug'\n",
            vec!["braid:6:7: braid 'main': 'log_level' takes one value: expected 'option log_level', not 'list'"],
        ),
        (
            edge_head() + "config link\n option device eth1\n",
            vec!["braid:6: a link section needs a name, its netifd interface: expected \"config link 'wan'\""],
        ),
        (
            edge_head() + "config link 'wan'\nconfig link 'wan'\n",
            vec!["braid:7: link 'wan' is defined twice (also on line 6): expected one section per interface"],
        ),
        (
            edge_head()
                + "config link 'wan'\n option transport quic\n option role main\n option weight 0\n option upload fast\n option download 10mbps\n option quota 20X\n option quota_period week\n option reset_day 32\n option quota_action drop\n option device 'a/b'\n",
            vec![
                "braid:7:19: link 'wan': option 'transport': expected 'udp' or 'tcp', got 'quic'",
                "braid:8:14: link 'wan': option 'role': expected 'primary', 'secondary', 'backup' or 'never', got 'main'",
                "braid:9:16: link 'wan': option 'weight': expected a number 1..1000, got '0'",
                "braid:10:16: link 'wan': option 'upload': expected a rate like '20mbit', '512kbit', '1gbit' or plain bits/s, got 'fast'",
                "braid:11:18: link 'wan': option 'download': '10mbps': write rates in bits with 'kbit', 'mbit' or 'gbit' ('bps' is ambiguous)",
                "braid:12:15: link 'wan': option 'quota': expected a size like '20G', '500M', '4Gi' or plain bytes, got '20X'",
                "braid:13:22: link 'wan': option 'quota_period': expected 'day' or 'month', got 'week'",
                "braid:14:19: link 'wan': option 'reset_day': expected a number 1..31, got '32'",
                "braid:15:22: link 'wan': option 'quota_action': expected 'backup' or 'never', got 'drop'",
                "braid:16:16: link 'wan': option 'device': expected an interface name of 1..15 characters without '/', ':' or spaces, got 'a/b'",
            ],
        ),
        (
            edge_head() + "config policy\n option proto tcp\n",
            vec!["braid:6: policy '@policy[0]': no class: expected option 'class' naming the traffic class (like 'realtime')"],
        ),
        (
            edge_head()
                + "config policy 'p'\n option proto gre\n option dscp XX\n option src_mac 'zz'\n option dest_port '80,90-85'\n option src_ip 'x'\n option class 'a b'\n option priority 8\n option mode fast\n",
            vec![
                "braid:7:15: policy 'p': option 'proto': expected 'any', 'all', 'tcp', 'udp' or 'icmp', got 'gre'",
                "braid:8:14: policy 'p': dscp: expected a DSCP value 0..63 or a name like 'EF', 'CS6', 'AF41', got 'XX'",
                "braid:9:17: policy 'p': src_mac: expected a MAC address like '02:00:00:aa:bb:cc', got 'zz'",
                "braid:10:19: policy 'p': dest_port: port range '90-85' ends before it starts",
                "braid:11:16: policy 'p': src_ip: expected an address or subnet like '192.168.1.0/24' or 'fd00::/64', got 'x'",
                "braid:12:15: policy 'p': option 'class': expected a class name of letters, digits, '_' or '-' (at most 32), got 'a b'",
                "braid:13:18: policy 'p': option 'priority': expected a number 0..7, got '8'",
                "braid:14:14: policy 'p': option 'mode': expected 'aggregate', 'redundant', 'backup' or 'pinned', got 'fast'",
            ],
        ),
        (
            edge_head() + "config policy 'p'\n option proto icmp\n option dest_port 80\n option class x\n",
            vec!["braid:6: policy 'p': ports given with proto 'icmp': expected proto tcp, udp or any"],
        ),
        (
            edge_head() + "config link 'wan'\nconfig policy 'p'\n option class x\n option mode pinned\n",
            vec!["braid:9: class 'x': mode 'pinned' needs option 'link' naming a link section"],
        ),
        (
            edge_head() + "config link 'wan'\nconfig link 'lte'\nconfig policy 'p'\n option class x\n option mode pinned\n option link sat\n",
            vec!["braid:11: class 'x': option 'link' names 'sat', which is not a link section; expected 'wan' or 'lte'"],
        ),
        (
            edge_head() + "config link 'wan'\n option enabled 0\nconfig policy 'p'\n option class x\n option mode pinned\n option link wan\n",
            vec!["braid:11: class 'x': option 'link' names 'wan', which is disabled: expected an enabled link"],
        ),
        (
            edge_head() + "config link 'wan'\nconfig policy 'p'\n option class x\n option link wan\n",
            vec!["braid:9: class 'x': option 'link' only applies with mode 'pinned'"],
        ),
        (
            edge_head() + "config policy 'a'\n option class rt\n option mode redundant\n option priority 7\nconfig policy 'b'\n option class rt\n option priority 6\n option mode redundant\n",
            vec!["braid:12: class 'rt': priority '6' conflicts with '7' set on line 9: expected one value per class"],
        ),
        (
            format!("config braid 'main'\n option role core\n option private_key '{KEY_A}'\nconfig peer 'a'\n option public_key '{KEY_B}'\nconfig peer 'b'\n option public_key '{KEY_B}'\nconfig peer\n option name a\n option public_key '{KEY_A}'\nconfig peer 'c'\n list allowed_lan '10.0.0.0/8'\n"),
            vec![
                "braid:6: peer 'b' has the same public_key as peer 'a' (line 4): expected each edge once",
                "braid:8: peer name 'a' is used twice (also on line 4): expected unique names",
                "braid:11: peer 'c': no public_key: expected option 'public_key' with the edge's key ('braid pubkey')",
            ],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(errors(&text), want, "for file:\n{text}");
    }
}

#[test]
fn syntax_errors_come_through_load() {
    let e = load_str("/etc/config/braid", "config braid 'main\n").unwrap_err();
    assert!(matches!(e, ConfigError::Syntax(_)));
    assert_eq!(
        e.to_string(),
        "/etc/config/braid:1:14: unterminated ' quote: expected a closing '"
    );
    let e = load("/nonexistent/braid").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/braid: cannot read: "),
        "{e}"
    );
}

#[test]
fn warning_messages() {
    assert_eq!(
        warnings(&(edge_head() + " option wieght 3\n option listen_port 1\n")),
        [
            "braid:6:9: braid 'main': unknown option 'wieght' (ignored); known options: enabled, role, private_key, key_file, core_host, core_port, core_public_key, listen_port, pool, max_clients, allow_dest, deny_dest, lan, steer, bypass, mtu, log_level, space, hub, state_file, control_socket, memory",
            "braid:7:9: braid 'main': option 'listen_port' is ignored on the edge (role edge)",
        ]
    );
    assert_eq!(
        warnings(&(edge_head() + "config link 'wan'\n option role backup\n option role primary\n option reset_day 3\nconfig zone\nconfig peer 'x'\n")),
        [
            "braid:7:9: link 'wan': option 'role' is set again on line 8; that value is used",
            "braid:9:9: link 'wan': option 'reset_day' is ignored without option 'quota'",
            "braid:10: unknown section type 'zone' (ignored): expected braid, link, policy or peer",
            "braid:11: 'config peer' sections are ignored on the edge (role edge)",
        ]
    );
    let text = format!(
        "config braid 'main'\n option role core\n option private_key '{KEY_A}'\n option lan '10.0.0.0/8'\nconfig link 'wan'\n"
    );
    assert_eq!(
        warnings(&text),
        [
            "braid:4:9: braid 'main': option 'lan' is ignored on the core (role core)",
            "braid:5: 'config link' sections are ignored on the core (role core)",
        ]
    );
    let c = load_str(
        "braid",
        &(edge_head() + "config link 'wan'\n option role backup\n option role primary\n"),
    )
    .unwrap();
    assert_eq!(
        c.links[0].role,
        LinkRole::Primary,
        "the later option wins, as in uci"
    );
}

#[test]
fn examples_parse_from_the_docs() {
    // The fixtures are the documented examples: keep them loadable.
    assert!(load_str("edge.conf", EDGE).is_ok());
    assert!(load_str("core.conf", CORE).is_ok());
}

#[test]
fn shipped_file_loads_and_enables_with_uci_edits() {
    use braid::config::uci;
    let text = include_str!("fixtures/config/shipped.conf");
    let c = load_str("shipped.conf", text).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!c.main.enabled);
    assert_eq!(c.links.len(), 1);
    assert!(c.policies.is_empty());

    // What `uci set braid.main.enabled=1` and friends do to it.
    let mut doc = uci::parse("shipped.conf", text).unwrap();
    let main = doc.section_mut("braid", "main");
    main.set_option("enabled", "1");
    main.set_option("private_key", KEY_A);
    main.set_option("core_host", "core.example.net");
    main.set_option("core_public_key", KEY_B);
    let c = load_str("braid", &uci::write(&doc)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.main.enabled);
    assert_eq!(c.main.core_host.as_deref(), Some("core.example.net"));

    // Enabled without the required options: each is named.
    let mut doc = uci::parse("shipped.conf", text).unwrap();
    doc.section_mut("braid", "main").set_option("enabled", "1");
    assert_eq!(
        errors(&uci::write(&doc)),
        [
            "braid:2: braid 'main': no key: expected option 'private_key' (from 'braid genkey') or 'key_file'",
            "braid:2: braid 'main': role edge needs option 'core_host' (the core's address or host name)",
            "braid:2: braid 'main': role edge needs option 'core_public_key' (the core's public key, 'braid pubkey')",
        ]
    );
}

#[test]
fn example_keys_are_real_pairs() {
    // The edge example's private key belongs to the core example's first peer, and the edge's
    // core_public_key to the core's key (EAOzdIre...+2w=, kept out of the files as a key_file).
    use braid::proto::seal::Keypair;
    let edge = load_str("edge.conf", EDGE).unwrap();
    let core = load_str("core.conf", CORE).unwrap();
    let edge_pair = Keypair::from_private(edge.private_key().unwrap().0);
    assert_eq!(edge_pair.public, core.peers[0].public_key.0);
    let core_private =
        PrivateKey::from_base64("EAOzdIreWDrQnLVH4fVZDhEowdCdlN6hxYNehYzf+2w=").unwrap();
    assert_eq!(
        Keypair::from_private(core_private.0).public,
        edge.main.core_public_key.unwrap().0
    );
}

/// The files root writes or replaces (`state_file`, `control_socket`): a config in /etc/config
/// (which LuCI and the raw ubus uci ACL can write) may only put them in braid's own directories.
#[test]
fn a_system_config_cannot_point_the_daemon_at_other_files() {
    for (key, bad) in [
        ("state_file", "/etc/passwd"),
        ("control_socket", "/etc/shadow"),
        ("state_file", "/etc/braid/../passwd"),
        ("control_socket", "/var/run/braid/"),
    ] {
        let text = format!("{}\toption {key} '{bad}'\n", edge_head());
        let e = match load_str("/etc/config/braid", &text) {
            Ok(_) => panic!("{key} '{bad}' must be refused"),
            Err(e) => e
                .diagnostics()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
        };
        assert!(
            e.iter()
                .any(|d| d.starts_with("/etc/config/braid:6:") && d.contains("/etc/braid/")),
            "{key} '{bad}': {e:?}"
        );
        // Elsewhere (the lab, a test, an operator's own --config) the path is the writer's.
        assert!(load_str("/tmp/lab/braid", &text).is_ok(), "{key} '{bad}'");
    }
    for (key, good) in [
        ("state_file", "/etc/braid/state"),
        ("control_socket", "/var/run/braid.sock"),
        ("control_socket", "/var/run/braid/ctl.sock"),
    ] {
        let text = format!("{}\toption {key} '{good}'\n", edge_head());
        assert!(
            load_str("/etc/config/braid", &text).is_ok(),
            "{key} '{good}'"
        );
    }
}

/// `option memory`: each role's default, powers of 1024, and on the core a budget too small
/// for its peers is an error at the option's line that names the size they need.
#[test]
fn memory_budget_per_role() {
    let c = load_str("braid", &edge_head()).unwrap();
    assert_eq!(c.main.memory.bytes, 16 << 20, "the edge's default");
    let c = load_str("braid", &format!("{}\toption memory '8M'\n", edge_head())).unwrap();
    assert_eq!(c.main.memory.bytes, 8 << 20);
    assert_eq!(
        errors(&format!("{}\toption memory '2M'\n", edge_head())),
        vec![
            "braid:6:16: braid 'main': option 'memory': '2M' is out of range: between '4M' and '64G' (the \
             edge's default is '16M', the core's '64M')"
        ]
    );
    let core = |memory: &str, peers: usize| {
        let mut s = format!(
            "config braid 'main'\n\toption role 'core'\n\toption private_key '{KEY_A}'\n{memory}"
        );
        for i in 0..peers {
            let k = braid::keytext::key_to_base64(&[i as u8 + 1; 32]);
            s.push_str(&format!("config peer\n\toption public_key '{k}'\n"));
        }
        s
    };
    let c = load_str("braid", &core("", 10)).unwrap();
    assert_eq!(c.main.memory.bytes, 64 << 20, "the core's default");
    let e = errors(&core("\toption memory '8M'\n", 30));
    assert_eq!(
        e,
        vec![
            "braid:4: braid 'main': option 'memory': 8M is too small for 30 peers: each edge's \
             session needs at least 256 KiB; set memory to at least '14M'"
        ]
    );
    assert!(load_str("braid", &core("\toption memory '14M'\n", 30)).is_ok());
}
