use clap::Parser;
use diag::cli::{self, Cli, Command, UsageError};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cli::run::run(a),
        Command::Catalog(a) => cli::catalog::catalog(a),
        Command::Sandbox(a) => cli::sandbox::sandbox(a),
        Command::Analyze(a) => cli::analyze::analyze(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // diag's own failures: one clear line, exit 2.
            let line = match e.downcast_ref::<UsageError>() {
                Some(u) => u.to_string(),
                None => format!("{e:#}"),
            };
            eprintln!("diag: error: {}", line.replace('\n', " "));
            std::process::exit(2);
        }
    }
}
