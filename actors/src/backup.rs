//! Backups of a data dir: every tree of the store and every Page file, in one file,
//! and the way back (docs/operations.md, "Backup and restore").
//!
//! A backup taken while the daemon runs is consistent: it is read while the store's
//! writer is held between two group commits ([`Store::pause_writer`]) and, when the
//! daemon takes it, on the thread every actor but the outbox runs on, so no actor
//! changes anything meanwhile. The outbox (on its own thread) may finish a send during
//! the backup; restored, that item is sent again, which the receiver's deduplication
//! by `X-Pagesync-Delivery` / `webhook-id` absorbs.
//!
//! The file: `PSBACKUP`, the backup format (u32) and the store format (u32), then
//! entries — `1` a tree (name), `2` a record of the last tree (key, value), `3` a Page
//! file (path below `facebook/`, contents) — then `0` and the SHA-256 of every byte
//! before it. Numbers are big-endian; every byte string is a u32 length and the bytes.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::{FORMAT_VERSION, Store, StoreConfig, StoreError};

const MAGIC: &[u8; 8] = b"PSBACKUP";
const BACKUP_FORMAT: u32 = 1;
const END: u8 = 0;
const TREE: u8 = 1;
const RECORD: u8 = 2;
const FILE: u8 = 3;
/// The Page file every Page folder holds.
const PAGE_FILE: &str = "page_data.json";
/// No byte string in a backup is longer (a Page file or a record is far smaller); a
/// longer length is damage, not something to allocate.
const MAX_LEN: u32 = 64 * 1024 * 1024;

/// What went wrong with a backup or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; a backup never overwrites a file")]
    Exists { path: PathBuf },
    #[error("{path} is not a pagesync backup, or it is damaged: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "{path} holds a store of format {found}, newer than this pagesync reads (up to {supported}); restore \
         it with the pagesync that made it"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("{path} is not empty; restore into a data dir without a store and without Page files")]
    NotEmpty { path: PathBuf },
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub trees: u64,
    pub records: u64,
    pub page_files: u64,
    pub bytes: u64,
}

/// Writes a backup of `store` and the Page files in `pages_dir` to `dest`, a new file
/// (mode 0600: it holds sealed tokens and sessions). The file appears complete or not
/// at all: it is written beside `dest` and renamed at the end. Blocking.
pub fn write_backup(store: &Store, pages_dir: &Path, dest: &Path) -> Result<BackupSummary, BackupError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if dest.exists() {
        return Err(BackupError::Exists { path: dest.to_owned() });
    }
    let partial = with_suffix(dest, ".partial");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(io(&partial))?;
    let mut out = Hashing::new(BufWriter::new(file));
    let written = (|| {
        let _held = store.pause_writer()?;
        out.put(MAGIC).map_err(io(&partial))?;
        out.put(&BACKUP_FORMAT.to_be_bytes()).map_err(io(&partial))?;
        out.put(&FORMAT_VERSION.to_be_bytes()).map_err(io(&partial))?;
        let mut summary = BackupSummary::default();
        for name in store.db().tree_names() {
            let tree = store.db().open_tree(&name).map_err(StoreError::from)?;
            out.entry(TREE, &[&name]).map_err(io(&partial))?;
            summary.trees += 1;
            for item in tree.iter() {
                let (key, value) = item.map_err(StoreError::from)?;
                out.entry(RECORD, &[&key, &value]).map_err(io(&partial))?;
                summary.records += 1;
            }
        }
        for (relative, contents) in page_files(pages_dir)? {
            out.entry(FILE, &[relative.as_bytes(), &contents]).map_err(io(&partial))?;
            summary.page_files += 1;
        }
        out.put(&[END]).map_err(io(&partial))?;
        let digest = out.hasher.clone().finalize();
        out.put(&digest).map_err(io(&partial))?;
        summary.bytes = out.written;
        let file = out.inner.into_inner().map_err(|e| io(&partial)(e.into_error()))?;
        file.sync_all().map_err(io(&partial))?;
        Ok(summary)
    })();
    match written {
        Ok(summary) => {
            std::fs::rename(&partial, dest).map_err(io(dest))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Restores the backup `src` into `data_dir`, which must hold no store (`db/`) and no
/// Page files yet. The store is built beside its final place and renamed once the
/// whole file has checked out, so a damaged backup leaves the data dir as it was. A
/// store of an older format is migrated when the daemon next opens it. Blocking.
pub fn restore_backup(src: &Path, data_dir: &Path) -> Result<BackupSummary, BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let (db_dir, pages_dir) = (data_dir.join("db"), data_dir.join("facebook"));
    for dir in [&db_dir, &pages_dir] {
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(dir)(e)),
        };
        if !empty {
            return Err(BackupError::NotEmpty { path: dir.clone() });
        }
    }
    let (db_new, pages_new) = (data_dir.join("db.restoring"), data_dir.join("facebook.restoring"));
    for dir in [&db_new, &pages_new] {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
            _ => {}
        }
    }
    let result = import(src, &db_new, &pages_new);
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&db_new);
            let _ = std::fs::remove_dir_all(&pages_new);
            return Err(e);
        }
    };
    // Both or neither: an empty placeholder folder goes first; a failed second rename
    // puts the first back.
    for dir in [&db_dir, &pages_dir] {
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(io(dir))?;
        }
    }
    std::fs::rename(&pages_new, &pages_dir).map_err(io(&pages_dir))?;
    if let Err(e) = std::fs::rename(&db_new, &db_dir) {
        let _ = std::fs::rename(&pages_dir, &pages_new);
        return Err(io(&db_dir)(e));
    }
    Ok(summary)
}

fn import(src: &Path, db_dir: &Path, pages_dir: &Path) -> Result<BackupSummary, BackupError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let invalid = |detail: &str| BackupError::Invalid { path: src.to_owned(), detail: detail.to_owned() };
    let file = std::fs::File::open(src).map_err(|source| BackupError::Io { path: src.to_owned(), source })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut input = Reading { inner: BufReader::new(file), hasher: Sha256::new(), src };
    if input.take::<8>()? != *MAGIC {
        return Err(invalid("it does not start with PSBACKUP"));
    }
    if u32::from_be_bytes(input.take()?) != BACKUP_FORMAT {
        return Err(invalid("its backup format is not 1"));
    }
    let found = u32::from_be_bytes(input.take()?);
    if found > FORMAT_VERSION {
        return Err(BackupError::NewerFormat { path: src.to_owned(), found, supported: FORMAT_VERSION });
    }
    let store = Store::open(&StoreConfig::new(db_dir))?;
    let mut summary = BackupSummary { bytes, ..BackupSummary::default() };
    let mut tree = None;
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(0o750);
    // The Page folder exists even when the backup holds no Page file.
    dirs.create(pages_dir).map_err(|source| BackupError::Io { path: pages_dir.to_owned(), source })?;
    loop {
        match input.take::<1>()?[0] {
            END => break,
            TREE => {
                let name = input.bytes()?;
                tree = Some(store.db().open_tree(name).map_err(StoreError::from)?);
                summary.trees += 1;
            }
            RECORD => {
                let (key, value) = (input.bytes()?, input.bytes()?);
                let tree = tree.as_ref().ok_or_else(|| invalid("a record comes before any tree"))?;
                tree.insert(key, value).map_err(StoreError::from)?;
                summary.records += 1;
            }
            FILE => {
                let (name, contents) = (input.bytes()?, input.bytes()?);
                let name = String::from_utf8(name).map_err(|_| invalid("a Page file name is not UTF-8"))?;
                let page = page_of(&name).ok_or_else(|| invalid("a file is not <page id>/page_data.json"))?;
                let folder = pages_dir.join(page);
                dirs.create(&folder).map_err(|source| BackupError::Io { path: folder.clone(), source })?;
                let path = folder.join(PAGE_FILE);
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o640)
                    .open(&path)
                    .map_err(|source| BackupError::Io { path: path.clone(), source })?;
                out.write_all(&contents).map_err(|source| BackupError::Io { path: path.clone(), source })?;
                summary.page_files += 1;
            }
            _ => return Err(invalid("an entry of an unknown kind")),
        }
    }
    let expected = input.hasher.clone().finalize();
    let stored = input.take::<32>()?;
    if stored[..] != expected[..] {
        return Err(invalid("its checksum does not match its contents"));
    }
    let mut rest = [0u8; 1];
    if input.inner.read(&mut rest).map_err(|source| BackupError::Io { path: src.to_owned(), source })? != 0 {
        return Err(invalid("bytes follow its checksum"));
    }
    store.close()?;
    Ok(summary)
}

/// The Page id of a backup's file name, when it is exactly `<digits>/page_data.json`.
fn page_of(name: &str) -> Option<&str> {
    let (page, file) = name.split_once('/')?;
    (file == PAGE_FILE && !page.is_empty() && page.len() <= 32 && page.bytes().all(|b| b.is_ascii_digit()))
        .then_some(page)
}

/// Every `<page>/page_data.json` below `pages_dir`, sorted; other files are not ours.
fn page_files(pages_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let io = |path: &Path, source| BackupError::Io { path: path.to_owned(), source };
    let entries = match std::fs::read_dir(pages_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(pages_dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(pages_dir, e))?;
        let Some(name) = entry.file_name().to_str().map(|n| format!("{n}/{PAGE_FILE}")) else { continue };
        if page_of(&name).is_none() {
            continue;
        }
        let path = entry.path().join(PAGE_FILE);
        match std::fs::read(&path) {
            Ok(contents) => files.push((name, contents)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
    }
    files.sort();
    Ok(files)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, hasher: Sha256::new(), written: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    fn entry(&mut self, kind: u8, fields: &[&[u8]]) -> std::io::Result<()> {
        self.put(&[kind])?;
        for field in fields {
            let len = u32::try_from(field.len())
                .ok()
                .filter(|n| *n <= MAX_LEN)
                .ok_or_else(|| std::io::Error::other("a record is longer than a backup holds"))?;
            self.put(&len.to_be_bytes())?;
            self.put(field)?;
        }
        Ok(())
    }
}

/// A reader that hashes what it reads, with the backup's error for a short file.
struct Reading<'a, R> {
    inner: R,
    hasher: Sha256,
    src: &'a Path,
}

impl<R: Read> Reading<'_, R> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BackupError> {
        let len = u32::from_be_bytes(self.take()?);
        if len > MAX_LEN {
            return Err(BackupError::Invalid { path: self.src.to_owned(), detail: "a length is out of range".into() });
        }
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                BackupError::Invalid { path: self.src.to_owned(), detail: "it ends too early".into() }
            }
            _ => BackupError::Io { path: self.src.to_owned(), source: e },
        })?;
        self.hasher.update(&*buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
