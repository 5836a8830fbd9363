use clap::Parser;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = match dbflow::cli::Cli::try_parse_from(&args) {
        Ok(cli) => dbflow::run(cli),
        Err(err) => dbflow::usage(err, &args),
    };
    std::process::exit(code);
}
