//! Writes diag's shell completions and man pages from its clap definition into the directory
//! given as the first argument. `cargo xtask dist` runs it; the binary itself does not carry
//! the generators.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: dist_assets OUT_DIR"),
    );
    let completions = out.join("completions");
    let man = out.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    let mut cmd = diag::cli::Cli::command();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "diag", &completions)?;
    }
    // A fresh definition: completion generation built `cmd`, adding `help` pages to it.
    clap_mangen::generate_to(diag::cli::Cli::command(), &man)?;
    Ok(())
}
