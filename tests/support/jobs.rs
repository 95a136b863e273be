//! Jobs for the orchestration tests and the benchmarks (they include this file with `#[path]`).

#![allow(dead_code)]

use provision::batch::{Job, Targets};
use provision::labfile::Entry;

/// One job per entry on the node `targets` opened for it, without a root password or files
/// (entries whose profiles need neither).
pub fn plain_jobs<'a>(targets: &Targets, entries: &[&'a Entry]) -> Vec<Job<'a>> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| Job {
            entry: e,
            target: targets.of[i],
            password: None,
            files: Vec::new(),
        })
        .collect()
}
