//! Translations shared by both roles: the config's words into the protocol's values, and the
//! protocol's values into the words `braid status` prints.

use crate::classify::Classifier;
use crate::config::model::{self, Config};
use crate::proto::link::LinkState;
use crate::proto::wire::LinkRole;
use crate::proto::LinkId;

/// Role of a config link as the protocol knows it.
pub(crate) fn wire_role(r: model::LinkRole) -> LinkRole {
    match r {
        model::LinkRole::Primary => LinkRole::Primary,
        model::LinkRole::Secondary => LinkRole::Secondary,
        model::LinkRole::Backup => LinkRole::Backup,
        model::LinkRole::Never => LinkRole::Never,
    }
}

/// The session's classes from the config's classes (pinned links by name -> link id).
pub(crate) fn session_classes(
    cfg: &Config,
    link_id: impl Fn(&str) -> Option<LinkId>,
) -> Vec<crate::proto::sched::ClassConfig> {
    use crate::proto::sched::{ClassConfig, Mode};
    let classifier = Classifier::from_config(cfg);
    classifier
        .classes()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let id = u8::try_from(i).ok()?;
            let mode = match c.mode {
                model::Mode::Aggregate => Mode::Aggregate,
                model::Mode::Redundant => Mode::Redundant,
                model::Mode::Backup => Mode::Backup,
                model::Mode::Pinned => {
                    Mode::Pinned(c.link.as_deref().and_then(&link_id).unwrap_or(0))
                }
            };
            Some(ClassConfig {
                id,
                mode,
                priority: c.priority,
                weight: u32::from(c.weight.max(1)),
            })
        })
        .collect()
}

/// A link state as `braid status` prints it.
pub(crate) fn state_name(s: LinkState) -> &'static str {
    match s {
        LinkState::Up => "up",
        LinkState::Degraded => "degraded",
        LinkState::Down => "down",
    }
}
