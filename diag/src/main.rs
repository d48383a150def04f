use clap::Parser;
use diag::cli::{self, Cli, Command, UsageError};

/// diag's own failures: one clear line on stderr, exit status 2.
fn fail(line: &str) -> ! {
    eprintln!("diag: error: {}", line.replace('\n', " "));
    std::process::exit(2);
}

/// clap's message on one line: what is wrong, which arguments, and its tips; not the usage
/// block that follows.
fn one_line(clap_text: &str) -> String {
    let parts: Vec<&str> = clap_text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let text = parts.join(" ");
    let text = text.trim_start_matches("error: ");
    if text.is_empty() {
        "bad arguments".into()
    } else {
        text.replace(" tip: ", "; tip: ")
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => fail(&format!("{} (see diag --help)", one_line(&e.to_string()))),
    };
    let result = match cli.command {
        Command::Run(a) => cli::run::run(a),
        Command::Attach(a) => cli::attach::attach(a),
        Command::Catalog(a) => cli::catalog::catalog(a),
        Command::Policy(c) => cli::policy::policy(c),
        Command::Sandbox(a) => cli::sandbox::sandbox(a),
        Command::Doctor(a) => cli::doctor::doctor(a),
        Command::Analyze(a) => cli::analyze::analyze(a),
        Command::Completions(a) => cli::manual::completions(a),
        Command::Man(a) => cli::manual::man(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(u) => fail(&u.to_string()),
            None => fail(&format!("{e:#}")),
        },
    }
}
