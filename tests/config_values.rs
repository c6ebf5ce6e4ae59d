//! One table of option values and what the parser says of each
//! (`tests/fixtures/config/values.json`): `config::model::check_value` must give exactly these
//! results, and so must luci-app-braid's form validators (`braid/validate.js`, checked against
//! the same table by `tests/luci/validate.test.js`), so LuCI refuses what the daemon refuses,
//! with the daemon's words.
//!
//! To add a value: add it to INPUTS below and regenerate the table with
//! `BRAID_WRITE_VALUES=1 cargo test --test config_values`, then read the diff.

use braid::config::model::check_value;

const INPUTS: &[(&str, &[&str])] = &[
    (
        "rate",
        &[
            "20mbit",
            "512kbit",
            "1gbit",
            "1.5mbit",
            "100000",
            "0",
            "64k",
            "20M",
            "20 mbps",
            "20mbps",
            "20MB/s",
            "fast",
            "",
            "1.",
            "-5mbit",
            "20mbit/s",
            "99999999999999999999",
        ],
    ),
    (
        "quota",
        &[
            "20G",
            "500M",
            "1.5T",
            "4Gi",
            "1048576",
            "20GB",
            "20GiB",
            "0",
            "0G",
            "20GB/month",
            "20 G",
            "lots",
            "",
            "1.0000000001G",
        ],
    ),
    (
        "dscp",
        &[
            "EF",
            "ef",
            "CS0",
            "CS7",
            "CS8",
            "AF11",
            "AF43",
            "AF44",
            "AF51",
            "LE",
            "VA",
            "46",
            "63",
            "64",
            "expedited",
            "",
        ],
    ),
    (
        "ports",
        &[
            "80",
            "1000-2000",
            "1000:2000",
            "80,443",
            "0",
            "65536",
            "2000-1000",
            "http",
            "80-",
            "",
        ],
    ),
    (
        "port",
        &["51830", "1", "65535", "0", "65536", "+80", "80a", ""],
    ),
    (
        "key",
        &[
            "oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0=",
            " oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0= ",
            "oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh1=",
            "abc",
            "oFreshKeyoFreshKeyoFreshKeyoFreshKeyoFresh0",
            "oFreshKeyoFreshKeyoFreshKey-FreshKeyoFresh0=",
            "",
        ],
    ),
    (
        "cidr",
        &[
            "192.168.1.0/24",
            "192.168.1.1/24",
            "fd00::/64",
            "10.0.0.1",
            "192.168.1.0/33",
            "192.168.1.0/+24",
            "host/24",
            "",
        ],
    ),
    (
        "mac",
        &[
            "02:00:00:aa:bb:cc",
            "02-00-00-AA-BB-CC",
            "02:00:00:aa:bb",
            "02:00:00:aa:bb:cc:dd",
            "zz:00:00:aa:bb:cc",
            "",
        ],
    ),
    (
        "host",
        &[
            "core.example.net",
            "203.0.113.7",
            "2001:db8::1",
            "core example",
            "core_1",
            "",
        ],
    ),
    (
        "ifname",
        &[
            "eth1",
            "wwan0",
            "pppoe-wan",
            "a/b",
            "toolonginterface",
            "fifteen-chars15",
            "",
            ".",
            "..",
        ],
    ),
    ("weight", &["1", "1000", "0", "1001", "abc", "", "+5", "07"]),
    ("priority", &["0", "7", "8"]),
    ("mtu", &["1280", "9000", "1279", "9001", "1400"]),
    ("reset_day", &["1", "31", "0", "32"]),
    (
        "memory",
        &[
            "16M", "64M", "512K", "1G", "1.5G", "24MiB", "16 M", "8388608", "4M", "64G", "3M",
            "65G", "16T", "lots", "", "1.M",
        ],
    ),
    (
        "class",
        &[
            "realtime",
            "bulk-1",
            "a b",
            "",
            "abcdefghijabcdefghijabcdefghijabc",
        ],
    ),
];

fn table() -> serde_json::Value {
    let mut rows = Vec::new();
    for (kind, values) in INPUTS {
        for v in *values {
            rows.push(serde_json::json!({
                "kind": kind,
                "value": v,
                "error": check_value(kind, v).err(),
            }));
        }
    }
    serde_json::Value::Array(rows)
}

#[test]
fn the_shared_table_is_what_the_parser_says() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/config/values.json"
    );
    let now = table();
    if std::env::var_os("BRAID_WRITE_VALUES").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("values.json")).unwrap();
    assert_eq!(
        stored, now,
        "tests/fixtures/config/values.json is out of date with the parser: regenerate it \
         (BRAID_WRITE_VALUES=1) and make braid/validate.js agree"
    );
    // The table covers both outcomes for every kind.
    for (kind, _) in INPUTS {
        let rows: Vec<_> = now
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == *kind)
            .collect();
        assert!(
            rows.iter().any(|r| r["error"].is_null()),
            "{kind}: no good value"
        );
        assert!(
            rows.iter().any(|r| !r["error"].is_null()),
            "{kind}: no bad value"
        );
    }
}

#[test]
fn unknown_kinds_are_an_error() {
    assert!(check_value("colour", "red").is_err());
}
