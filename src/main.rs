use clap::Parser;

fn main() {
    let cli = dbflow::cli::Cli::parse();
    std::process::exit(dbflow::run(cli));
}
