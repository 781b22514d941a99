//! psyrun: psychophysics on deep neural networks from a small declarative language.
//!
//! The pipeline is a chain of stages, one module each:
//! [`source`] → [`syntax`] (pest, shape only) → [`plan`] (all meaning, every error in one pass)
//! → [`trials`] and [`stimuli`] (what the network sees) → run (libtorch, in the
//! `psyrun-torch` binary, with [`staircase`] and [`progress`]) → [`report`].
//! Nothing in this library prints; the CLI in [`cli`] renders diagnostics and output.
#![warn(missing_docs, unreachable_pub)]
// `Diag` is the error type of every stage: a few hundred bytes, returned on cold paths only.
#![allow(clippy::result_large_err)]

pub mod checkpoint;
pub mod cli;
pub mod diag;
pub mod hub;
pub mod models;
pub mod plan;
pub mod progress;
pub mod report;
pub mod source;
pub mod staircase;
pub mod stimuli;
pub mod syntax;
pub mod trials;
