//! psyrun: psychophysics on deep neural networks from a small declarative language.
//!
//! The pipeline is a chain of stages, one module each:
//! [`source`] → [`syntax`] (pest, shape only) → [`plan`] (all meaning, every error in one pass)
//! → [`trials`] and [`stimuli`] (what the network sees) → the interpreter (libtorch, in the
//! `psyrun-torch` crate, with [`staircase`] and [`progress`]) → [`report`].
//! Nothing in this library prints and nothing here links libtorch; the `psyrun-cli` crate
//! renders diagnostics and output.
#![warn(missing_docs, unreachable_pub)]
// `Diag` is the error type of every stage: a few hundred bytes, returned on cold paths only.
#![allow(clippy::result_large_err)]

pub mod checkpoint;
pub mod diag;
pub mod exit;
pub mod hub;
pub mod models;
pub mod observer;
pub mod plan;
pub mod progress;
pub mod psychometric;
pub mod report;
pub mod source;
pub mod staircase;
pub mod stimuli;
pub mod syntax;
pub mod tasks;
pub mod trials;
