//! Integration tests: one binary (one link step), one module per area.

mod batch;
mod catalogue;
mod doctor;
mod faults;
mod flow;
mod fuzz;
mod images;
mod inventory;
mod known_issues;
mod lab;
mod lab_cluster;
mod lab_images;
mod lab_mounts;
mod lab_release;
mod mounts;
mod plan_cases;
mod release;
mod robustness;
mod schema;
mod scripts;
mod secrets;
mod ssh;
mod structure;
mod support;
mod view;
