//! `pagesync`: parse the command line, set up logging, run the chosen command.

use std::process::ExitCode;

use clap::Parser as _;
use pagesync::cli::{self, ApiKeyCommand, Cli, Command, OutboxCommand, WebhookCommand};
use pagesync::config::{self, Sources};
use pagesync::control::{self, Request, Response};
use pagesync::startup::{Application, Offline, Tuning};
use pagesync::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen { events_secret } => cli::keygen(events_secret),
        Command::RotateKey { new_key_file } => cli::rotate_key(&Sources::gather(cli.config.0), &new_key_file),
        Command::CheckConfig => cli::check_config(&Sources::gather(cli.config.0)),
        Command::Serve => serve(Sources::gather(cli.config.0)),
        Command::Sandbox => pagesync::sandbox::main(&cli.config.0, stop_signal()),
        Command::Webhook(WebhookCommand::Send { page, field, value, url }) => {
            cli::webhook_send(&Sources::gather(cli.config.0), &page, &field, value.as_deref(), url.as_deref())
        }
        Command::Pages { json } => operate(Sources::gather(cli.config.0), Request::Pages, json),
        Command::Resync { pages, all } => {
            if pages.is_empty() && !all {
                eprintln!("error: name Page ids, or pass --all");
                return ExitCode::from(2);
            }
            operate(Sources::gather(cli.config.0), Request::Resync { pages, all }, false)
        }
        Command::ApiKey(command) => {
            let (request, json) = match command {
                ApiKeyCommand::Create { name, scope } => {
                    // Refuse a bad name or scope before looking for a daemon or a store.
                    if let Err(e) = pagesync_actors::api_keys::KeyName::parse(&name)
                        .map(drop)
                        .and_then(|()| pagesync_actors::api_keys::Scope::parse_list(&scope).map(drop))
                    {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                    (Request::ApiKeyCreate { name, scopes: scope }, false)
                }
                ApiKeyCommand::List { json } => (Request::ApiKeyList, json),
                ApiKeyCommand::Revoke { name } => (Request::ApiKeyRevoke { name }, false),
            };
            operate(Sources::gather(cli.config.0), request, json)
        }
        Command::Backup { path } => match std::path::absolute(&path) {
            Ok(path) => {
                operate(Sources::gather(cli.config.0), Request::Backup { path: path.display().to_string() }, false)
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        Command::Restore { path } => cli::restore(&Sources::gather(cli.config.0), &path),
        Command::Outbox { action: None, json } => operate(Sources::gather(cli.config.0), Request::Outbox, json),
        Command::Outbox { action: Some(OutboxCommand::Retry { ids, all_dead }), .. } => {
            if ids.is_empty() && !all_dead {
                eprintln!("error: name dead-lettered item ids, or pass --all-dead");
                return ExitCode::from(2);
            }
            operate(Sources::gather(cli.config.0), Request::OutboxRetry { ids, all: all_dead }, false)
        }
    }
}

/// `pages`, `resync`, `api-key` and `outbox`: ask the running daemon over its control socket; without one,
/// open the store and run the same request against actors of our own.
fn operate(sources: Sources, request: Request, json: bool) -> ExitCode {
    let data_dir = sources.get("PAGESYNC_DATA_DIR").map(|(d, _)| std::path::PathBuf::from(d)).unwrap_or_default();
    let socket = control::socket_path(&data_dir);
    let runtime = actix_web::rt::System::new();
    let asked = runtime.block_on(control::ask(&socket, &request));
    let response = match asked {
        Ok(response) => response,
        Err(_) => {
            // No daemon answers: do it ourselves, which needs the whole configuration.
            let settings = match config::load(&sources) {
                Ok(s) => s,
                Err(problems) => {
                    cli::report(&problems);
                    return ExitCode::FAILURE;
                }
            };
            telemetry::init("warn", settings.log_format);
            if let Err(e) = pagesync::privilege::become_owner_of(&settings.data_dir) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            match runtime.block_on(offline(settings, request)) {
                Ok(response) => response,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match response {
        Response::Pages { pages } if json => match serde_json::to_string_pretty(&pages) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        Response::Pages { pages } => cli::print_pages(&pages),
        Response::Resync { pages } => {
            for row in &pages {
                println!("{} {} ({})", row.id, if row.written { "refreshed" } else { "not refreshed" }, row.status);
            }
            if pages.iter().any(|r| !r.written) {
                return ExitCode::FAILURE;
            }
        }
        Response::ApiKeyCreated { key, info } => {
            // The key alone on stdout, so that `KEY=$(pagesync api-key create ...)` works.
            println!("{key}");
            eprintln!(
                "API key {} ({}) created with scopes {}. It is shown only this once: store it now.",
                info.name,
                info.id,
                cli::scope_list(&info.scopes)
            );
        }
        Response::ApiKeys { keys } if json => return cli::print_json(&keys),
        Response::ApiKeys { keys } => cli::print_api_keys(&keys),
        Response::ApiKeyRevoked { info } => println!("API key {} ({}) revoked", info.name, info.id),
        Response::Outbox { outbox } if json => return cli::print_json(&outbox),
        Response::Outbox { outbox } => cli::print_outbox(&outbox),
        Response::OutboxRetried { moved, named } => {
            println!("{moved} dead-lettered item(s) put back in line");
            if moved < named {
                eprintln!("error: {} of the named ids are not dead-lettered (see pagesync outbox)", named - moved);
                return ExitCode::FAILURE;
            }
        }
        Response::Backup { path, summary } => println!(
            "backup written to {path}: {} trees, {} records, {} Page files, {} bytes",
            summary.trees, summary.records, summary.page_files, summary.bytes
        ),
        Response::Error { message } => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn offline(settings: pagesync::config::Settings, request: Request) -> anyhow::Result<Response> {
    use anyhow::Context as _;
    let app = Offline::open(settings, Tuning::default()).with_context(
        || "the store is in use by a running pagesync that does not answer on its control socket, or cannot be opened",
    )?;
    let response = control::answer(app.actors(), request).await;
    app.close().await?;
    Ok(response)
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
            // A wrong key or a store from a newer pagesync is a deployment problem:
            // restarting cannot fix it.
            let wrong_key = e
                .downcast_ref::<pagesync_actors::KeyCheckError>()
                .is_some_and(|k| matches!(k, pagesync_actors::KeyCheckError::WrongKey { .. }));
            let newer_store = e
                .chain()
                .any(|cause| matches!(cause.downcast_ref(), Some(pagesync_actors::StoreError::NewerFormat { .. })));
            if wrong_key || newer_store {
                return ExitCode::from(cli::EXIT_CONFIG);
            }
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
