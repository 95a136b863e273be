//! Integration tests: one binary (one link step), one module per area.

mod batch;
mod catalogue;
mod doctor;
mod faults;
mod flow;
mod fuzz;
mod lab;
mod lab_release;
mod plan_cases;
mod release;
mod secrets;
mod ssh;
mod support;
