//! Which device a link uses, when its `config link` section has no `option device`.
//!
//! A section is named after its netifd interface (`wan`, `wwan`), and netifd names the L3
//! device (`pppoe-wan`, `wwan0`, `eth0.2`), which changes: `pppoe-wan` comes back with a new
//! index after every reconnect. The edge learns it two ways, and the later one counts:
//! - `braid link up NAME --device DEV`: the hotplug script calls it on every ifup with netifd's
//!   `$DEVICE`;
//! - the devices file (`braid edge --devices FILE`), written by the init script, one
//!   `NAME DEVICE` line per interface; read at start and on every reload. It speaks as of its
//!   modification time: an entry counts for a link unless the link heard from hotplug since,
//!   so a reload does not undo a later `--device`, and a file written anew is followed even
//!   when it names the device the link had before.
//!
//! `option device` in the config wins over both. A link whose device is not known waits, and
//! says so: it never takes a device named like its section (a default install would otherwise
//! look for devices called `wan` and `wwan`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::model::valid_ifname;

/// Parses a devices file: `NAME DEVICE` per line; blank lines and `#` comments are skipped.
/// Returns the entries and, for each line that is not one, a message naming it.
pub(crate) fn parse(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut w = line.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some(name), Some(dev), None) if valid_ifname(dev) => {
                out.push((name.to_string(), dev.to_string()));
            }
            _ => bad.push(format!(
                "line {}: expected 'INTERFACE DEVICE' (e.g. 'wan pppoe-wan'), got '{line}'",
                n + 1
            )),
        }
    }
    (out, bad)
}

/// The devices file (`--devices FILE`).
#[derive(Debug, Clone)]
pub(crate) struct DevicesFile {
    path: PathBuf,
}

/// What the devices file says, as of when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading {
    /// `(interface, device)` entries.
    pub(crate) entries: Vec<(String, String)>,
    /// When the file was written (an entry is newer than a link's device reported before).
    pub(crate) written: SystemTime,
    /// Lines that are not entries, or why the file could not be read, for the log.
    pub(crate) problems: Vec<String>,
}

impl DevicesFile {
    pub(crate) fn new(path: &Path) -> DevicesFile {
        DevicesFile {
            path: path.to_path_buf(),
        }
    }

    /// Reads the file; `None` when there is none (yet): nothing is known from it.
    pub(crate) fn read(&self) -> Option<Reading> {
        let problem = |e: std::io::Error| Reading {
            entries: Vec::new(),
            written: SystemTime::UNIX_EPOCH,
            problems: vec![format!("{}: {e}", self.path.display())],
        };
        let written = match std::fs::metadata(&self.path).and_then(|m| m.modified()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(problem(e)),
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(problem(e)),
        };
        let (entries, bad) = parse(&text);
        Some(Reading {
            entries,
            written,
            problems: bad
                .into_iter()
                .map(|b| format!("{}: {b}", self.path.display()))
                .collect(),
        })
    }
}

/// Whether an entry of a file written at `written` speaks for a link whose device was last
/// reported at `reported` (by the file or by `braid link up --device`): the later one counts.
pub(crate) fn file_is_newer(written: SystemTime, reported: Option<SystemTime>) -> bool {
    reported.map_or(true, |r| written > r)
}

/// The device a link uses: `option device` from the config, else the one netifd reported.
pub(crate) fn effective<'a>(
    configured: Option<&'a str>,
    reported: Option<&'a str>,
) -> Option<&'a str> {
    configured.or(reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_names_bad_ones() {
        let (e, bad) = parse(
            "# written by /etc/init.d/braid\nwan pppoe-wan\n\n  wwan\twwan0  # LTE\nwan6\nlan a/b\n",
        );
        assert_eq!(
            e,
            [
                ("wan".to_string(), "pppoe-wan".to_string()),
                ("wwan".to_string(), "wwan0".to_string())
            ]
        );
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("line 5:"), "{bad:?}");
        assert!(bad[1].contains("'lan a/b'"), "{bad:?}");
    }

    #[test]
    fn the_file_speaks_as_of_when_it_was_written() {
        let dir = std::env::temp_dir().join(format!("braid-devices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("devices");
        let _ = std::fs::remove_file(&path);
        let f = DevicesFile::new(&path);
        assert_eq!(f.read(), None, "no file: nothing known");
        std::fs::write(&path, "wan eth0.2\nwwan wwan0\n").unwrap();
        let r = f.read().unwrap();
        assert_eq!(r.entries.len(), 2);
        assert!(r.problems.is_empty());
        // Never reported: the file counts. Reported by hotplug after it was written: hotplug
        // counts (a reload does not undo it). Written again after that: the file counts.
        assert!(file_is_newer(r.written, None));
        let later = r.written + std::time::Duration::from_secs(1);
        assert!(!file_is_newer(r.written, Some(later)));
        assert!(!file_is_newer(r.written, Some(r.written)), "read before");
        assert!(file_is_newer(later, Some(r.written)));
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_config_wins_and_nothing_is_guessed() {
        assert_eq!(effective(Some("eth1"), Some("pppoe-wan")), Some("eth1"));
        assert_eq!(effective(None, Some("pppoe-wan")), Some("pppoe-wan"));
        assert_eq!(effective(None, None), None);
    }
}
