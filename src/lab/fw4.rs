//! A stand-in of OpenWrt's firewall (fw4) on the lab's edges, so that what passes the lab
//! would pass a stock router.
//!
//! fw4 turns `/etc/config/firewall` into one nftables table, `inet fw4`, through its template
//! (firewall4's `templates/ruleset.uc`). [`Firewall::render`] writes the same chains for a
//! config made of defaults, zones (by device) and forwardings, as fw4 does for them:
//! - `forward` (policy drop): accept established/related, jump to `forward_<zone>` by
//!   `iifname`, then `jump handle_reject` (the defaults' `forward REJECT`). A zone's chain
//!   jumps to `accept_to_<dest>` for each forwarding and ends in `<policy>_to_<zone>`, which
//!   matches only that zone's devices by `oifname`: traffic toward a device in no zone falls
//!   through every zone chain and is rejected. That is why Braid's hub needs a zone.
//! - `input` (policy drop) and `output` the same way; `srcnat` masquerades toward zones with
//!   `masq` (with fw4's "Prevent NAT leakage" drop of invalid flows), `mangle_forward` clamps
//!   the MSS of zones with `mtu_fix`.
//!
//! [`Firewall::openwrt_default`] is OpenWrt's shipped `/etc/config/firewall` (defaults input
//! REJECT, output ACCEPT, forward REJECT, syn_flood; zone lan ACCEPT/ACCEPT/ACCEPT; zone wan
//! REJECT/ACCEPT/DROP with masq and mtu_fix; forwarding lan -> wan)
//! with the lab's devices in place of netifd's. [`Firewall::apply_package`] then adds what the
//! Braid package adds: the `uci -q set|add_list firewall.` lines of
//! `openwrt/files/braid.uci-defaults`, read from the file at build time, so that a package
//! without its zone fails the lab's end-to-end tests as it would fail on a router.
//!
//! Left out, as they change nothing for the lab's traffic: the default rules (Allow-DHCP-Renew,
//! Allow-Ping, Allow-IGMP, ICMPv6, IPsec: all accept traffic *from* wan), conntrack helpers,
//! flow offloading (off in the default config), zone subnets, IPv6 (off in the lab).

use std::io;

/// The Braid package's first-boot script, whose firewall lines this stand-in applies.
pub(crate) const PACKAGE_DEFAULTS: &str = include_str!("../../openwrt/files/braid.uci-defaults");

/// The device the lab's edges give the package's zone: every lab edge names its hub `bl-hub`
/// or `bl-hub<N>` (fw4's `+` wildcard), as an operator's `option hub` would be.
pub(crate) const LAB_HUB_DEVICE: &str = "bl-hub+";

/// A zone or default policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Reject,
    Drop,
}

impl Verdict {
    fn parse(s: &str) -> Result<Verdict, String> {
        match s {
            "ACCEPT" => Ok(Verdict::Accept),
            "REJECT" => Ok(Verdict::Reject),
            "DROP" => Ok(Verdict::Drop),
            _ => Err(format!("expected ACCEPT, REJECT or DROP, got '{s}'")),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Drop => "drop",
        }
    }

    /// The statement a verdict chain ends its match with.
    fn action(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "jump handle_reject",
            Verdict::Drop => "drop",
        }
    }
}

/// A `config zone`: its UCI section name, `name`, devices (`+` = wildcard) and policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zone {
    section: String,
    name: String,
    devices: Vec<String>,
    input: Verdict,
    output: Verdict,
    forward: Verdict,
    masq: bool,
    mtu_fix: bool,
}

/// A `config forwarding`: src zone -> dest zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Forwarding {
    section: String,
    src: String,
    dest: String,
}

/// The parts of `/etc/config/firewall` the stand-in renders.
#[derive(Clone, Debug)]
pub(crate) struct Firewall {
    input: Verdict,
    output: Verdict,
    forward: Verdict,
    syn_flood: bool,
    zones: Vec<Zone>,
    forwardings: Vec<Forwarding>,
}

impl Firewall {
    /// OpenWrt's default firewall config, with `lan` the lan zone's devices and `wan` the wan
    /// zone's (what netifd reports for networks lan and wan/wan6).
    pub(crate) fn openwrt_default(lan: &[String], wan: &[String]) -> Firewall {
        Firewall {
            input: Verdict::Reject,
            output: Verdict::Accept,
            forward: Verdict::Reject,
            syn_flood: true,
            zones: vec![
                Zone {
                    section: "lan".into(),
                    name: "lan".into(),
                    devices: lan.to_vec(),
                    input: Verdict::Accept,
                    output: Verdict::Accept,
                    forward: Verdict::Accept,
                    masq: false,
                    mtu_fix: false,
                },
                Zone {
                    section: "wan".into(),
                    name: "wan".into(),
                    devices: wan.to_vec(),
                    input: Verdict::Reject,
                    output: Verdict::Accept,
                    forward: Verdict::Drop,
                    masq: true,
                    mtu_fix: true,
                },
            ],
            forwardings: vec![Forwarding {
                section: "lan_wan".into(),
                src: "lan".into(),
                dest: "wan".into(),
            }],
        }
    }

    /// Applies the package's firewall lines (`uci -q set firewall.S=TYPE`, `uci -q set
    /// firewall.S.OPT=VALUE`, `uci -q add_list firewall.S.OPT=VALUE`) found in `script`, with
    /// `"$hub"` standing for `hub`. Returns how many lines were applied.
    pub(crate) fn apply_package(&mut self, script: &str, hub: &str) -> Result<usize, String> {
        let mut n = 0;
        for (i, line) in script.lines().enumerate() {
            let l = line.trim();
            let (op, rest) = if let Some(r) = l.strip_prefix("uci -q set firewall.") {
                ("set", r)
            } else if let Some(r) = l.strip_prefix("uci -q add_list firewall.") {
                ("add_list", r)
            } else {
                continue;
            };
            let (path, value) = rest
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected '=' in '{l}'", i + 1))?;
            let value = unquote(value).replace("$hub", hub);
            self.apply(op, path, &value)
                .map_err(|e| format!("line {}: {e} in '{l}'", i + 1))?;
            n += 1;
        }
        Ok(n)
    }

    fn apply(&mut self, op: &str, path: &str, value: &str) -> Result<(), String> {
        let Some((section, option)) = path.split_once('.') else {
            // `set firewall.S=TYPE`: a new section.
            match value {
                "zone" => self.zones.push(Zone {
                    section: path.into(),
                    name: path.into(),
                    devices: Vec::new(),
                    input: self.input,
                    output: self.output,
                    forward: self.forward,
                    masq: false,
                    mtu_fix: false,
                }),
                "forwarding" => self.forwardings.push(Forwarding {
                    section: path.into(),
                    src: String::new(),
                    dest: String::new(),
                }),
                t => return Err(format!("section type '{t}' is not modelled")),
            }
            return Ok(());
        };
        if let Some(z) = self.zones.iter_mut().find(|z| z.section == section) {
            match (op, option) {
                ("set", "name") => z.name = value.into(),
                ("add_list", "device") => z.devices.push(value.into()),
                ("set", "device") => z.devices = vec![value.into()],
                ("set", "input") => z.input = Verdict::parse(value)?,
                ("set", "output") => z.output = Verdict::parse(value)?,
                ("set", "forward") => z.forward = Verdict::parse(value)?,
                ("set", "masq") => z.masq = value == "1",
                ("set", "mtu_fix") => z.mtu_fix = value == "1",
                _ => return Err(format!("zone option '{option}' ({op}) is not modelled")),
            }
            return Ok(());
        }
        if let Some(f) = self.forwardings.iter_mut().find(|f| f.section == section) {
            match (op, option) {
                ("set", "src") => f.src = value.into(),
                ("set", "dest") => f.dest = value.into(),
                _ => {
                    return Err(format!(
                        "forwarding option '{option}' ({op}) is not modelled"
                    ))
                }
            }
            return Ok(());
        }
        Err(format!("no section '{section}'"))
    }

    /// The nftables script fw4 would load for this config (see the module doc).
    pub(crate) fn render(&self) -> String {
        let mut o = String::from("table inet fw4\nflush table inet fw4\n\ntable inet fw4 {\n");
        let zones: Vec<&Zone> = self
            .zones
            .iter()
            .filter(|z| !z.devices.is_empty())
            .collect();
        let policy = |v: Verdict| {
            if v == Verdict::Accept {
                "accept"
            } else {
                "drop"
            }
        };

        // The three filter base chains: the hook's policy, what it accepts first, a jump per
        // zone device (matched as `dev`) to `HOOK_ZONE`, and the reject handler.
        let base_chain = |o: &mut String, hook: &str, verdict: Verdict, head: &str, dev: &str| {
            *o += &format!(
                "\tchain {hook} {{\n\t\ttype filter hook {hook} priority filter; policy {};\n\n",
                policy(verdict)
            );
            *o += head;
            for z in &zones {
                for m in device_matches(&z.devices) {
                    *o += &format!(
                        "\t\t{dev} {m} jump {hook}_{n} comment \"!fw4: Handle {n} IPv4/IPv6 {hook} traffic\"\n",
                        n = z.name
                    );
                }
            }
            if verdict == Verdict::Reject {
                *o += "\t\tjump handle_reject\n";
            }
            *o += "\t}\n\n";
        };
        let established = |flows: &str| {
            format!("\t\tct state established,related accept comment \"!fw4: Allow {flows} established and related flows\"\n")
        };
        let mut head = String::from(
            "\t\tiifname \"lo\" accept comment \"!fw4: Accept traffic from loopback\"\n\n",
        );
        head += &established("inbound");
        if self.syn_flood {
            head += "\t\ttcp flags & (fin | syn | rst | ack) == syn jump syn_flood comment \"!fw4: Rate limit TCP syn packets\"\n";
        }
        base_chain(&mut o, "input", self.input, &head, "iifname");
        base_chain(
            &mut o,
            "forward",
            self.forward,
            &established("forwarded"),
            "iifname",
        );
        let head = String::from(
            "\t\toifname \"lo\" accept comment \"!fw4: Accept traffic towards loopback\"\n\n",
        ) + &established("outbound");
        base_chain(&mut o, "output", self.output, &head, "oifname");

        o += "\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t}\n\n";
        o += "\tchain handle_reject {\n\
              \t\tmeta l4proto tcp reject with tcp reset comment \"!fw4: Reject TCP traffic\"\n\
              \t\treject with icmpx type port-unreachable comment \"!fw4: Reject any other traffic\"\n\
              \t}\n\n";
        if self.syn_flood {
            o += "\tchain syn_flood {\n\
                  \t\tlimit rate 25/second burst 50 packets return comment \"!fw4: Accept SYN packets below rate-limit\"\n\
                  \t\tdrop comment \"!fw4: Drop excess packets\"\n\
                  \t}\n\n";
        }

        for z in &zones {
            let n = &z.name;
            o += &format!(
                "\tchain input_{n} {{\n\t\tjump {}_from_{n}\n\t}}\n\n",
                z.input.word()
            );
            o += &format!(
                "\tchain output_{n} {{\n\t\tjump {}_to_{n}\n\t}}\n\n",
                z.output.word()
            );
            o += &format!("\tchain forward_{n} {{\n");
            for f in self.forwardings.iter().filter(|f| &f.src == n) {
                if self.zone(&f.dest).is_some() {
                    o += &format!(
                        "\t\tjump accept_to_{d} comment \"!fw4: Accept {n} to {d} forwarding\"\n",
                        d = f.dest
                    );
                }
            }
            o += &format!("\t\tjump {}_to_{n}\n\t}}\n\n", z.forward.word());
            for v in [Verdict::Accept, Verdict::Reject, Verdict::Drop] {
                let w = v.word();
                if z.input == v {
                    o += &format!("\tchain {w}_from_{n} {{\n");
                    for m in device_matches(&z.devices) {
                        o += &format!(
                            "\t\tiifname {m} counter {} comment \"!fw4: {w} {n} IPv4/IPv6 traffic\"\n",
                            v.action()
                        );
                    }
                    o += "\t}\n\n";
                }
                if self.dest_flag(z, v) {
                    o += &format!("\tchain {w}_to_{n} {{\n");
                    for m in device_matches(&z.devices) {
                        if v == Verdict::Accept && z.masq {
                            o += &format!(
                                "\t\tmeta nfproto ipv4 oifname {m} ct state invalid counter drop comment \"!fw4: Prevent NAT leakage\"\n"
                            );
                        }
                        o += &format!(
                            "\t\toifname {m} counter {} comment \"!fw4: {w} {n} IPv4/IPv6 traffic\"\n",
                            v.action()
                        );
                    }
                    o += "\t}\n\n";
                }
            }
        }

        o += "\tchain dstnat {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n\n";
        o += "\tchain srcnat {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n";
        for z in zones.iter().filter(|z| z.masq) {
            for m in device_matches(&z.devices) {
                o += &format!(
                    "\t\toifname {m} jump srcnat_{n} comment \"!fw4: Handle {n} IPv4/IPv6 srcnat traffic\"\n",
                    n = z.name
                );
            }
        }
        o += "\t}\n\n";
        for z in zones.iter().filter(|z| z.masq) {
            o += &format!(
                "\tchain srcnat_{n} {{\n\t\tmeta nfproto ipv4 masquerade comment \"!fw4: Masquerade IPv4 {n} traffic\"\n\t}}\n\n",
                n = z.name
            );
        }

        o += "\tchain mangle_forward {\n\t\ttype filter hook forward priority mangle; policy accept;\n";
        for z in zones.iter().filter(|z| z.mtu_fix) {
            for m in device_matches(&z.devices) {
                for (dir, what) in [("iifname", "ingress"), ("oifname", "egress")] {
                    o += &format!(
                        "\t\t{dir} {m} tcp flags syn / syn,fin,rst tcp option maxseg size set rt mtu comment \"!fw4: Zone {n} IPv4/IPv6 {what} MTU fixing\"\n",
                        n = z.name
                    );
                }
            }
        }
        o += "\t}\n}\n";
        o
    }

    fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones
            .iter()
            .find(|z| z.name == name && !z.devices.is_empty())
    }

    /// fw4's `dflags[verdict]`: the zone's output or forward policy, or the destination of a
    /// forwarding (accept).
    fn dest_flag(&self, z: &Zone, v: Verdict) -> bool {
        z.output == v
            || z.forward == v
            || (v == Verdict::Accept
                && self
                    .forwardings
                    .iter()
                    .any(|f| f.dest == z.name && self.zone(&f.src).is_some()))
    }
}

/// The device matches fw4 writes for a zone's devices: each `name+` wildcard alone (as
/// `"name*"`), then the plain names together (one, or a `{ set }`).
fn device_matches(devices: &[String]) -> Vec<String> {
    let mut v: Vec<String> = devices
        .iter()
        .filter_map(|d| d.strip_suffix('+'))
        .map(|d| format!("\"{d}*\""))
        .collect();
    let plain: Vec<String> = devices
        .iter()
        .filter(|d| !d.ends_with('+'))
        .map(|d| format!("\"{d}\""))
        .collect();
    match plain.len() {
        0 => {}
        1 => v.push(plain[0].clone()),
        _ => v.push(format!("{{ {} }}", plain.join(", "))),
    }
    v
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Loads the stand-in into namespace `ns`: OpenWrt's default firewall with `lan` and `wan` as
/// the zones' devices, plus the package's zone for [`LAB_HUB_DEVICE`].
pub(crate) fn install(ns: &str, lan: &[String], wan: &[String]) -> io::Result<()> {
    let mut fw = Firewall::openwrt_default(lan, wan);
    fw.apply_package(PACKAGE_DEFAULTS, LAB_HUB_DEVICE)
        .map_err(|e| io::Error::other(format!("openwrt/files/braid.uci-defaults: {e}")))?;
    super::sys::nft(ns, &fw.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Firewall {
        Firewall::openwrt_default(&["bl-br0".into()], &["bl-wan0".into(), "bl-wan1".into()])
    }

    #[test]
    fn the_package_adds_a_hub_zone_and_a_forwarding_from_lan() {
        let mut fw = lab();
        let n = fw.apply_package(PACKAGE_DEFAULTS, "braid0").unwrap();
        assert!(n >= 6, "{n} firewall lines in the uci-defaults script");
        let z = fw.zones.iter().find(|z| z.name == "braid").unwrap();
        assert_eq!(z.devices, vec!["braid0".to_string()]);
        assert_eq!(
            (z.input, z.output, z.forward),
            (Verdict::Reject, Verdict::Accept, Verdict::Reject)
        );
        assert!(!z.masq, "client addresses enter the tunnel unchanged");
        assert!(fw
            .forwardings
            .iter()
            .any(|f| f.src == "lan" && f.dest == "braid"));
        assert!(fw
            .forwardings
            .iter()
            .any(|f| f.src == "braid" && f.dest == "lan"));
    }

    #[test]
    fn default_config_renders_as_fw4_does() {
        let r = lab().render();
        for want in [
            "\t\tiifname \"bl-br0\" jump forward_lan comment \"!fw4: Handle lan IPv4/IPv6 forward traffic\"\n",
            "\t\tiifname { \"bl-wan0\", \"bl-wan1\" } jump forward_wan comment \"!fw4: Handle wan IPv4/IPv6 forward traffic\"\n\t\tjump handle_reject\n\t}",
            "\tchain forward_lan {\n\t\tjump accept_to_wan comment \"!fw4: Accept lan to wan forwarding\"\n\t\tjump accept_to_lan\n\t}",
            "\tchain accept_to_wan {\n\t\tmeta nfproto ipv4 oifname { \"bl-wan0\", \"bl-wan1\" } ct state invalid counter drop comment \"!fw4: Prevent NAT leakage\"\n",
            "\tchain drop_to_wan {\n\t\toifname { \"bl-wan0\", \"bl-wan1\" } counter drop",
            "\tchain srcnat_wan {\n\t\tmeta nfproto ipv4 masquerade",
            "tcp option maxseg size set rt mtu comment \"!fw4: Zone wan IPv4/IPv6 egress MTU fixing\"",
        ] {
            assert!(r.contains(want), "missing\n{want}\nin\n{r}");
        }
        assert!(!r.contains("braid"), "{r}");
    }

    #[test]
    fn without_the_package_nothing_accepts_toward_the_hub() {
        // LAN -> hub: forward_lan tries accept_to_wan and accept_to_lan (oifname matches
        // neither), returns, and the forward chain ends in handle_reject.
        let r = lab().render();
        assert!(!r.contains("bl-hub"));
        let mut fw = lab();
        fw.apply_package(PACKAGE_DEFAULTS, LAB_HUB_DEVICE).unwrap();
        let r = fw.render();
        for want in [
            "\tchain forward_lan {\n\t\tjump accept_to_wan comment \"!fw4: Accept lan to wan forwarding\"\n\t\tjump accept_to_braid comment \"!fw4: Accept lan to braid forwarding\"\n\t\tjump accept_to_lan\n\t}",
            "\tchain accept_to_braid {\n\t\toifname \"bl-hub*\" counter accept comment \"!fw4: accept braid IPv4/IPv6 traffic\"\n\t}",
            "\t\tiifname \"bl-hub*\" jump forward_braid comment",
            "\tchain forward_braid {\n\t\tjump accept_to_lan comment \"!fw4: Accept braid to lan forwarding\"\n\t\tjump reject_to_braid\n\t}",
        ] {
            assert!(r.contains(want), "missing\n{want}\nin\n{r}");
        }
        assert!(
            !r.contains("srcnat_braid"),
            "no masquerading toward the hub"
        );
        assert!(
            !r.contains("oifname \"bl-hub*\" ct state invalid"),
            "no NAT-leakage drop without masq"
        );
    }

    #[test]
    fn device_matches_follow_fw4() {
        let d = |v: &[&str]| device_matches(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(d(&["eth0"]), vec!["\"eth0\""]);
        assert_eq!(d(&["a", "b"]), vec!["{ \"a\", \"b\" }"]);
        assert_eq!(
            d(&["foo+", "bar+", "t1", "t2"]),
            vec!["\"foo*\"", "\"bar*\"", "{ \"t1\", \"t2\" }"]
        );
    }

    #[test]
    fn unknown_lines_are_errors_not_silence() {
        let mut fw = lab();
        let e = fw
            .apply_package("uci -q set firewall.braid.name='x'\n", "h")
            .unwrap_err();
        assert!(e.contains("no section 'braid'"), "{e}");
        let e = fw
            .apply_package("uci -q set firewall.r=rule\n", "h")
            .unwrap_err();
        assert!(e.contains("not modelled"), "{e}");
    }
}
