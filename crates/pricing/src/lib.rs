//! `pricing`: GPU cloud instance catalog and cost math: cost per 1M tokens, tokens per dollar, tokens per joule.
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]
