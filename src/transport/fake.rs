//! Fake node: being written.
