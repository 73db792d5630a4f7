//! ConText-style assertion: cue phrases with a category and a direction open a
//! scope inside the sentence; an entity inside a scope takes the assertion of
//! the nearest cue that covers it.
//!
//! Rules are data in medspaCy's `context_rules.json` layout (literal or token
//! pattern with `LOWER` / `IN` / `OP: "?"`). Two files ship: our radiology cues
//! (loaded first, so they win on a shared phrase) and medspaCy's own rules.

use crate::phrase_matcher::PhraseMatcher;
use crate::schema::Assertion;
use crate::text::{normalize_word, Token, TokenKind};
use serde::Deserialize;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
    Bidirectional,
    /// Ends the scope of other cues.
    Terminate,
    /// Matches (and so hides shorter cues inside it) but has no effect.
    Pseudo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cue {
    /// What the cue does to an entity in its scope; `None` for cues that only
    /// mark context (historical) or terminate scopes.
    pub effect: Option<Assertion>,
    pub direction: Direction,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    context_rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    category: String,
    literal: String,
    #[serde(default)]
    pattern: Option<Vec<PatternToken>>,
    direction: String,
}

#[derive(Debug, Deserialize)]
struct PatternToken {
    #[serde(rename = "LOWER")]
    lower: LowerSpec,
    #[serde(rename = "OP", default)]
    op: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LowerSpec {
    Exact(String),
    AnyOf {
        #[serde(rename = "IN")]
        any_of: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("context rules JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rule {literal:?}: unknown {what} {value:?}")]
    Unknown {
        literal: String,
        what: &'static str,
        value: String,
    },
    #[error("rule {0:?}: only OP \"?\" is supported")]
    UnsupportedOp(String),
}

const RADIOLOGY_CUES: &str = include_str!("../../../models/rules/radiology_cues.json");
const MEDSPACY_RULES: &str = include_str!("../../../models/rules/medspacy_context_rules.json");

/// Where a cue applies within one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub cue: Range<usize>,
    pub covers: Range<usize>,
    pub effect: Assertion,
}

#[derive(Debug, Clone)]
pub struct ContextRules {
    cues: PhraseMatcher<Cue>,
}

impl ContextRules {
    /// The shipped rules: radiology cues, then medspaCy's rules.
    pub fn embedded() -> Self {
        Self::from_json_files(&[RADIOLOGY_CUES, MEDSPACY_RULES])
            .expect("the embedded context rules are validated by tests")
    }

    /// Builds the cue set from rule files; an earlier file wins on a shared phrase.
    pub fn from_json_files(files: &[&str]) -> Result<Self, RuleError> {
        let mut cues = PhraseMatcher::default();
        for json in files {
            let file: RuleFile = serde_json::from_str(json)?;
            for rule in file.context_rules {
                let cue = Cue {
                    effect: category_effect(&rule)?,
                    direction: direction(&rule)?,
                };
                for keys in expand(&rule)? {
                    cues.insert_keys(keys, cue);
                }
            }
        }
        Ok(Self { cues })
    }

    /// The scopes of every cue in `sentence` (token indices into `tokens`).
    pub fn scopes(&self, tokens: &[Token], sentence: Range<usize>) -> Vec<Scope> {
        let sent = &tokens[sentence.clone()];
        let offset = sentence.start;
        let mut found: Vec<(Range<usize>, Cue)> = Vec::new();
        for m in self.cues.find_all(sent) {
            // medspaCy's ": no" / ": none" look back ("Effusion: no."). Followed
            // by a word, the colon ends a title instead ("IMPRESSION: No
            // effusion"), and the words after it are a cue of their own.
            let colon_then_word = m.value.direction == Direction::Backward
                && sent[m.tokens.start].norm == ":"
                && sent
                    .get(m.tokens.end)
                    .is_some_and(|t| t.kind == TokenKind::Word);
            if colon_then_word {
                let rest = m.tokens.start + 1;
                found.extend(
                    self.cues
                        .find_all(&sent[rest..m.tokens.end])
                        .into_iter()
                        .map(|r| {
                            (
                                r.tokens.start + rest + offset..r.tokens.end + rest + offset,
                                *r.value,
                            )
                        }),
                );
            } else {
                found.push((m.tokens.start + offset..m.tokens.end + offset, *m.value));
            }
        }
        let terminators: Vec<&Range<usize>> = found
            .iter()
            .filter(|(_, c)| c.direction == Direction::Terminate)
            .map(|(r, _)| r)
            .collect();
        let mut scopes = Vec::new();
        for (range, cue) in &found {
            let Some(effect) = cue.effect else { continue };
            let forward = || {
                let end = terminators
                    .iter()
                    .filter(|t| t.start >= range.end)
                    .map(|t| t.start)
                    .min()
                    .unwrap_or(sentence.end);
                range.end..end
            };
            let backward = || {
                let start = terminators
                    .iter()
                    .filter(|t| t.end <= range.start)
                    .map(|t| t.end)
                    .max()
                    .unwrap_or(sentence.start);
                start..range.start
            };
            let mut push = |covers: Range<usize>| {
                scopes.push(Scope {
                    cue: range.clone(),
                    covers,
                    effect,
                })
            };
            match cue.direction {
                Direction::Forward => push(forward()),
                Direction::Backward => push(backward()),
                Direction::Bidirectional => {
                    push(forward());
                    push(backward());
                }
                Direction::Terminate | Direction::Pseudo => {}
            }
        }
        scopes
    }
}

/// The assertion of the tokens `target`: that of the nearest covering cue, else present.
pub fn assertion_of(scopes: &[Scope], target: &Range<usize>) -> Assertion {
    scopes
        .iter()
        .filter(|s| s.covers.start <= target.start && target.end <= s.covers.end)
        .min_by_key(|s| {
            if s.cue.end <= target.start {
                target.start - s.cue.end
            } else {
                s.cue.start.saturating_sub(target.end)
            }
        })
        .map_or(Assertion::Present, |s| s.effect)
}

fn category_effect(rule: &RawRule) -> Result<Option<Assertion>, RuleError> {
    Ok(match rule.category.as_str() {
        "NEGATED_EXISTENCE" | "FAMILY" => Some(Assertion::Absent),
        "POSSIBLE_EXISTENCE" | "HYPOTHETICAL" => Some(Assertion::Uncertain),
        "HISTORICAL" | "TERMINATE" | "PSEUDO" => None,
        other => {
            return Err(RuleError::Unknown {
                literal: rule.literal.clone(),
                what: "category",
                value: other.to_string(),
            })
        }
    })
}

fn direction(rule: &RawRule) -> Result<Direction, RuleError> {
    Ok(match rule.direction.as_str() {
        "FORWARD" => Direction::Forward,
        "BACKWARD" => Direction::Backward,
        "BIDIRECTIONAL" => Direction::Bidirectional,
        "TERMINATE" => Direction::Terminate,
        "PSEUDO" => Direction::Pseudo,
        other => {
            return Err(RuleError::Unknown {
                literal: rule.literal.clone(),
                what: "direction",
                value: other.to_string(),
            })
        }
    })
}

/// Every token sequence a rule matches: its pattern expanded over `IN`
/// alternatives and optional tokens, or its literal.
fn expand(rule: &RawRule) -> Result<Vec<Vec<String>>, RuleError> {
    let Some(pattern) = &rule.pattern else {
        return Ok(vec![crate::text::phrase_keys(&rule.literal)]);
    };
    let mut seqs: Vec<Vec<String>> = vec![Vec::new()];
    for tok in pattern {
        let words: Vec<String> = match &tok.lower {
            LowerSpec::Exact(w) => vec![normalize_word(w)],
            LowerSpec::AnyOf { any_of } => any_of.iter().map(|w| normalize_word(w)).collect(),
        };
        let optional = match tok.op.as_deref() {
            None => false,
            Some("?") => true,
            Some(_) => return Err(RuleError::UnsupportedOp(rule.literal.clone())),
        };
        let mut next = Vec::new();
        for seq in &seqs {
            if optional {
                next.push(seq.clone());
            }
            for w in &words {
                let mut s = seq.clone();
                s.push(w.clone());
                next.push(s);
            }
        }
        seqs = next;
    }
    Ok(seqs)
}
