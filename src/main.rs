//! `pagesync`: parse the command line, set up logging, run the chosen command.

use std::process::ExitCode;

use clap::Parser as _;
use pagesync::cli::{self, ApiKeyCommand, Cli, Command, OutboxCommand, WebhookCommand, exit};
use pagesync::config::{self, Sources};
use pagesync::control::{self, Request, Response};
use pagesync::startup::{Application, Offline, Tuning};
use pagesync::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { config: cli::flags::Flags::default() });
    // The bare `pagesync` takes the flags of `serve` itself (they conflict with a subcommand).
    let top = cli.config.into_values();
    match command {
        Command::Keygen { events_secret, json } => cli::keygen(events_secret, json),
        Command::Completions { shell } => cli::generate::completions(shell),
        Command::Man => cli::generate::man(),
        Command::RotateKey { new_key_file, config } => {
            cli::rotate_key(&Sources::gather(config.into_values()), &new_key_file)
        }
        Command::CheckConfig { json, config } => cli::check_config(&Sources::gather(config.into_values()), json),
        Command::Serve { config } => {
            let mut flags = top;
            flags.extend(config.into_values());
            serve(Sources::gather(flags))
        }
        Command::Sandbox { config } => pagesync::sandbox::main(&config.into_values(), stop_signal()),
        Command::Webhook { action: WebhookCommand::Send { page, field, value, url, json }, config } => {
            let sample =
                cli::WebhookSample { page: &page, field: &field, value: value.as_deref(), url: url.as_deref() };
            cli::webhook_send(&Sources::gather(config.into_values()), &sample, json)
        }
        Command::Pages { json, config } => operate(Sources::gather(config.into_values()), Request::Pages, json),
        Command::Status { json, config } => operate(Sources::gather(config.into_values()), Request::Status, json),
        Command::Resync { pages, all, json, config } => {
            if pages.is_empty() && !all {
                eprintln!("error: name Page ids, or pass --all");
                return exit::code(exit::USAGE);
            }
            operate(Sources::gather(config.into_values()), Request::Resync { pages, all }, json)
        }
        Command::ApiKey { action, config } => {
            let (request, json) = match action {
                ApiKeyCommand::Create { name, scope, json } => {
                    // Refuse a bad name or scope before looking for a daemon or a store.
                    if let Err(e) = pagesync_actors::api_keys::KeyName::parse(&name)
                        .map(drop)
                        .and_then(|()| pagesync_actors::api_keys::Scope::parse_list(&scope).map(drop))
                    {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                    (Request::ApiKeyCreate { name, scopes: scope }, json)
                }
                ApiKeyCommand::List { json } => (Request::ApiKeyList, json),
                ApiKeyCommand::Revoke { name, json } => (Request::ApiKeyRevoke { name }, json),
            };
            operate(Sources::gather(config.into_values()), request, json)
        }
        Command::Backup { path, json, config } => match std::path::absolute(&path) {
            Ok(path) => {
                let request = Request::Backup { path: path.display().to_string() };
                operate(Sources::gather(config.into_values()), request, json)
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                exit::code(exit::FAILURE)
            }
        },
        Command::Restore { path, json, config } => cli::restore(&Sources::gather(config.into_values()), &path, json),
        Command::Outbox { action: None, json, config } => {
            operate(Sources::gather(config.into_values()), Request::Outbox, json)
        }
        Command::Outbox { action: Some(OutboxCommand::Retry { ids, all_dead, json }), config, .. } => {
            if ids.is_empty() && !all_dead {
                eprintln!("error: name dead-lettered item ids, or pass --all-dead");
                return exit::code(exit::USAGE);
            }
            operate(Sources::gather(config.into_values()), Request::OutboxRetry { ids, all: all_dead }, json)
        }
    }
}

/// How long `status` waits for a daemon that accepted its connection.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `pages`, `resync`, `status`, `api-key` and `outbox`: ask the running daemon over its
/// control socket; without one, open the store and run the same request against actors
/// of our own.
fn operate(sources: Sources, request: Request, json: bool) -> ExitCode {
    let data_dir = sources.get("PAGESYNC_DATA_DIR").map(|(d, _)| std::path::PathBuf::from(d)).unwrap_or_default();
    let socket = control::socket_path(&data_dir);
    let runtime = actix_web::rt::System::new();
    let asked = if matches!(request, Request::Status) {
        // An operator's screen must not hang on a daemon that accepts but never answers.
        match runtime.block_on(async { tokio::time::timeout(STATUS_TIMEOUT, control::ask(&socket, &request)).await }) {
            Ok(asked) => asked,
            Err(_) => {
                eprintln!(
                    "error: a pagesync accepted on {} but did not answer within {} s",
                    socket.display(),
                    STATUS_TIMEOUT.as_secs()
                );
                return exit::code(exit::UNAVAILABLE);
            }
        }
    } else {
        runtime.block_on(control::ask(&socket, &request))
    };
    let response = match asked {
        Ok(response) => response,
        Err(_) => {
            // No daemon answers: do it ourselves, which needs the whole configuration.
            let settings = match config::load(&sources) {
                Ok(s) => s,
                Err(problems) => {
                    cli::report(&problems);
                    eprintln!(
                        "(no pagesync answers on {}: without one this command opens the store itself, which needs \
                         the daemon's configuration)",
                        socket.display()
                    );
                    return exit::code(exit::CONFIG);
                }
            };
            telemetry::init("warn", settings.log_format);
            let bind = settings.bind.to_string();
            if let Err(e) = pagesync::privilege::become_owner_of(&settings.data_dir) {
                eprintln!("error: {e}");
                return exit::code(exit::FAILURE);
            }
            match runtime.block_on(offline(settings, request)) {
                Ok(Response::Status { mut status }) => {
                    status.daemon = control::DaemonStatus { running: false, bind: Some(bind), listen: None, pid: None };
                    Response::Status { status }
                }
                Ok(response) => response,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return exit::code(exit::UNAVAILABLE);
                }
            }
        }
    };
    print_response(response, json)
}

/// The new key and its record, for `api-key create --json`.
#[derive(serde::Serialize)]
struct CreatedKey<'a> {
    key: &'a str,
    #[serde(flatten)]
    info: &'a pagesync_actors::api_keys::ApiKeyInfo,
}

/// `outbox retry --json`.
#[derive(serde::Serialize)]
struct Retried {
    moved: usize,
    named: usize,
}

fn print_response(response: Response, json: bool) -> ExitCode {
    match response {
        Response::Pages { pages } if json => return cli::print_json(&pages),
        Response::Pages { pages } => cli::print_pages(&pages),
        Response::Resync { pages } => {
            if json {
                let printed = cli::print_json(&pages);
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            } else {
                for row in &pages {
                    println!("{} {} ({})", row.id, if row.written { "refreshed" } else { "not refreshed" }, row.status);
                }
            }
            if pages.iter().any(|r| !r.written) {
                return exit::code(exit::FAILURE);
            }
        }
        Response::ApiKeyCreated { key, info } => {
            if json {
                let printed = cli::print_json(&CreatedKey { key: &key, info: &info });
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            } else {
                // The key alone on stdout, so that `KEY=$(pagesync api-key create ...)` works.
                println!("{key}");
            }
            eprintln!(
                "API key {} ({}) created with scopes {}. It is shown only this once: store it now.",
                info.name,
                info.id,
                cli::scope_list(&info.scopes)
            );
        }
        Response::ApiKeys { keys } if json => return cli::print_json(&keys),
        Response::ApiKeys { keys } => cli::print_api_keys(&keys),
        Response::ApiKeyRevoked { info } if json => return cli::print_json(&info),
        Response::ApiKeyRevoked { info } => println!("API key {} ({}) revoked", info.name, info.id),
        Response::Outbox { outbox } if json => return cli::print_json(&outbox),
        Response::Outbox { outbox } => cli::print_outbox(&outbox),
        Response::OutboxRetried { moved, named } => {
            if json {
                let printed = cli::print_json(&Retried { moved, named });
                if printed != ExitCode::SUCCESS {
                    return printed;
                }
            } else {
                println!("{moved} dead-lettered item(s) put back in line");
            }
            if moved < named {
                eprintln!("error: {} of the named ids are not dead-lettered (see pagesync outbox)", named - moved);
                return exit::code(exit::FAILURE);
            }
        }
        Response::Backup { summary, .. } if json => return cli::print_json(&summary),
        Response::Backup { path, summary } => println!(
            "backup written to {path}: {} trees, {} records, {} Page files, {} bytes",
            summary.trees, summary.records, summary.page_files, summary.bytes
        ),
        Response::Status { status } if json => return cli::print_json(&status),
        Response::Status { status } => cli::status::print(&status),
        Response::Error { message } => {
            eprintln!("error: {message}");
            return exit::code(exit::FAILURE);
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
            return exit::code(exit::CONFIG);
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
                return exit::code(exit::CONFIG);
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
