//! Source files.
