//! What changed between two configurations: the pure function behind SIGHUP reload.
//!
//! [`diff`] compares an old and a new [`Config`] and lists every [`Change`]. The daemon applies
//! each change to the running state and touches nothing else, so flows on unchanged links and
//! classes keep going. A change for which [`Change::needs_restart`] is true (role, keys, ports,
//! namespace names, ...) cannot be applied live: the daemon logs it and keeps running with the
//! old value of that setting until it is restarted (`/etc/init.d/braid restart`).
//!
//! Identity: links by section name (the netifd interface), peers by public key, policies by
//! their position and name (first match wins, so order matters), classes by name.

use super::model::{Class, Config, Link, Peer, Policy, PublicKey};

/// One difference between the old and the new configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A setting of the `braid` section that only a restart applies.
    Restart(MainField),
    /// A setting of the `braid` section applied live.
    Main(MainField),
    /// A new link section (or one newly enabled).
    LinkAdded(String),
    /// A link section removed (or disabled): close its socket, move its traffic.
    LinkRemoved(String),
    /// Settings of an existing link changed.
    LinkChanged {
        /// The link (section name).
        name: String,
        /// What changed; see [`LinkField::reopens_socket`].
        fields: Vec<LinkField>,
    },
    /// The policy list changed (added, removed, edited or reordered): rebuild the classifier.
    /// Existing flows are classified again on their next packet.
    Policies {
        /// Names of policies that are new.
        added: Vec<String>,
        /// Names of policies that are gone.
        removed: Vec<String>,
        /// Names of policies whose match or class changed.
        changed: Vec<String>,
        /// True when the same policies now stand in a different order.
        reordered: bool,
    },
    /// A class is new.
    ClassAdded(String),
    /// A class is no longer named by any policy: its flows fall back to `default`.
    ClassRemoved(String),
    /// A class's mode, link, priority or weight changed.
    ClassChanged(String),
    /// A new peer (core): accept its handshakes from now on.
    PeerAdded {
        /// Its name.
        name: String,
        /// Its key.
        key: PublicKey,
    },
    /// A peer removed (core): end its session.
    PeerRemoved {
        /// Its name.
        name: String,
        /// Its key.
        key: PublicKey,
    },
    /// A peer's name or allowed subnets changed (its session stays up).
    PeerChanged {
        /// Its (new) name.
        name: String,
        /// Its key.
        key: PublicKey,
    },
}

impl Change {
    /// True if the change cannot be applied without restarting the daemon.
    pub fn needs_restart(&self) -> bool {
        matches!(self, Change::Restart(_))
    }
}

/// A field of the `braid` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainField {
    /// `enabled` (restart: the init script starts or stops the service).
    Enabled,
    /// `role` (restart).
    Role,
    /// `private_key` / `key_file` (restart: the session's identity).
    Key,
    /// `core_host` (restart).
    CoreHost,
    /// `core_port` (restart).
    CorePort,
    /// `core_public_key` (restart).
    CorePublicKey,
    /// `listen_port` (restart).
    ListenPort,
    /// `pool` (restart).
    Pool,
    /// `max_clients` (live: applies to new clients).
    MaxClients,
    /// `allow_dest` and `deny_dest` (live).
    Destinations,
    /// `lan` (live: steering rules rewritten).
    Lan,
    /// `steer` (live: steering rules rewritten).
    Steer,
    /// `bypass` (live: steering rules rewritten).
    Bypass,
    /// `mtu` (live: MSS clamp and too-big threshold).
    Mtu,
    /// `log_level` (live).
    LogLevel,
    /// `space` (restart).
    Space,
    /// `hub` (restart).
    Hub,
    /// `state_file` (restart).
    StateFile,
    /// `control_socket` (restart).
    ControlSocket,
    /// `memory` (restart: queues and buffers are sized when the daemon starts; the core's
    /// share per edge follows its peers at once for new sessions).
    Memory,
}

impl MainField {
    /// True for fields that only a restart applies.
    pub(crate) fn needs_restart(self) -> bool {
        !matches!(
            self,
            MainField::Lan
                | MainField::MaxClients
                | MainField::Destinations
                | MainField::Steer
                | MainField::Bypass
                | MainField::Mtu
                | MainField::LogLevel
        )
    }
}

/// A field of a `link` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkField {
    /// `device`.
    Device,
    /// `transport`.
    Transport,
    /// `role`.
    Role,
    /// `weight`.
    Weight,
    /// `upload`.
    Upload,
    /// `download`.
    Download,
    /// `quota` and its period, reset day or action.
    Quota,
}

impl LinkField {
    /// True if the link's socket must be closed and opened again (device or transport changed);
    /// the session and the other links stay up meanwhile.
    pub fn reopens_socket(self) -> bool {
        matches!(self, LinkField::Device | LinkField::Transport)
    }
}

/// Every difference from `old` to `new`, in a stable order: main fields, links, policies,
/// classes, peers. Empty when nothing that matters changed (warnings and line numbers are
/// ignored).
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    diff_main(old, new, &mut out);
    diff_links(&old.links, &new.links, &mut out);
    diff_policies(&old.policies, &new.policies, &mut out);
    diff_classes(&old.classes, &new.classes, &mut out);
    diff_peers(&old.peers, &new.peers, &mut out);
    out
}

fn diff_main(old: &Config, new: &Config, out: &mut Vec<Change>) {
    let (a, b) = (&old.main, &new.main);
    let fields = [
        (MainField::Enabled, a.enabled != b.enabled),
        (MainField::Role, a.role != b.role),
        (MainField::Key, a.key != b.key),
        (MainField::CoreHost, a.core_host != b.core_host),
        (MainField::CorePort, a.core_port != b.core_port),
        (
            MainField::CorePublicKey,
            a.core_public_key != b.core_public_key,
        ),
        (MainField::ListenPort, a.listen_port != b.listen_port),
        (MainField::Pool, a.pool != b.pool),
        (MainField::MaxClients, a.max_clients != b.max_clients),
        (
            MainField::Destinations,
            a.allow_dest != b.allow_dest || a.deny_dest != b.deny_dest,
        ),
        (MainField::Lan, a.lan != b.lan),
        (MainField::Steer, a.steer != b.steer),
        (MainField::Bypass, a.bypass != b.bypass),
        (MainField::Mtu, a.mtu != b.mtu),
        (MainField::LogLevel, a.log_level != b.log_level),
        (MainField::Space, a.space != b.space),
        (MainField::Hub, a.hub != b.hub),
        (MainField::StateFile, a.state_file != b.state_file),
        (
            MainField::ControlSocket,
            a.control_socket != b.control_socket,
        ),
        (MainField::Memory, a.memory != b.memory),
    ];
    for (f, changed) in fields {
        if changed {
            out.push(if f.needs_restart() {
                Change::Restart(f)
            } else {
                Change::Main(f)
            });
        }
    }
}

/// An item of the old or the new list, matched with the other list by key.
#[derive(Debug, PartialEq)]
enum Matched<'a, T> {
    /// Only in the old list.
    Removed(&'a T),
    /// Only in the new list.
    Added(&'a T),
    /// In both lists: the (first) old item and the new one.
    Kept(&'a T, &'a T),
}

/// `old` and `new` matched by `key`, each match handed to `f`: first every removed item in old
/// order, then every new item in new order, added or kept (paired with the first old item of
/// the same key).
fn match_by_key<'a, T, K: PartialEq>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&'a T) -> K,
    mut f: impl FnMut(Matched<'a, T>),
) {
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            f(Matched::Removed(o));
        }
    }
    for n in new {
        f(match old.iter().find(|o| key(o) == key(n)) {
            None => Matched::Added(n),
            Some(o) => Matched::Kept(o, n),
        });
    }
}

fn diff_links(old: &[Link], new: &[Link], out: &mut Vec<Change>) {
    match_by_key(
        old,
        new,
        |l| &l.name,
        |m| {
            out.extend(match m {
                Matched::Removed(o) => Some(Change::LinkRemoved(o.name.clone())),
                Matched::Added(n) => Some(Change::LinkAdded(n.name.clone())),
                Matched::Kept(o, n) => {
                    let fields: Vec<LinkField> = [
                        (LinkField::Device, o.device != n.device),
                        (LinkField::Transport, o.transport != n.transport),
                        (LinkField::Role, o.role != n.role),
                        (LinkField::Weight, o.weight != n.weight),
                        (LinkField::Upload, o.upload != n.upload),
                        (LinkField::Download, o.download != n.download),
                        (LinkField::Quota, o.quota != n.quota),
                    ]
                    .into_iter()
                    .filter_map(|(f, c)| c.then_some(f))
                    .collect();
                    (!fields.is_empty()).then(|| Change::LinkChanged {
                        name: n.name.clone(),
                        fields,
                    })
                }
            })
        },
    );
}

/// Policies compared without their line numbers.
fn same_policy(a: &Policy, b: &Policy) -> bool {
    Policy {
        line: 0,
        ..a.clone()
    } == Policy {
        line: 0,
        ..b.clone()
    }
}

fn diff_policies(old: &[Policy], new: &[Policy], out: &mut Vec<Change>) {
    if old.len() == new.len() && old.iter().zip(new).all(|(a, b)| same_policy(a, b)) {
        return;
    }
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    match_by_key(
        old,
        new,
        |p| &p.name,
        |m| match m {
            Matched::Removed(o) => removed.push(o.name.clone()),
            Matched::Added(n) => added.push(n.name.clone()),
            Matched::Kept(o, n) if !same_policy(o, n) => changed.push(n.name.clone()),
            Matched::Kept(..) => {}
        },
    );
    // The names in `list` that `other` has too, in `list`'s order.
    fn kept<'a>(list: &'a [Policy], other: &[Policy]) -> Vec<&'a str> {
        list.iter()
            .filter(|p| other.iter().any(|o| o.name == p.name))
            .map(|p| p.name.as_str())
            .collect()
    }
    out.push(Change::Policies {
        added,
        removed,
        changed,
        reordered: kept(old, new) != kept(new, old),
    });
}

fn diff_classes(old: &[Class], new: &[Class], out: &mut Vec<Change>) {
    match_by_key(
        old,
        new,
        |c| &c.name,
        |m| {
            out.extend(match m {
                Matched::Removed(o) => Some(Change::ClassRemoved(o.name.clone())),
                Matched::Added(n) => Some(Change::ClassAdded(n.name.clone())),
                Matched::Kept(o, n) => (o != n).then(|| Change::ClassChanged(n.name.clone())),
            })
        },
    );
}

fn diff_peers(old: &[Peer], new: &[Peer], out: &mut Vec<Change>) {
    match_by_key(
        old,
        new,
        |p| &p.public_key,
        |m| {
            out.extend(match m {
                Matched::Removed(o) => Some(Change::PeerRemoved {
                    name: o.name.clone(),
                    key: o.public_key,
                }),
                Matched::Added(n) => Some(Change::PeerAdded {
                    name: n.name.clone(),
                    key: n.public_key,
                }),
                Matched::Kept(o, n) => {
                    (o.name != n.name || o.allowed_lan != n.allowed_lan).then(|| {
                        Change::PeerChanged {
                            name: n.name.clone(),
                            key: n.public_key,
                        }
                    })
                }
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::{match_by_key, Matched};

    /// Removed items come first (old order), then the new list in its order; a duplicate key
    /// pairs with its first old item. The config tests never mix all three kinds in one list.
    #[test]
    fn match_by_key_order() {
        let old = [("a", 1), ("b", 2), ("c", 3), ("b", 4)];
        let new = [("d", 5), ("c", 6), ("b", 7), ("e", 8)];
        let mut m = Vec::new();
        match_by_key(&old, &new, |x| x.0, |x| m.push(x));
        assert_eq!(
            m,
            [
                Matched::Removed(&("a", 1)),
                Matched::Added(&("d", 5)),
                Matched::Kept(&("c", 3), &("c", 6)),
                Matched::Kept(&("b", 2), &("b", 7)),
                Matched::Added(&("e", 8)),
            ]
        );
    }
}
