//! A policy's rules compiled for the walk: which rules a path step admits is looked up per
//! depth in a table of the distinct names the rules use there, instead of asking every
//! still-active rule. The walk takes a step for every field of every event, and at the top
//! level every rule is active, so this lookup is most of what rules cost on the hot path.

use crate::pointer::{Pattern, Segment};
use crate::policy::Method;

/// A rule ready to match: where, what to do, and the category it reports.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Where the rule applies.
    pub pattern: Pattern,
    /// What it does there.
    pub method: Method,
    /// Written into `[REDACTED:<category>]` and `pii_categories`.
    pub category: String,
}

/// A set of rules by index: a tenant's and a project's policy hold at most 2 x
/// [`MAX_RULES`](crate::MAX_RULES) = 128.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSet(u128);

impl RuleSet {
    fn all(count: usize) -> Self {
        match count {
            0 => Self(0),
            128.. => Self(u128::MAX),
            count => Self((1u128 << count) - 1),
        }
    }

    /// Whether the set holds no rule.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rules in both sets.
    pub fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Calls `each` with every index in the set, in increasing order, until it says stop.
    pub fn visit(self, mut each: impl FnMut(usize) -> bool) {
        let mut bits = self.0;
        while bits != 0 {
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if !each(index) {
                return;
            }
        }
    }

    fn insert(&mut self, index: usize) {
        if index < 128 {
            self.0 |= 1 << index;
        }
    }
}

/// What the rules say at one depth of the path.
#[derive(Debug, Default)]
struct Depth {
    /// Rules with `*` here: any step.
    any: RuleSet,
    /// Each distinct name rules have here, with the rules that have it.
    names: Vec<(Box<str>, RuleSet)>,
}

/// A policy's rules, in precedence order, with their step table.
#[derive(Debug, Default)]
pub struct RuleBook {
    rules: Vec<CompiledRule>,
    depths: Vec<Depth>,
}

impl RuleBook {
    /// Compiles `rules` (in precedence order; beyond 128 they never match).
    pub fn new(rules: Vec<CompiledRule>) -> Self {
        let mut depths: Vec<Depth> = Vec::new();
        for (index, rule) in rules.iter().enumerate().take(128) {
            for (depth, segment) in rule.pattern.segments().iter().enumerate() {
                if depths.len() <= depth {
                    depths.resize_with(depth + 1, Depth::default);
                }
                let here = &mut depths[depth];
                match segment {
                    Segment::Any => here.any.insert(index),
                    Segment::Name(name) => {
                        match here.names.iter_mut().find(|(n, _)| **n == **name) {
                            Some((_, set)) => set.insert(index),
                            None => {
                                let mut set = RuleSet::default();
                                set.insert(index);
                                here.names.push((name.as_str().into(), set));
                            }
                        }
                    }
                }
            }
        }
        Self { rules, depths }
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule: what is active at the event's root.
    pub fn all(&self) -> RuleSet {
        RuleSet::all(self.rules.len())
    }

    /// The rules whose segment `depth` admits `step`.
    pub fn admitting(&self, depth: usize, step: &str) -> RuleSet {
        let Some(here) = self.depths.get(depth) else {
            return RuleSet::default();
        };
        let named = here
            .names
            .iter()
            .find(|(name, _)| name.len() == step.len() && **name == *step)
            .map_or(0, |(_, set)| set.0);
        RuleSet(here.any.0 | named)
    }
}

impl std::ops::Index<usize> for RuleBook {
    type Output = CompiledRule;

    fn index(&self, index: usize) -> &CompiledRule {
        &self.rules[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(paths: &[&str]) -> RuleBook {
        RuleBook::new(
            paths
                .iter()
                .map(|path| CompiledRule {
                    pattern: Pattern::parse(path).unwrap(),
                    method: Method::Mask,
                    category: "c".into(),
                })
                .collect(),
        )
    }

    fn indices(set: RuleSet) -> Vec<usize> {
        let mut out = Vec::new();
        set.visit(|index| {
            out.push(index);
            true
        });
        out
    }

    #[test]
    fn a_step_admits_the_rules_naming_it_or_a_wildcard_there() {
        let rules = book(&["/a/b", "/a/*/c", "/x", "/a/b/d", "/*/b"]);
        assert_eq!(indices(rules.admitting(0, "a")), [0, 1, 3, 4]);
        assert_eq!(indices(rules.admitting(0, "x")), [2, 4]);
        assert_eq!(indices(rules.admitting(0, "y")), [4]);
        assert_eq!(indices(rules.admitting(1, "b")), [0, 1, 3, 4]);
        assert_eq!(indices(rules.admitting(1, "q")), [1]);
        assert_eq!(indices(rules.admitting(2, "c")), [1]);
        assert_eq!(indices(rules.admitting(3, "c")), Vec::<usize>::new());
        // The walk narrows what was active with what the step admits.
        let after_a = rules.all().and(rules.admitting(0, "a"));
        assert_eq!(indices(after_a.and(rules.admitting(1, "b"))), [0, 1, 3, 4]);
        assert_eq!(indices(after_a.and(rules.admitting(1, "zz"))), [1]);
    }
}
