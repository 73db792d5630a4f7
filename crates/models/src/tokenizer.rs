//! BERT WordPiece tokenization of pre-split words, from a checkpoint's
//! `tokenizer.json` or, when it ships only `vocab.txt` (Bio_ClinicalBERT),
//! from the vocabulary with BERT's standard normalizer and pre-tokenizer.

use std::ops::Range;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot build the tokenizer: {0}")]
    Build(String),
    #[error("the vocabulary has no {0} token")]
    MissingSpecial(&'static str),
    #[error("cannot tokenize: {0}")]
    Encode(String),
}

pub struct BertTokenizer {
    inner: Tokenizer,
    pub cls: u32,
    pub sep: u32,
    pub pad: u32,
}

/// Sub-word ids of a word sequence and, for each, the word it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct WordPieces {
    pub ids: Vec<u32>,
    pub word_of: Vec<usize>,
}

impl BertTokenizer {
    pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let mut inner =
            Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Build(e.to_string()))?;
        // all-MiniLM's file pads and truncates to 128; windows are ours to make.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        Self::with_specials(inner)
    }

    pub fn from_vocab(vocab_txt: &str, lowercase: bool) -> Result<Self, TokenizerError> {
        let vocab = WordPiece::read_bytes(vocab_txt.as_bytes())
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(
                true,
                true,
                Some(lowercase),
                lowercase,
            )))
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        Self::with_specials(inner)
    }

    fn with_specials(inner: Tokenizer) -> Result<Self, TokenizerError> {
        let id = |t: &'static str| {
            inner
                .token_to_id(t)
                .ok_or(TokenizerError::MissingSpecial(t))
        };
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            inner,
        })
    }

    /// Word pieces without special tokens. A word that yields no piece (for
    /// example a lone control character) gets `[UNK]` so that every word keeps
    /// a token to carry its label.
    pub fn encode_words(&self, words: &[&str]) -> Result<WordPieces, TokenizerError> {
        let encoding = self
            .inner
            .encode(words, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut out = WordPieces {
            ids: Vec::with_capacity(encoding.len()),
            word_of: Vec::with_capacity(encoding.len()),
        };
        let mut next_word = 0;
        for (&id, word) in encoding.get_ids().iter().zip(encoding.get_word_ids()) {
            let Some(word) = word.map(|w| w as usize) else {
                continue;
            };
            while next_word < word {
                self.push_unknown(&mut out, next_word);
                next_word += 1;
            }
            out.ids.push(id);
            out.word_of.push(word);
            next_word = word + 1;
        }
        while next_word < words.len() {
            self.push_unknown(&mut out, next_word);
            next_word += 1;
        }
        Ok(out)
    }

    fn push_unknown(&self, out: &mut WordPieces, word: usize) {
        let unk = self.inner.token_to_id("[UNK]").unwrap_or(self.pad);
        out.ids.push(unk);
        out.word_of.push(word);
    }
}

/// Overlapping windows of at most `max_len` pieces, each starting `stride`
/// after the previous one, covering `0..n`. With `stride < max_len` every
/// piece away from the ends is seen with context on both sides.
pub fn windows(n: usize, max_len: usize, stride: usize) -> Vec<Range<usize>> {
    assert!(max_len > 0 && stride > 0 && stride <= max_len);
    let mut out = Vec::new();
    if n <= max_len {
        out.push(0..n);
        return out;
    }
    let mut start = 0;
    loop {
        let end = (start + max_len).min(n);
        out.push(start..end);
        if end == n {
            return out;
        }
        start += stride;
    }
}

/// The context a token at `position` of an encoded window of `len` tokens
/// has on its poorer side, counting itself. Where overlapping windows hold
/// the same word, its prediction is read from the window where this is
/// largest (the first such window on a tie).
pub fn context_margin(position: usize, len: usize) -> usize {
    position.min(len - 1 - position) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_margin_is_smallest_at_the_window_ends() {
        // [CLS] a b c [SEP]: the middle piece has the most context.
        assert_eq!(
            (0..5).map(|t| context_margin(t, 5)).collect::<Vec<_>>(),
            [1, 2, 3, 2, 1]
        );
    }

    fn tiny_vocab() -> String {
        [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "pleural", "effusion", "eff", "##usion", "no", ".",
        ]
        .join("\n")
    }

    #[test]
    fn vocab_txt_gives_a_working_wordpiece_tokenizer_with_word_alignment() {
        let t = BertTokenizer::from_vocab(&tiny_vocab(), true).unwrap();
        assert_eq!((t.pad, t.cls, t.sep), (0, 2, 3));
        let pieces = t
            .encode_words(&["No", "pleural", "Effusion", "xyz", "."])
            .unwrap();
        assert_eq!(pieces.ids, vec![8, 4, 5, 1, 9]);
        assert_eq!(pieces.word_of, vec![0, 1, 2, 3, 4]);
        let split = t.encode_words(&["effusion"]).unwrap();
        assert_eq!(split.ids, vec![5]);
    }

    #[test]
    fn windows_overlap_and_cover_everything() {
        let whole = windows(5, 8, 4);
        assert_eq!((whole.len(), whole[0].clone()), (1, 0..5));
        let w = windows(20, 8, 6);
        assert_eq!(w.first().unwrap().start, 0);
        assert_eq!(w.last().unwrap().end, 20);
        for pair in w.windows(2) {
            assert!(pair[1].start < pair[0].end, "{pair:?} overlap");
        }
    }
}
