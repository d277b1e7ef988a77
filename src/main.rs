//! The `keygate` command: `serve`, `check-config`, `hash-token` (SPEC §1).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keygate::config::{self, Config, DEFAULT_CONFIG_PATH};
use keygate::key::Digest;

#[derive(Parser)]
#[command(version, about = "keygate: an API-key authentication gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate a config file; print every error with its YAML path; exit non-zero on any.
    CheckConfig(ConfigArg),
    /// Read an admin token on stdin and print its `sha256:<hex>` form for `admin.tokens`.
    HashToken,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Config file (default config/keygate.yaml).
    #[arg(long, env = "KEYGATE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(arg) => {
            let Some(config) = load(&arg.config) else {
                return ExitCode::from(2);
            };
            keygate::logging::init(&config.log);
            match keygate::startup::serve(config, &arg.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("keygate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig(arg) => match load(&arg.config) {
            Some(_) => {
                println!("{}: ok", arg.config.display());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Command::HashToken => hash_token(),
    }
}

/// Loads the config, printing every error to stderr.
fn load(path: &std::path::Path) -> Option<Config> {
    match config::load(path) {
        Ok(config) => Some(config),
        Err(errors) => {
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            for e in errors {
                eprintln!("  {e}");
            }
            None
        }
    }
}

fn hash_token() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("keygate hash-token: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let token = input.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&input);
    if token.is_empty() {
        eprintln!("keygate hash-token: give the token on stdin, e.g. `printf %s \"$TOKEN\" | keygate hash-token`");
        return ExitCode::FAILURE;
    }
    println!("sha256:{}", Digest::of(token.as_bytes()).to_hex());
    ExitCode::SUCCESS
}
