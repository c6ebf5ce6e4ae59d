//! The real protocol as a simulator [`Tunnel`](super::tunnel::Tunnel): a pair of `proto::Session`s.

use super::scenario::Scenario;
use super::tunnel::Pair;

/// Build the (edge, core) session pair for a scenario.
pub fn pair(_sc: &Scenario) -> Result<Pair, String> {
    Err(
        "the protocol session (proto::session) is not available in this build yet; \
         set `tunnel = \"pipe\"` to run the single-path stand-in"
            .into(),
    )
}
