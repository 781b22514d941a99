//! Models.
pub mod catalog;
