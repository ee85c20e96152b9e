//! The commands that work on a stopped store: `rotate-key` and `restore`.

use std::process::ExitCode;

use pagesync_actors::EncryptionKey;

use super::{exit, print_json, report};
use crate::config::{self, Sources};

/// `pagesync rotate-key --new-key-file PATH`: with no daemon on the store, re-seals
/// every token under the new key (see docs/operations.md, "Rotate the encryption key").
pub fn rotate_key(sources: &Sources, new_key_file: &std::path::Path) -> ExitCode {
    let settings = match config::load(sources) {
        Ok(s) => s,
        Err(problems) => {
            report(&problems);
            return exit::code(exit::CONFIG);
        }
    };
    let new_key = match std::fs::read_to_string(new_key_file) {
        Ok(text) => match EncryptionKey::from_base64(&text) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("error: --new-key-file {}: {e}", new_key_file.display());
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("error: --new-key-file {}: cannot be read: {e}", new_key_file.display());
            return ExitCode::FAILURE;
        }
    };
    if new_key.to_base64() == settings.encryption_key.to_base64() {
        eprintln!("error: the new key is the key in use; generate one with `pagesync keygen`");
        return ExitCode::FAILURE;
    }
    let db = settings.data_dir.join("db");
    let store = match pagesync_actors::Store::open(&pagesync_actors::StoreConfig::new(&db)) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}\n(stop pagesync before rotating the key)");
            return exit::code(exit::UNAVAILABLE);
        }
    };
    let old = pagesync_actors::Sealer::new(&settings.encryption_key);
    let new = pagesync_actors::Sealer::new(&new_key);
    let result = pagesync_actors::reseal_all(&store, &old, &new);
    let closed = store.close();
    match (result, closed) {
        (Ok(count), Ok(())) => {
            println!(
                "re-sealed {count} token record(s) under the new key. Install the new key where pagesync \
                 reads it (PAGESYNC_ENCRYPTION_KEY, PAGESYNC_ENCRYPTION_KEY_FILE or the systemd credential), \
                 then start pagesync; keep the old key until you have checked it."
            );
            ExitCode::SUCCESS
        }
        (Err(e @ pagesync_actors::messages::VaultError::Seal(_)), _) => {
            eprintln!("error: nothing was changed: {e} (is the configured key the one the store was sealed with?)");
            ExitCode::FAILURE
        }
        (Err(e), _) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        (Ok(_), Err(e)) => {
            eprintln!("error: the records were re-sealed but the store did not close cleanly: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pagesync restore PATH [--json]`: into the data dir, which needs no other setting;
/// refused while a daemon answers on the data dir's socket. As root, done as the data
/// dir's owner.
pub fn restore(sources: &Sources, path: &std::path::Path, json: bool) -> ExitCode {
    let data_dir = sources.get("PAGESYNC_DATA_DIR").map(|(d, _)| std::path::PathBuf::from(d)).unwrap_or_default();
    let socket = crate::control::socket_path(&data_dir);
    // Something listening on the socket is a daemon (a stale socket file refuses the
    // connection); asking it anything would cost it a request over every Page.
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        eprintln!("error: a pagesync is running on {}; stop it before restoring", data_dir.display());
        return exit::code(exit::FAILURE);
    }
    if let Err(e) = crate::privilege::become_owner_of(&data_dir) {
        eprintln!("error: {e}");
        return exit::code(exit::FAILURE);
    }
    match pagesync_actors::backup::restore_backup(path, &data_dir) {
        Ok(summary) if json => print_json(&summary),
        Ok(summary) => {
            println!(
                "restored {} into {}: {} trees, {} records, {} Page files",
                path.display(),
                data_dir.display(),
                summary.trees,
                summary.records,
                summary.page_files
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::code(exit::FAILURE)
        }
    }
}
