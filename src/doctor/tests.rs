//! The doctor's unit tests.

use super::*;

#[test]
fn id_ranges_cover_across_lines() {
    assert!(covers(&[(100_000, 65_536)], 100_000, 65_536));
    assert!(covers(
        &[(100_000, 30_000), (130_000, 40_000)],
        100_000,
        65_536
    ));
    assert!(!covers(
        &[(100_000, 30_000), (130_001, 40_000)],
        100_000,
        65_536
    ));
    assert!(!covers(&[(165_536, 65_536)], 100_000, 65_536));
    assert!(covers(&[(0, 1_000_000)], 100_000, 65_536));
}

#[test]
fn kernel_releases_parse() {
    assert_eq!(kernel_version("6.8.12-4-pve"), Some((6, 8)));
    assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
    assert_eq!(kernel_version("weird"), None);
}

#[test]
fn key_budget_rule() {
    assert_eq!(keys_needed(0), (200, 20_000));
    assert_eq!(keys_needed(4), (400, 40_000));
}
