//! `pagesync`: parse the command line, set up logging, run the chosen command.

use std::process::ExitCode;

use clap::Parser as _;
use pagesync::cli::{self, Cli, Command};
use pagesync::config::{self, Sources};
use pagesync::startup::{Application, Tuning};
use pagesync::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen => cli::keygen(),
        Command::CheckConfig => cli::check_config(&Sources::gather(cli.config.0)),
        Command::Serve => serve(Sources::gather(cli.config.0)),
    }
}

fn serve(sources: Sources) -> ExitCode {
    let settings = match config::load(&sources) {
        Ok(settings) => settings,
        Err(problems) => {
            cli::report(&problems);
            return ExitCode::from(cli::EXIT_CONFIG);
        }
    };
    telemetry::init(&settings.log, settings.log_format);
    let result = actix_web::rt::System::new().block_on(async move {
        let tuning = Tuning {
            notifier: pagesync::systemd::Notifier::from_env().map(std::sync::Arc::new),
            watchdog: pagesync::systemd::watchdog_from_env(),
            ..Tuning::default()
        };
        let app = Application::build(settings, tuning)?;
        app.run_until_stopped(stop_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "pagesync failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT; both mean a graceful stop.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stop requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "stop requested"),
    }
}
