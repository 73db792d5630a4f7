//! Splitting a report into plain runs and entity runs for highlighting.
//! Offsets are in chars, as in the output schema.

use integrabner_core::Entity;

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Plain(String),
    /// The text of entity number `entity` of the prediction.
    Entity {
        text: String,
        entity: usize,
    },
    /// Words outside the entities that gave entity `entity` its modifier
    /// number `modifier` (a qualifier: "left", "small").
    Modifier {
        text: String,
        entity: usize,
        modifier: usize,
    },
}

/// Covers `text` exactly once, left to right. An entity that overlaps an
/// earlier one, or lies outside the text, is not highlighted (it stays in the
/// findings and the export); nor is a modifier inside an entity or over
/// another modifier.
pub fn segments(text: &str, entities: &[Entity]) -> Vec<Segment> {
    let chars: Vec<char> = text.chars().collect();
    let fits = |start: usize, end: usize| start < end && end <= chars.len();
    let mut order: Vec<usize> = (0..entities.len()).collect();
    order.sort_by_key(|&i| (entities[i].start, std::cmp::Reverse(entities[i].end)));
    // (start, end, entity, modifier): entity runs first, then modifiers in
    // the gaps.
    let mut runs: Vec<(usize, usize, usize, Option<usize>)> = Vec::new();
    let mut at = 0;
    for i in order {
        let e = &entities[i];
        if e.start < at || !fits(e.start, e.end) {
            continue;
        }
        runs.push((e.start, e.end, i, None));
        at = e.end;
    }
    for (i, e) in entities.iter().enumerate() {
        for (m, modifier) in e.modifiers.iter().enumerate() {
            let free = !runs
                .iter()
                .any(|r| r.0 < modifier.end && modifier.start < r.1);
            if fits(modifier.start, modifier.end) && free {
                runs.push((modifier.start, modifier.end, i, Some(m)));
            }
        }
    }
    runs.sort_by_key(|r| r.0);
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end, entity, modifier) in runs {
        if start > at {
            out.push(Segment::Plain(chars[at..start].iter().collect()));
        }
        let text = chars[start..end].iter().collect();
        out.push(match modifier {
            None => Segment::Entity { text, entity },
            Some(modifier) => Segment::Modifier {
                text,
                entity,
                modifier,
            },
        });
        at = end;
    }
    if at < chars.len() {
        out.push(Segment::Plain(chars[at..].iter().collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrabner_core::RulePipeline;

    fn joined(segs: &[Segment]) -> String {
        segs.iter()
            .map(|s| match s {
                Segment::Plain(t)
                | Segment::Entity { text: t, .. }
                | Segment::Modifier { text: t, .. } => t.as_str(),
            })
            .collect()
    }

    #[test]
    fn segments_cover_unusual_unicode_text_exactly_once() {
        let text = "🫁 Ünïcödé: right pleural effusion\u{200B}; no pneumothorax. e\u{0301}dema";
        let p = RulePipeline::embedded().predict("u", text).unwrap();
        let segs = segments(text, &p.entities);
        assert_eq!(joined(&segs), text);
        let highlighted: Vec<&str> = segs
            .iter()
            .filter_map(|s| match s {
                Segment::Entity { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(highlighted.contains(&"pleural effusion"), "{highlighted:?}");
        assert!(highlighted.contains(&"pneumothorax"), "{highlighted:?}");
    }

    #[test]
    fn overlapping_and_out_of_range_entities_are_skipped() {
        let p = RulePipeline::embedded()
            .predict("o", "Right pleural effusion.")
            .unwrap();
        let mut entities = p.entities.clone();
        let mut overlapping = entities[0].clone();
        overlapping.start += 1;
        entities.push(overlapping);
        let mut outside = entities[0].clone();
        outside.end = 10_000;
        entities.push(outside);
        let segs = segments("Right pleural effusion.", &entities);
        assert_eq!(joined(&segs), "Right pleural effusion.");
        let n = segs
            .iter()
            .filter(|s| matches!(s, Segment::Entity { .. }))
            .count();
        assert_eq!(n, p.entities.len());
    }

    #[test]
    fn qualifier_words_outside_entities_are_their_own_segments() {
        let text = "Small left pleural effusion.";
        let p = RulePipeline::embedded().predict("q", text).unwrap();
        let segs = segments(text, &p.entities);
        assert_eq!(joined(&segs), text);
        let cues: Vec<&str> = segs
            .iter()
            .filter_map(|s| match s {
                Segment::Modifier { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(cues, ["Small", "left"]);
    }
}
