//! docs tests.
