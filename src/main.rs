use clap::Parser;

fn main() {
    let args = seisfuse::cli::Cli::parse();
    if let Err(e) = seisfuse::cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
