use clap::Parser;
use diag::cli::{self, Cli, Command, UsageError};

/// diag's own failures: one clear line on stderr, exit status 2.
fn fail(line: &str) -> ! {
    eprintln!("diag: error: {}", line.replace('\n', " "));
    std::process::exit(2);
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            fail(&format!("{first} (see diag --help)"));
        }
    };
    let result = match cli.command {
        Command::Run(a) => cli::run::run(a),
        Command::Attach(a) => cli::attach::attach(a),
        Command::Catalog(a) => cli::catalog::catalog(a),
        Command::Policy(c) => cli::policy::policy(c),
        Command::Sandbox(a) => cli::sandbox::sandbox(a),
        Command::Doctor(a) => cli::doctor::doctor(a),
        Command::Analyze(a) => cli::analyze::analyze(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(u) => fail(&u.to_string()),
            None => fail(&format!("{e:#}")),
        },
    }
}
