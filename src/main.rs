use clap::Parser;
use seisfuse::cli::output::{install_broken_pipe_hook, is_broken_pipe};
use std::io::Write;

fn main() {
    // A print to a closed pipe deep in a library ends the program quietly, as Unix tools do.
    install_broken_pipe_hook();
    let args = seisfuse::cli::Cli::parse();
    if let Err(e) = seisfuse::cli::run(args) {
        // `seisfuse … | head -1`: the reader has what it wanted.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: {e:#}");
        std::process::exit(1);
    }
}
