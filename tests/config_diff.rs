//! The pure diff behind SIGHUP reload: what changed, and what needs a restart.

use braid::config::diff::{diff, Change, LinkField, MainField};
use braid::config::{load_str, Config};

const EDGE: &str = include_str!("fixtures/config/edge.conf");
const CORE: &str = include_str!("fixtures/config/core.conf");

fn cfg(text: &str) -> Config {
    load_str("braid", text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The edge example with `from` replaced by `to` (which must occur exactly once).
fn edit(base: &str, from: &str, to: &str) -> Config {
    assert_eq!(base.matches(from).count(), 1, "{from}");
    cfg(&base.replace(from, to))
}

#[test]
fn identical_is_empty() {
    assert_eq!(diff(&cfg(EDGE), &cfg(EDGE)), []);
    assert_eq!(diff(&cfg(CORE), &cfg(CORE)), []);
    // Comments, blank lines and moved lines do not count.
    let moved = EDGE.replace("# Voice and video", "\n\n# Voice, video");
    assert_eq!(diff(&cfg(EDGE), &cfg(&moved)), []);
}

#[test]
fn main_fields_live_and_restart() {
    let old = cfg(EDGE);
    let new = edit(EDGE, "option log_level 'info'", "option log_level 'debug'");
    assert_eq!(diff(&old, &new), [Change::Main(MainField::LogLevel)]);
    let new = edit(
        EDGE,
        "list bypass '172.16.0.0/12'",
        "list bypass '172.16.0.0/16'",
    );
    assert_eq!(diff(&old, &new), [Change::Main(MainField::Bypass)]);
    let new = edit(EDGE, "option mtu '1400'", "option mtu '1350'");
    assert_eq!(diff(&old, &new), [Change::Main(MainField::Mtu)]);
    let new = edit(EDGE, "option steer 'all'", "option steer 'tcp'");
    assert_eq!(diff(&old, &new), [Change::Main(MainField::Steer)]);
    let new = edit(EDGE, "\tlist lan '10.20.0.0/16'\n", "");
    assert_eq!(diff(&old, &new), [Change::Main(MainField::Lan)]);

    let new = edit(EDGE, "option core_port '51830'", "option core_port '443'");
    let d = diff(&old, &new);
    assert_eq!(d, [Change::Restart(MainField::CorePort)]);
    assert!(d[0].needs_restart());
    let new = edit(
        EDGE,
        "option private_key 'ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng='",
        "option key_file '/etc/braid/edge.key'",
    );
    assert_eq!(diff(&old, &new), [Change::Restart(MainField::Key)]);
    let new = edit(
        EDGE,
        "option core_host 'core.example.net'",
        "option core_host '198.51.100.1'",
    );
    assert_eq!(diff(&old, &new), [Change::Restart(MainField::CoreHost)]);
}

#[test]
fn role_change_needs_restart_and_drops_edge_sections() {
    let core = cfg(CORE);
    let edge = cfg(EDGE);
    let d = diff(&edge, &core);
    assert!(d.contains(&Change::Restart(MainField::Role)));
    assert!(d.contains(&Change::Restart(MainField::Key)));
    assert!(d.contains(&Change::LinkRemoved("lte1".into())));
    assert!(d
        .iter()
        .any(|c| matches!(c, Change::PeerAdded { name, .. } if name == "train042")));
}

#[test]
fn links() {
    let old = cfg(EDGE);
    let new = edit(
        EDGE,
        "\toption role 'backup'\n\toption download '1gbit'",
        "\toption role 'secondary'\n\toption download '1gbit'",
    );
    assert_eq!(
        diff(&old, &new),
        [Change::LinkChanged {
            name: "sat".into(),
            fields: vec![LinkField::Role]
        }]
    );
    let new = edit(
        EDGE,
        "\toption device 'wwan1'\n\toption transport 'tcp'",
        "\toption device 'wwan2'\n\toption transport 'udp'\n\toption weight '3'",
    );
    let d = diff(&old, &new);
    assert_eq!(
        d,
        [Change::LinkChanged {
            name: "lte2".into(),
            fields: vec![LinkField::Device, LinkField::Transport, LinkField::Weight]
        }]
    );
    let Change::LinkChanged { fields, .. } = &d[0] else {
        unreachable!()
    };
    assert!(fields[0].reopens_socket() && fields[1].reopens_socket());
    assert!(!fields[2].reopens_socket());
    assert!(!d[0].needs_restart());

    let new = edit(EDGE, "option reset_day '15'", "option reset_day '1'");
    assert_eq!(
        diff(&old, &new),
        [Change::LinkChanged {
            name: "lte2".into(),
            fields: vec![LinkField::Quota]
        }]
    );
    let new = edit(EDGE, "option upload '20mbit'", "option upload '25mbit'");
    assert_eq!(
        diff(&old, &new),
        [Change::LinkChanged {
            name: "lte1".into(),
            fields: vec![LinkField::Upload]
        }]
    );

    // Added, removed, disabled.
    let new = cfg(&format!(
        "{EDGE}\nconfig link 'wifi'\n\toption device 'wlan0'\n"
    ));
    assert_eq!(diff(&old, &new), [Change::LinkAdded("wifi".into())]);
    assert_eq!(diff(&new, &old), [Change::LinkRemoved("wifi".into())]);
    let new = edit(
        EDGE,
        "config link 'sat'\n",
        "config link 'sat'\n\toption enabled '0'\n",
    );
    assert_eq!(diff(&old, &new), [Change::LinkRemoved("sat".into())]);
}

#[test]
fn policies_and_classes() {
    let old = cfg(EDGE);
    // A policy edited: its match changed, the class settings did not.
    let new = edit(EDGE, "list dest_port '5060'", "list dest_port '5061'");
    assert_eq!(
        diff(&old, &new),
        [Change::Policies {
            added: vec![],
            removed: vec![],
            changed: vec!["voip".into()],
            reordered: false
        }]
    );
    // A class setting changed.
    let new = edit(EDGE, "option priority '5'", "option priority '6'");
    assert_eq!(diff(&old, &new), [Change::ClassChanged("crew".into())]);
    // A policy added with a new class.
    let new = cfg(&format!(
        "{EDGE}\nconfig policy 'games'\n\toption proto 'udp'\n\toption class 'interactive'\n\toption priority '6'\n"
    ));
    assert_eq!(
        diff(&old, &new),
        [
            Change::Policies {
                added: vec!["games".into()],
                removed: vec![],
                changed: vec![],
                reordered: false
            },
            Change::ClassAdded("interactive".into())
        ]
    );
    assert_eq!(
        diff(&new, &old),
        [
            Change::Policies {
                added: vec![],
                removed: vec!["games".into()],
                changed: vec![],
                reordered: false
            },
            Change::ClassRemoved("interactive".into())
        ]
    );
    // Two policies swapped: first match wins, so this is a change.
    let a = "config policy 'a'\n\toption proto tcp\n\toption class x\n";
    let b = "config policy 'b'\n\toption proto udp\n\toption class y\n";
    let head = "config braid 'main'\n option role core\n option private_key 'ENcqJjBTHok1hXDeoOJNE8jA5pW8NqSlu78dlYIhFng='\n";
    let ab = cfg(&format!("{head}{a}{b}"));
    let ba = cfg(&format!("{head}{b}{a}"));
    let d = diff(&ab, &ba);
    assert_eq!(
        d[0],
        Change::Policies {
            added: vec![],
            removed: vec![],
            changed: vec![],
            reordered: true
        }
    );
}

#[test]
fn peers() {
    let old = cfg(CORE);
    let new = edit(CORE, "\tlist allowed_lan '10.20.0.0/16'\n", "");
    let d = diff(&old, &new);
    assert_eq!(d.len(), 1);
    assert!(matches!(&d[0], Change::PeerChanged { name, .. } if name == "train042"));

    let new = edit(CORE, "config peer 'train042'", "config peer 'train42'");
    assert!(
        matches!(&diff(&old, &new)[..], [Change::PeerChanged { name, .. }] if name == "train42")
    );

    let new = edit(
        CORE,
        "option public_key 'UXnKGIHO3l1VxnK8ndfMrqjNFJRdWy2psyp9Dcm3tX0='",
        "option public_key 'FkZEK5L6E4+ht4wjogaHPaRJio1MF7S8LMy4bbtN46g='",
    );
    let d = diff(&old, &new);
    assert_eq!(d.len(), 2);
    assert!(
        matches!(&d[0], Change::PeerRemoved { name, key } if name == "train043" && key.to_base64().starts_with("UXnK"))
    );
    assert!(
        matches!(&d[1], Change::PeerAdded { name, key } if name == "train043" && key.to_base64().starts_with("FkZE"))
    );
    assert!(d.iter().all(|c| !c.needs_restart()));
}
