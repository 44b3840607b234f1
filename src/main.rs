//! The `mailgate` binary: parse the command line and hand over to `cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mailgate::cli::main().await
}
