//! provision: parse args -> init logging -> run -> exit code. Nothing else.

use clap::Parser;
use provision::cli::{Cli, Command};
use provision::{commands, error, progress};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;

fn main() -> ExitCode {
    provision::guard_stdio();
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let res = match &cli.command {
        None => commands::single::run(&cli.single, &cli.global),
        Some(Command::Profiles { action }) => commands::profiles::run(action, &cli.global),
        Some(other) => commands::dispatch(other, &cli.global),
    };
    // The exit status says the outcome whatever became of stdout and stderr: 0 done, 1 failed,
    // 2 bad input (nothing changed), 130 interrupted.
    let code = match res {
        Ok(code) => code,
        Err(e) => {
            provision::errln!("error: {e:#}");
            if error::is_input_error(&e) { 2 } else { 1 }
        }
    };
    ExitCode::from(if provision::interrupted() { 130 } else { code })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Log lines carry text from nodes and containers: every field is escaped where it is
    // formatted (the message too), and colour is used only on a terminal that takes it.
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let v = format!("{value:?}");
        let v = error::escape_unsafe(&v);
        if field.name() == "message" {
            write!(w, "{v}")
        } else {
            write!(w, "{}={v}", error::escape_unsafe(field.name()))
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(provision::text::colour(true))
        .fmt_fields(fields)
        .with_writer(|| progress::LogWriter)
        .init();
}
