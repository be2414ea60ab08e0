//! Placement strategies: the best-effort ranking stage of the pipeline (ECS-NOTES §2.2).
//!
//! * [`Strategy`] is the user-facing value: parsed from `type(field)` text or from the ECS wire
//!   pair `{type, field}`, printed back the same way.
//! * [`RankStrategy`] is the trait each strategy implements, one file each: `spread.rs`,
//!   `binpack.rs`, `random.rs`. [`Strategy::ranker`] lists them explicitly (no hidden
//!   registration). Adding a strategy = a new file implementing the trait, a variant, and one
//!   arm each in `ranker`, `from_parts` and `Display`.
//! * [`narrow`] is the shared refinement loop: each strategy scores the survivors of the
//!   previous one and only the lowest score survives, so a later strategy only breaks the ties of
//!   the earlier ones. Placement and victim choice both use it.
//!
//! Strategies never reject a candidate on their own: a strategy list never blocks placement.

mod binpack;
mod random;
pub(crate) mod spread;

use std::fmt;

use crate::error::SchedulerError;
use crate::rng::SeededRng;
use crate::view::{ClusterState, TaskRequest};

/// ECS allows at most five strategies per service or RunTask call.
pub const MAX_STRATEGIES: usize = 5;

/// The attribute ECS (and Berth) uses for availability zones.
pub const AVAILABILITY_ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// One placement strategy. Lists are applied in order, each refining the previous choice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Even distribution of the task's group over the distinct values of the field.
    Spread(SpreadField),
    /// Pack onto the instance with the least remaining amount of the field that still fits.
    Binpack(BinpackField),
    /// A (seeded) random candidate.
    Random,
}

/// What `spread` balances over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpreadField {
    /// One value per instance (`instanceId`, alias `host`).
    InstanceId,
    /// The value of an instance attribute (`attribute:<name>`). Instances lacking the attribute
    /// are least preferred for placement and most preferred as scale-in victims.
    Attribute(String),
}

/// What `binpack` packs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// Spread by availability zone, then by instance: the ECS service default, and Berth's default
/// for standalone RunTask too (see the decisions list in ECS-NOTES).
pub fn default_strategies() -> Vec<Strategy> {
    vec![
        Strategy::Spread(SpreadField::Attribute(AVAILABILITY_ZONE_ATTRIBUTE.to_owned())),
        Strategy::Spread(SpreadField::InstanceId),
    ]
}

/// Checks a strategy list against ECS limits (today: at most [`MAX_STRATEGIES`]).
pub fn validate_strategies(strategies: &[Strategy]) -> Result<(), SchedulerError> {
    if strategies.len() > MAX_STRATEGIES {
        return Err(SchedulerError::TooManyStrategies {
            got: strategies.len(),
            max: MAX_STRATEGIES,
        });
    }
    Ok(())
}

const SPREAD_FIELDS: &str = "instanceId, host or attribute:<name>";
const BINPACK_FIELDS: &str = "cpu or memory";

impl Strategy {
    /// Parses `spread(attribute:ecs.availability-zone)`, `spread(instanceId)`, `spread(host)`,
    /// `binpack(cpu)`, `binpack(memory)` or `random`. Type names and keyword fields are
    /// case-insensitive; attribute names are kept as written. Surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<Self, SchedulerError> {
        let malformed = || SchedulerError::MalformedStrategy { input: text.to_owned() };
        let trimmed = text.trim();
        match trimmed.split_once('(') {
            None => {
                if trimmed.contains(')') {
                    return Err(malformed());
                }
                Self::from_parts(trimmed, None)
            }
            Some((kind, rest)) => {
                let field = rest.strip_suffix(')').ok_or_else(malformed)?;
                if field.contains(['(', ')']) {
                    return Err(malformed());
                }
                Self::from_parts(kind.trim(), Some(field.trim()))
            }
        }
    }

    /// Builds a strategy from the ECS wire pair (`PlacementStrategy.type`, `.field`).
    /// An absent or empty field is treated the same.
    pub fn from_parts(kind: &str, field: Option<&str>) -> Result<Self, SchedulerError> {
        let field = field.filter(|f| !f.is_empty());
        match kind.to_ascii_lowercase().as_str() {
            "spread" => {
                let field = field.ok_or(SchedulerError::MissingStrategyField {
                    kind: "spread",
                    expected: SPREAD_FIELDS,
                })?;
                let invalid = || SchedulerError::InvalidStrategyField {
                    kind: "spread",
                    field: field.to_owned(),
                    expected: SPREAD_FIELDS,
                };
                if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                    return Ok(Strategy::Spread(SpreadField::InstanceId));
                }
                let (prefix, name) = field.split_once(':').ok_or_else(invalid)?;
                if !prefix.eq_ignore_ascii_case("attribute") || name.trim().is_empty() {
                    return Err(invalid());
                }
                Ok(Strategy::Spread(SpreadField::Attribute(name.trim().to_owned())))
            }
            "binpack" => {
                let field = field.ok_or(SchedulerError::MissingStrategyField {
                    kind: "binpack",
                    expected: BINPACK_FIELDS,
                })?;
                match field.to_ascii_lowercase().as_str() {
                    "cpu" => Ok(Strategy::Binpack(BinpackField::Cpu)),
                    "memory" => Ok(Strategy::Binpack(BinpackField::Memory)),
                    _ => Err(SchedulerError::InvalidStrategyField {
                        kind: "binpack",
                        field: field.to_owned(),
                        expected: BINPACK_FIELDS,
                    }),
                }
            }
            "random" => match field {
                None => Ok(Strategy::Random),
                Some(field) => Err(SchedulerError::InvalidStrategyField {
                    kind: "random",
                    field: field.to_owned(),
                    expected: "no field",
                }),
            },
            "" => Err(SchedulerError::MalformedStrategy { input: kind.to_owned() }),
            _ => Err(SchedulerError::UnknownStrategyType { kind: kind.to_owned() }),
        }
    }

    /// The ECS `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Strategy::Spread(_) => "spread",
            Strategy::Binpack(_) => "binpack",
            Strategy::Random => "random",
        }
    }

    /// The ECS `field` string, if the type takes one.
    pub fn field(&self) -> Option<String> {
        match self {
            Strategy::Spread(SpreadField::InstanceId) => Some("instanceId".to_owned()),
            Strategy::Spread(SpreadField::Attribute(name)) => Some(format!("attribute:{name}")),
            Strategy::Binpack(BinpackField::Cpu) => Some("cpu".to_owned()),
            Strategy::Binpack(BinpackField::Memory) => Some("memory".to_owned()),
            Strategy::Random => None,
        }
    }

    /// The implementation of this strategy. The one explicit list of strategies.
    pub(crate) fn ranker(&self) -> &dyn RankStrategy {
        match self {
            Strategy::Spread(field) => field,
            Strategy::Binpack(field) => field,
            Strategy::Random => &random::Random,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field() {
            Some(field) => write!(f, "{}({field})", self.type_name()),
            None => f.write_str(self.type_name()),
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = SchedulerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::parse(s)
    }
}

/// A running task considered for stopping, as strategies see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Victim<'a> {
    /// Index of its instance in the [`ClusterState`].
    pub(crate) instance: usize,
    pub(crate) group: &'a str,
    pub(crate) cpu: i64,
    pub(crate) memory: i64,
}

/// One ranking rule. Scores are compared only among the candidates of one call; lower wins.
pub(crate) trait RankStrategy {
    /// Scores each instance in `candidates` (indices into `cluster`, all feasible) for receiving
    /// `task`.
    fn score_placement(
        &self,
        cluster: &ClusterState,
        task: &TaskRequest,
        candidates: &[usize],
        rng: &mut SeededRng,
    ) -> Vec<i64>;

    /// Scores each task in `victims` for being stopped (scale-in); lower is stopped first.
    fn score_victims(
        &self,
        cluster: &ClusterState,
        victims: &[Victim<'_>],
        rng: &mut SeededRng,
    ) -> Vec<i64>;
}

/// Keeps only the items of `pool` that share the lowest score under each strategy in turn.
/// `score` is called with the current survivors and returns one score per survivor.
pub(crate) fn narrow<T: Copy>(
    pool: &mut Vec<T>,
    strategies: &[Strategy],
    mut score: impl FnMut(&dyn RankStrategy, &[T]) -> Vec<i64>,
) {
    for strategy in strategies {
        if pool.len() <= 1 {
            return;
        }
        let scores = score(strategy.ranker(), pool);
        debug_assert_eq!(scores.len(), pool.len());
        let Some(&best) = scores.iter().min() else {
            return;
        };
        let mut scores = scores.into_iter();
        pool.retain(|_| scores.next() == Some(best));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trips_every_form() {
        for text in [
            "spread(attribute:ecs.availability-zone)",
            "spread(instanceId)",
            "binpack(cpu)",
            "binpack(memory)",
            "random",
        ] {
            let s = Strategy::parse(text).unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(Strategy::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn parse_accepts_aliases_case_and_spaces() {
        assert_eq!(
            Strategy::parse("spread(host)").unwrap(),
            Strategy::Spread(SpreadField::InstanceId)
        );
        assert_eq!(
            Strategy::parse(" BinPack( MEMORY ) ").unwrap(),
            Strategy::Binpack(BinpackField::Memory)
        );
        assert_eq!(
            Strategy::parse("spread(attribute:Stack)").unwrap(),
            Strategy::Spread(SpreadField::Attribute("Stack".into()))
        );
        assert_eq!(Strategy::from_parts("random", Some("")).unwrap(), Strategy::Random);
    }

    #[test]
    fn parse_rejects_bad_input_with_specific_errors() {
        assert!(matches!(
            Strategy::parse("pack(cpu)"),
            Err(SchedulerError::UnknownStrategyType { .. })
        ));
        assert!(matches!(
            Strategy::parse("spread"),
            Err(SchedulerError::MissingStrategyField { kind: "spread", .. })
        ));
        assert!(matches!(
            Strategy::parse("binpack()"),
            Err(SchedulerError::MissingStrategyField { .. })
        ));
        assert!(matches!(
            Strategy::parse("binpack(gpu)"),
            Err(SchedulerError::InvalidStrategyField { .. })
        ));
        assert!(matches!(
            Strategy::parse("spread(attribute:)"),
            Err(SchedulerError::InvalidStrategyField { .. })
        ));
        assert!(matches!(
            Strategy::parse("spread(zone)"),
            Err(SchedulerError::InvalidStrategyField { .. })
        ));
        assert!(matches!(
            Strategy::parse("random(cpu)"),
            Err(SchedulerError::InvalidStrategyField { .. })
        ));
        assert!(matches!(
            Strategy::parse("spread(host"),
            Err(SchedulerError::MalformedStrategy { .. })
        ));
        assert!(matches!(
            Strategy::parse("random)"),
            Err(SchedulerError::MalformedStrategy { .. })
        ));
        assert!(matches!(Strategy::parse(""), Err(SchedulerError::MalformedStrategy { .. })));
        let msg = Strategy::parse("binpack(gpu)").unwrap_err().to_string();
        assert!(msg.contains("gpu") && msg.contains("cpu or memory"), "{msg}");
    }

    #[test]
    fn default_strategies_spread_by_zone_then_instance() {
        let text: Vec<String> = default_strategies().iter().map(ToString::to_string).collect();
        assert_eq!(text, ["spread(attribute:ecs.availability-zone)", "spread(instanceId)"]);
    }

    #[test]
    fn validate_strategies_caps_the_list_at_five() {
        assert!(validate_strategies(&vec![Strategy::Random; 5]).is_ok());
        assert_eq!(
            validate_strategies(&vec![Strategy::Random; 6]),
            Err(SchedulerError::TooManyStrategies { got: 6, max: 5 })
        );
    }
}
