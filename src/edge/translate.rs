//! The edge's config in the protocol's terms: each `config link` as the session's link
//! parameters (role, weight, `option upload` as the link's rate cap, `option download` as the
//! cap the core is asked to keep to), demoted by a quota, and a reload's changes to the links
//! as the steps the event loop carries out ([`plan_links`]).

use std::collections::HashMap;

use crate::config::model::{self, QuotaAction};
use crate::daemon::translate::wire_role;
use crate::daemon::ReloadError;
use crate::proto::link::LinkConfig;
use crate::proto::wire::LinkRole;
use crate::proto::LinkId;

/// What the session is told about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkParams {
    /// Role, weight and upload cap (demoted if past its quota).
    pub(crate) config: LinkConfig,
    /// `option download`: the rate the core may send at on this link (`Session::set_peer_rate_cap`).
    pub(crate) peer_rate_cap: Option<u64>,
}

/// A link's parameters, demoted by `action` when past its quota.
pub(crate) fn link_params(l: &model::Link, action: Option<QuotaAction>) -> LinkParams {
    LinkParams {
        config: demoted_config(l, action),
        peer_rate_cap: l.download,
    }
}

/// One step of a reload (or of the start, from no links) for the links, in the order the
/// event loop takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkStep {
    /// The link is gone from the config: its traffic drains to the others.
    Remove { id: LinkId },
    /// The link stays: its settings may have changed. `reopen`: another transport, so another
    /// kind of socket.
    Update {
        id: LinkId,
        link: model::Link,
        params: LinkParams,
        reopen: bool,
    },
    /// A new link, with the lowest id free at that point.
    Add {
        id: LinkId,
        link: model::Link,
        params: LinkParams,
    },
}

/// The steps that take the links from `current` (id and config of each) to `new`: removals
/// first, then every new link in config order, updated or added. A link past its quota
/// (`demoted`) stays demoted; a new one starts undemoted.
pub(crate) fn plan_links(
    current: &[(LinkId, &model::Link)],
    demoted: &HashMap<LinkId, QuotaAction>,
    new: &[model::Link],
) -> Result<Vec<LinkStep>, ReloadError> {
    let mut steps = Vec::new();
    let mut used: Vec<LinkId> = Vec::new();
    for (id, l) in current {
        if new.iter().any(|n| n.name == l.name) {
            used.push(*id);
        } else {
            steps.push(LinkStep::Remove { id: *id });
        }
    }
    for nl in new {
        if let Some((id, old)) = current.iter().find(|(_, l)| l.name == nl.name) {
            steps.push(LinkStep::Update {
                id: *id,
                link: nl.clone(),
                params: link_params(nl, demoted.get(id).copied()),
                reopen: old.transport != nl.transport,
            });
            continue;
        }
        let id = (0..=255u8)
            .find(|id| !used.contains(id))
            .ok_or(ReloadError::TooManyLinks)?;
        used.push(id);
        steps.push(LinkStep::Add {
            id,
            link: nl.clone(),
            params: link_params(nl, None),
        });
    }
    Ok(steps)
}

/// A link's session config as the config sets it.
pub(crate) fn link_config(l: &model::Link) -> LinkConfig {
    LinkConfig {
        role: wire_role(l.role),
        weight: u32::from(l.weight.max(1)),
        rate_cap_bps: l.upload.filter(|&c| c > 0),
    }
}

/// A link's session config, demoted by `action` when past its quota: `backup` or `never`, but
/// never promoted (a `never` link past its quota stays `never`).
pub(crate) fn demoted_config(l: &model::Link, action: Option<QuotaAction>) -> LinkConfig {
    let mut c = link_config(l);
    let floor = match action {
        None => return c,
        Some(QuotaAction::Backup) => LinkRole::Backup,
        Some(QuotaAction::Never) => LinkRole::Never,
    };
    let rank = |r: LinkRole| match r {
        LinkRole::Primary => 0,
        LinkRole::Secondary => 1,
        LinkRole::Backup => 2,
        LinkRole::Never => 3,
    };
    if rank(floor) > rank(c.role) {
        c.role = floor;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Transport;

    /// The links as the edge numbers them at start.
    fn numbered(links: &[model::Link]) -> Vec<(LinkId, &model::Link)> {
        (0..).zip(links).collect()
    }

    fn link(role: model::LinkRole) -> model::Link {
        model::Link {
            name: "lte".into(),
            line: 1,
            device: None,
            transport: Transport::Udp,
            role,
            weight: 2,
            upload: Some(5_000_000),
            download: None,
            quota: None,
        }
    }

    #[test]
    fn a_quota_demotes_but_never_promotes() {
        use model::LinkRole as R;
        let p = link(R::Primary);
        assert_eq!(demoted_config(&p, None).role, LinkRole::Primary);
        let c = demoted_config(&p, Some(QuotaAction::Backup));
        assert_eq!(
            (c.role, c.weight, c.rate_cap_bps),
            (LinkRole::Backup, 2, Some(5_000_000)),
            "only the role changes"
        );
        assert_eq!(
            demoted_config(&p, Some(QuotaAction::Never)).role,
            LinkRole::Never
        );
        assert_eq!(
            demoted_config(&link(R::Secondary), Some(QuotaAction::Backup)).role,
            LinkRole::Backup
        );
        assert_eq!(
            demoted_config(&link(R::Never), Some(QuotaAction::Backup)).role,
            LinkRole::Never,
            "a 'never' link stays unused"
        );
    }

    #[test]
    fn option_download_becomes_the_peer_rate_cap_at_start_and_on_reload() {
        let cfg = super::super::fixture();
        let start = plan_links(&[], &HashMap::new(), &cfg.links).unwrap();
        let caps: Vec<(LinkId, Option<u64>)> = start
            .iter()
            .map(|s| match s {
                LinkStep::Add { id, params, .. } => (*id, params.peer_rate_cap),
                other => panic!("at start only adds: {other:?}"),
            })
            .collect();
        assert_eq!(
            caps,
            vec![
                (0, Some(80_000_000)),
                (1, Some(40_000_000)),
                (2, Some(1_000_000_000))
            ]
        );
        // A reload that changes lte1's download to 50 Mbit/s and drops sat's.
        let mut new = cfg.links.clone();
        new[0].download = Some(50_000_000);
        new[2].download = None;
        let current = numbered(&cfg.links);
        let steps = plan_links(&current, &HashMap::new(), &new).unwrap();
        let caps: Vec<Option<u64>> = steps
            .iter()
            .map(|s| match s {
                LinkStep::Update { params, .. } => params.peer_rate_cap,
                other => panic!("only updates: {other:?}"),
            })
            .collect();
        assert_eq!(caps, vec![Some(50_000_000), Some(40_000_000), None]);
    }

    #[test]
    fn a_reload_removes_first_reuses_free_ids_keeps_demotions_and_reopens_on_a_new_transport() {
        let cfg = super::super::fixture();
        let current = numbered(&cfg.links);
        // lte1 goes, lte2 (demoted by its quota) switches to UDP, a new link comes.
        let mut new = vec![cfg.links[1].clone(), cfg.links[2].clone()];
        new[0].transport = Transport::Udp;
        let mut added = cfg.links[0].clone();
        added.name = "wan".into();
        new.push(added);
        let demoted = HashMap::from([(1, QuotaAction::Backup)]);
        let steps = plan_links(&current, &demoted, &new).unwrap();
        assert_eq!(steps[0], LinkStep::Remove { id: 0 });
        match &steps[1] {
            LinkStep::Update {
                id, params, reopen, ..
            } => {
                assert_eq!((*id, *reopen), (1, true));
                assert_eq!(params.config.role, LinkRole::Backup, "still past its quota");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &steps[2],
            LinkStep::Update {
                id: 2,
                reopen: false,
                ..
            }
        ));
        match &steps[3] {
            LinkStep::Add { id, link, params } => {
                assert_eq!((*id, link.name.as_str()), (0, "wan"), "the freed id");
                assert_eq!(params.config.role, LinkRole::Primary);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn more_than_256_links_are_refused() {
        let cfg = super::super::fixture();
        let many: Vec<model::Link> = (0..257)
            .map(|i| {
                let mut l = cfg.links[0].clone();
                l.name = format!("l{i}");
                l
            })
            .collect();
        assert_eq!(
            plan_links(&[], &HashMap::new(), &many),
            Err(ReloadError::TooManyLinks)
        );
        assert_eq!(
            plan_links(&[], &HashMap::new(), &many[..256])
                .unwrap()
                .len(),
            256
        );
    }
}
