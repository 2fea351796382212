//! CLIP's byte-level BPE tokenizer (`CLIPTokenizer` / `CLIPTokenizerFast`), run by the
//! `tokenizers` crate on the folder's `tokenizer.json`, with the call transformers makes:
//! `tokenizer(text, truncation=True, max_length=77)`.
//!
//! The file carries the whole pipeline (NFC, whitespace runs to one space, lowercase; CLIP's
//! split regex and the byte-level alphabet; BPE with `</w>` word ends; `<|startoftext|>` …
//! `<|endoftext|>` around each text), so nothing CLIP-specific is coded here but the
//! truncation: the two special tokens count against the context, so a long text keeps its
//! first `context − 2` tokens and still ends with `<|endoftext|>`.

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{ClipError, Result};

/// A `tokenizer.json` with CLIP's truncation.
#[derive(Clone)]
pub struct ClipTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    context_length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("path", &self.path)
            .field("context_length", &self.context_length)
            .finish()
    }
}

impl ClipTokenizer {
    /// Reads `tokenizer.json` (the file, or the folder holding it); sequences are cut to
    /// `context_length` tokens (the text config's `max_position_embeddings`, 77 for CLIP).
    pub fn from_file(path: impl AsRef<Path>, context_length: usize) -> Result<Self> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path = path.join("tokenizer.json");
        }
        let err = |reason: String| ClipError::Tokenizer {
            path: path.clone(),
            reason,
        };
        if !path.is_file() {
            return Err(err("no such file".into()));
        }
        if context_length < 2 {
            return Err(err(format!(
                "a context of {context_length} tokens has no room for the start and end tokens"
            )));
        }
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| err(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: context_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| err(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Self {
            tokenizer,
            path,
            context_length,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The most tokens a sequence has, start and end included.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The id of a token of the vocabulary (`"<|endoftext|>"` …).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Token ids of `text`: `<|startoftext|>`, at most `context − 2` text tokens,
    /// `<|endoftext|>`; unpadded.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ClipError::Tokenizer {
                path: self.path.clone(),
                reason: format!("cannot encode {text:?}: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// [`encode`](Self::encode) for each text.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.encode(t.as_ref())).collect()
    }
}
