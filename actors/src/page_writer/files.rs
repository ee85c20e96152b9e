//! The page writer's file I/O: `facebook/<id>/page_data.json` written atomically with
//! the modes the bot's group needs, read back, given an ETag, and removed. Everything
//! here blocks: callers run it on the blocking pool, never on an actor's thread.

use std::io::Write as _;
use std::path::Path;

use crate::graph::PageData;
use crate::ids::PageId;

/// Mode of `facebook/<id>/` folders: the daemon writes, its group (the bot) reads.
pub const PAGE_DIR_MODE: u32 = 0o750;
/// Mode of `page_data.json`.
pub const PAGE_FILE_MODE: u32 = 0o640;

/// Writes `<pages_dir>/<page>/page_data.json` atomically: a temporary file in the same
/// folder, fsync, rename over the old file, fsync the folder (and, for a new folder, its
/// parent, so the folder itself survives a power loss). A reader sees the old file or
/// the new one, never a torn one. Folders are 0750 and files 0640, set explicitly so
/// the daemon's umask cannot hide them from the bot's group. Any `access_token` key is
/// dropped first, so a misconfigured field list cannot put a token on disk. When the
/// file already holds exactly these bytes nothing is written and `false` is returned.
/// `generation` names the temporary file (see [`remove_leftovers`]).
pub fn write_page_file(
    pages_dir: &Path,
    page: &PageId,
    mut data: PageData,
    generation: u64,
) -> std::io::Result<(bool, String)> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    data.remove("access_token");
    let dir = pages_dir.join(page.as_str());
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(PAGE_DIR_MODE))?;
            std::fs::File::open(pages_dir)?.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut body = serde_json::to_vec_pretty(&data).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let etag = etag_of(&body);
    if std::fs::read(dir.join("page_data.json")).is_ok_and(|current| current == body) {
        return Ok((false, etag));
    }
    let tmp = dir.join(format!("{TMP_PREFIX}{generation:016x}.{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(PAGE_FILE_MODE).open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(PAGE_FILE_MODE))?;
        file.write_all(&body)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join("page_data.json"))?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| (true, etag))
}

/// Temporary files are `.page_data.json.<generation>.<random>.tmp`.
const TMP_PREFIX: &str = ".page_data.json.";
const TMP_SUFFIX: &str = ".tmp";

/// Removes temporary files a crashed earlier process left in Page folders (a write
/// cut between create and rename). Files of `generation` (this process) are in use
/// and kept. Returns how many were removed. Runs once at start, on the blocking pool.
pub fn remove_leftovers(pages_dir: &Path, generation: u64) -> std::io::Result<usize> {
    let ours = format!("{TMP_PREFIX}{generation:016x}.");
    let mut removed = 0;
    let folders = match std::fs::read_dir(pages_dir) {
        Ok(folders) => folders,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for folder in folders {
        let folder = folder?;
        if !folder.file_type()?.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(folder.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX)
                && name.ends_with(TMP_SUFFIX)
                && !name.starts_with(&ours)
                && std::fs::remove_file(file.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes a Page's folder; a folder that is already gone is fine.
pub(super) fn remove_page_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The entity tag of a `page_data.json` content: the first 32 hex digits (128 bits)
/// of the SHA-256 of the file's bytes. The consumer API sends it as `ETag` (quoted) and
/// `page.updated` events carry it (unquoted), so both must come from here.
pub fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    crate::hex(&digest[..16])
}

/// The bytes of `<pages_dir>/<page>/page_data.json`, or `None` when the Page has no
/// file yet. Blocking: call it off the async threads. Readers never see a torn file
/// (see [`write_page_file`]), so no coordination with the writer is needed.
pub fn read_page_file(pages_dir: &Path, page: &PageId) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(pages_dir.join(page.as_str()).join("page_data.json")) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `name` and `category` from `page_data.json`, when the file exists and has them
/// (for `pagesync pages`).
pub(super) fn name_and_category(path: &Path) -> (Option<String>, Option<String>) {
    let Some(value) = std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return (None, None);
    };
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    (text("name"), text("category"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_files_are_written_whole_and_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let page = PageId::parse("42").unwrap();
        let mut data = PageData::new();
        data.insert("id".into(), "42".into());
        data.insert("name".into(), "Old".into());
        data.insert("access_token".into(), "EAAG-leak".into());
        let (written, first) = write_page_file(dir.path(), &page, data.clone(), 1).unwrap();
        assert!(written);
        assert_eq!(
            write_page_file(dir.path(), &page, data.clone(), 1).unwrap(),
            (false, first.clone()),
            "identical data is not rewritten"
        );
        data.insert("name".into(), "New".into());
        let (written, second) = write_page_file(dir.path(), &page, data, 1).unwrap();
        assert!(written && second != first);
        let on_disk = std::fs::read(dir.path().join("42/page_data.json")).unwrap();
        assert_eq!(etag_of(&on_disk), second, "the ETag is the file's");
        let text = std::fs::read_to_string(dir.path().join("42/page_data.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["name"], "New");
        assert!(!text.contains("EAAG-leak"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("42")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn page_files_and_folders_are_readable_by_the_group_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let page = PageId::parse("42").unwrap();
        let mut data = PageData::new();
        data.insert("id".into(), "42".into());
        write_page_file(dir.path(), &page, data, 1).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("42")), 0o750);
        assert_eq!(mode(&dir.path().join("42/page_data.json")), 0o640);
    }

    #[test]
    fn leftover_temporary_files_of_other_processes_are_removed_and_ours_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        let theirs = dir.path().join(format!("42/{TMP_PREFIX}{:016x}.{:016x}{TMP_SUFFIX}", 7, 1));
        let ours = dir.path().join(format!("42/{TMP_PREFIX}{:016x}.{:016x}{TMP_SUFFIX}", 9, 1));
        let file = dir.path().join("42/page_data.json");
        for p in [&theirs, &ours, &file] {
            std::fs::write(p, b"{}").unwrap();
        }
        std::fs::write(dir.path().join("stray-file"), b"x").unwrap();
        assert_eq!(remove_leftovers(dir.path(), 9).unwrap(), 1);
        assert!(!theirs.exists());
        assert!(ours.exists() && file.exists());
        assert_eq!(remove_leftovers(&dir.path().join("missing"), 9).unwrap(), 0);
    }
}
