//! The servers a run measures: switchboard as built from this tree, each peer,
//! and, when asked for, a baseline build of switchboard.
//!
//! A [`Flavor`] is how the load talks to a server; a [`Server`] is which
//! program answers. They differ only for the baseline, which speaks
//! switchboard's dialect from another binary (`--baseline-bin`, built from a
//! fixed commit by `tests/load/baseline`), so that a change to switchboard
//! can be measured against that commit in the same run.

use std::fmt;

use crate::flavor::{Flavor, Scenario};

/// One server under test: a row of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// A server as this tree has it, named by its dialect: switchboard as
    /// built from the tree, or one of the peers.
    Current(Flavor),
    /// The baseline build of switchboard given with `--baseline-bin`.
    Baseline,
}

impl Server {
    /// How the load talks to it.
    pub fn flavor(self) -> Flavor {
        match self {
            Server::Current(flavor) => flavor,
            Server::Baseline => Flavor::Switchboard,
        }
    }

    /// Its name in the log and in reports (the baseline's is also the name of its log file).
    pub fn name(self) -> &'static str {
        match self {
            Server::Current(flavor) => flavor.name(),
            Server::Baseline => "switchboard-baseline",
        }
    }

    /// Whether it takes part in `scenario`. The baseline takes part in the
    /// scenarios of the session path (calls, fan-out, callback rounds and
    /// memory), whose figures a change to switchboard moves and which need
    /// nothing but the server; the cross-node and server-API scenarios, which
    /// need a Redis or have no peer to compare with, stay with the current
    /// build so that an A/B run stays short.
    pub fn supports(self, scenario: Scenario) -> bool {
        match self {
            Server::Current(flavor) => flavor.supports(scenario),
            Server::Baseline => matches!(
                scenario,
                Scenario::Calls | Scenario::CallsSerial | Scenario::Fanout | Scenario::Reverse | Scenario::Memory
            ),
        }
    }
}

impl From<Flavor> for Server {
    fn from(flavor: Flavor) -> Self {
        Server::Current(flavor)
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_speaks_switchboard_under_a_name_of_its_own() {
        assert_eq!(Server::Baseline.flavor(), Flavor::Switchboard);
        assert_ne!(Server::Baseline.name(), Server::from(Flavor::Switchboard).name());
        // Every scenario the baseline takes part in is one the current switchboard runs too, so each of its figures has a partner.
        for scenario in Scenario::ALL {
            if Server::Baseline.supports(scenario) {
                assert!(Flavor::Switchboard.supports(scenario), "{}", scenario.name());
            }
        }
    }
}
