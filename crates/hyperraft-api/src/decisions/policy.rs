//! [`DecisionPolicy`]: how a node turns a proposal request into the policy
//! the state machine tallies with — the criticality of an action, the
//! threshold of each criticality, whether votes must be signed, and
//! deadlines.

use std::collections::BTreeMap;
use std::time::Duration;

use hyperraft_wire::{Criticality, Threshold};

/// The node's decision rules. Chosen by the node that proposes (the
/// leader) and written into the proposal, so every replica tallies a
/// proposal with the policy it was committed with, even if nodes' rules
/// differ or change later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionPolicy {
    /// Action → criticality, for requests that leave it unset.
    pub rules: BTreeMap<String, Criticality>,
    /// The criticality of an action no rule names.
    pub default_criticality: Criticality,
    /// The threshold of each criticality, by `Criticality as usize`.
    pub thresholds: [Threshold; 4],
    /// Deadline of a proposal that sets none.
    pub default_deadline: Duration,
    /// Longest deadline accepted.
    pub deadline_max: Duration,
}

impl Default for DecisionPolicy {
    /// Money-moving actions are critical, risk calculations high, signals
    /// medium, anything else low; thresholds a simple majority, three
    /// quarters, and two thirds for high and critical.
    fn default() -> Self {
        let rules = [
            ("order_execute", Criticality::Critical),
            ("position_change", Criticality::Critical),
            ("risk_limit", Criticality::Critical),
            ("risk_calculation", Criticality::High),
            ("pattern_match", Criticality::Medium),
            ("strategy_signal", Criticality::Medium),
        ];
        DecisionPolicy {
            rules: rules.into_iter().map(|(action, level)| (action.to_string(), level)).collect(),
            default_criticality: Criticality::Low,
            thresholds: [
                Threshold::MAJORITY,
                Threshold { numerator: 3, denominator: 4, strict: false },
                Threshold::TWO_THIRDS,
                Threshold::TWO_THIRDS,
            ],
            default_deadline: Duration::from_secs(60),
            deadline_max: Duration::from_secs(24 * 3600),
        }
    }
}

impl DecisionPolicy {
    /// The criticality the rules give `action`.
    pub fn criticality_of(&self, action: &str) -> Criticality {
        self.rules.get(action).copied().unwrap_or(self.default_criticality)
    }

    /// The threshold of `criticality`.
    pub fn threshold(&self, criticality: Criticality) -> Threshold {
        self.thresholds[criticality as usize]
    }

    /// Whether votes at `criticality` must be signed: high and critical.
    pub fn signed(criticality: Criticality) -> bool {
        criticality >= Criticality::High
    }

    /// Checks what the state machine's guarantees rest on: every threshold
    /// is a valid share, high and critical need at least two thirds (so
    /// fewer than a third of faulty voters cannot approve alone), and the
    /// deadlines are ordered.
    pub fn validate(&self) -> Result<(), String> {
        for criticality in Criticality::ALL {
            let Threshold { numerator, denominator, strict } = self.threshold(criticality);
            let name = criticality_name(criticality);
            if numerator == 0 || denominator == 0 || numerator > denominator || (strict && numerator == denominator) {
                return Err(format!("decisions.thresholds.{name}: {numerator}/{denominator} is not a share in (0, 1]"));
            }
            if Self::signed(criticality) && u32::from(numerator) * 3 < u32::from(denominator) * 2 {
                return Err(format!("decisions.thresholds.{name} must be at least 2/3, not {numerator}/{denominator}"));
            }
        }
        if self.default_deadline.is_zero() || self.default_deadline > self.deadline_max {
            return Err("decisions.default_deadline_ms must be > 0 and at most decisions.deadline_max_ms".to_string());
        }
        Ok(())
    }
}

impl DecisionPolicy {
    /// The built-in policy with a node configuration's `[decisions]`
    /// section applied, validated.
    pub fn from_section(section: &hyperraft_node::config::DecisionsSection) -> Result<DecisionPolicy, String> {
        let mut policy = DecisionPolicy::default();
        if let Some(rules) = &section.criticality {
            policy.rules = rules
                .iter()
                .map(|(action, level)| {
                    let level =
                        parse_criticality(level).map_err(|error| format!("decisions.criticality.{action}: {error}"))?;
                    Ok((action.clone(), level))
                })
                .collect::<Result<_, String>>()?;
        }
        if let Some(level) = &section.default_criticality {
            policy.default_criticality =
                parse_criticality(level).map_err(|error| format!("decisions.default_criticality: {error}"))?;
        }
        for (level, share) in &section.thresholds {
            let criticality = parse_criticality(level).map_err(|error| format!("decisions.thresholds: {error}"))?;
            policy.thresholds[criticality as usize] =
                parse_threshold(share).map_err(|error| format!("decisions.thresholds.{level}: {error}"))?;
        }
        if let Some(ms) = section.default_deadline_ms {
            policy.default_deadline = Duration::from_millis(ms);
        }
        if let Some(ms) = section.deadline_max_ms {
            policy.deadline_max = Duration::from_millis(ms);
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// The lowercase name of a criticality, as the configuration writes it.
pub fn criticality_name(criticality: Criticality) -> &'static str {
    match criticality {
        Criticality::Low => "low",
        Criticality::Medium => "medium",
        Criticality::High => "high",
        Criticality::Critical => "critical",
    }
}

/// A criticality from its configuration name.
pub fn parse_criticality(name: &str) -> Result<Criticality, String> {
    Criticality::ALL
        .into_iter()
        .find(|criticality| criticality_name(*criticality) == name)
        .ok_or_else(|| format!("{name:?} is not low, medium, high or critical"))
}

/// A threshold from its configuration text: `">1/2"` (more than a half),
/// `">=3/4"` or `"3/4"` (at least three quarters).
pub fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let text = text.trim();
    let (strict, fraction) = match text.strip_prefix(">=") {
        Some(rest) => (false, rest),
        None => match text.strip_prefix('>') {
            Some(rest) => (true, rest),
            None => (false, text),
        },
    };
    let invalid = || format!("{text:?} is not a share like \">1/2\", \">=3/4\" or \"2/3\"");
    let (numerator, denominator) = fraction.trim().split_once('/').ok_or_else(invalid)?;
    let numerator: u8 = numerator.trim().parse().map_err(|_| invalid())?;
    let denominator: u8 = denominator.trim().parse().map_err(|_| invalid())?;
    if numerator == 0 || denominator == 0 || numerator > denominator || (strict && numerator == denominator) {
        return Err(invalid());
    }
    Ok(Threshold { numerator, denominator, strict })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_bad_ones_are_refused() {
        // Proves the three spellings parse to the shares they name and malformed or out-of-range shares are refused.
        assert_eq!(parse_threshold(">1/2"), Ok(Threshold::MAJORITY));
        assert_eq!(parse_threshold(">=2/3"), Ok(Threshold::TWO_THIRDS));
        assert_eq!(parse_threshold(" 3/4 "), Ok(Threshold { numerator: 3, denominator: 4, strict: false }));
        for bad in ["", "1/0", "0/3", "4/3", ">1/1", "half", "1/2/3", "300/400"] {
            assert!(parse_threshold(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_default_rules_map_actions_and_signed_levels_need_two_thirds() {
        // Proves the default rules give the documented criticalities, and validation refuses a signed level below 2/3.
        let policy = DecisionPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(policy.criticality_of("order_execute"), Criticality::Critical);
        assert_eq!(policy.criticality_of("risk_calculation"), Criticality::High);
        assert_eq!(policy.criticality_of("strategy_signal"), Criticality::Medium);
        assert_eq!(policy.criticality_of("lunch"), Criticality::Low);
        let mut weak = policy.clone();
        weak.thresholds[Criticality::High as usize] = Threshold::MAJORITY;
        assert!(weak.validate().unwrap_err().contains("high must be at least 2/3"));
    }

    #[test]
    fn a_configuration_section_replaces_rules_and_thresholds() {
        // Proves the [decisions] section's rules, default, thresholds and deadlines take effect, and a bad entry is refused with its name.
        let mut section = hyperraft_node::config::DecisionsSection {
            criticality: Some([("merge".to_string(), "high".to_string())].into()),
            default_criticality: Some("medium".to_string()),
            thresholds: [("medium".to_string(), ">=4/5".to_string())].into(),
            default_deadline_ms: Some(5_000),
            deadline_max_ms: Some(10_000),
        };
        let policy = DecisionPolicy::from_section(&section).unwrap();
        assert_eq!(policy.criticality_of("merge"), Criticality::High);
        assert_eq!(policy.criticality_of("order_execute"), Criticality::Medium, "the rules were replaced");
        assert_eq!(policy.threshold(Criticality::Medium), Threshold { numerator: 4, denominator: 5, strict: false });
        assert_eq!((policy.default_deadline, policy.deadline_max), (Duration::from_secs(5), Duration::from_secs(10)));
        section.thresholds.insert("critical".to_string(), ">1/2".to_string());
        assert!(DecisionPolicy::from_section(&section).unwrap_err().contains("critical must be at least 2/3"));
        section.criticality = Some([("merge".to_string(), "urgent".to_string())].into());
        assert!(DecisionPolicy::from_section(&section).unwrap_err().contains("decisions.criticality.merge"));
    }
}
