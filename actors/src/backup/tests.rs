use std::time::Duration;

use super::*;
use crate::store::trees;

/// A store with a few records in two trees and two Page files.
fn filled(dir: &Path) -> (Store, PathBuf) {
    let store = Store::open(&StoreConfig::new(dir.join("db"))).unwrap();
    let state = store.tree(trees::PAGE_STATE).unwrap();
    state.insert(b"42", b"synced").unwrap();
    state.insert(b"43", b"error").unwrap();
    store.tree(trees::SESSIONS).unwrap().insert(b"s", b"session").unwrap();
    let pages = dir.join("facebook");
    for (page, text) in [("42", "{\"id\":\"42\"}"), ("43", "{\"id\":\"43\"}")] {
        std::fs::create_dir_all(pages.join(page)).unwrap();
        std::fs::write(pages.join(page).join(PAGE_FILE), text).unwrap();
    }
    std::fs::write(pages.join("stray.txt"), "not a Page").unwrap();
    (store, pages)
}

#[test]
fn a_backup_restores_every_record_and_page_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pages) = filled(dir.path());
    let file = dir.path().join("pagesync.backup");
    let summary = write_backup(&store, &pages, &file).unwrap();
    assert_eq!((summary.records >= 3, summary.page_files), (true, 2));
    assert!(matches!(write_backup(&store, &pages, &file), Err(BackupError::Exists { .. })), "never overwrites");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let target = dir.path().join("restored");
    let restored = restore_backup(&file, &target).unwrap();
    assert_eq!((restored.records, restored.page_files), (summary.records, summary.page_files));
    let again = Store::open(&StoreConfig::new(target.join("db"))).unwrap();
    assert_eq!(again.tree(trees::PAGE_STATE).unwrap().get(b"43").unwrap().as_deref(), Some(&b"error"[..]));
    assert_eq!(again.tree(trees::SESSIONS).unwrap().get(b"s").unwrap().as_deref(), Some(&b"session"[..]));
    assert_eq!(std::fs::read_to_string(target.join("facebook/42/page_data.json")).unwrap(), "{\"id\":\"42\"}");
    assert!(!target.join("facebook/stray.txt").exists());
    drop(again);

    // Into a data dir that already has a store: refused, nothing touched.
    assert!(matches!(restore_backup(&file, &target), Err(BackupError::NotEmpty { .. })));
}

#[test]
fn a_store_without_page_files_restores_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    store.tree(trees::SESSIONS).unwrap().insert(b"s", b"session").unwrap();
    let file = dir.path().join("no-pages.backup");
    assert_eq!(write_backup(&store, &dir.path().join("facebook"), &file).unwrap().page_files, 0);
    let target = dir.path().join("restored");
    std::fs::create_dir(&target).unwrap();
    let restored = restore_backup(&file, &target).unwrap();
    assert_eq!(restored.page_files, 0);
    assert!(target.join("db").is_dir() && target.join("facebook").is_dir());
    assert!(!target.join("db.restoring").exists() && !target.join("facebook.restoring").exists());
}

#[test]
fn a_damaged_or_foreign_file_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pages) = filled(dir.path());
    let file = dir.path().join("good.backup");
    write_backup(&store, &pages, &file).unwrap();
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let mut newer = good.clone();
    newer[12..16].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
    let mut long = good.clone();
    long.push(0);
    // An absurd length right after the header: refused before anything is allocated.
    let mut huge = good[..16].to_vec();
    huge.push(TREE);
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge length", huge),
        ("flipped", flipped),
        ("truncated", good[..good.len() - 10].to_vec()),
        ("trailing", long),
        ("foreign", b"hello, world".to_vec()),
        ("empty", Vec::new()),
        ("newer", newer),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let target = dir.path().join(format!("into-{name}"));
        let result = restore_backup(&path, &target);
        assert!(
            matches!(result, Err(BackupError::Invalid { .. } | BackupError::NewerFormat { .. })),
            "{name}: {result:?}"
        );
        assert!(!target.join("db").exists() && !target.join("facebook").exists(), "{name} left something");
    }
}

#[test]
fn a_page_file_name_that_leaves_its_folder_is_refused() {
    for bad in
        ["../42/page_data.json", "42/../../etc", "42/other.json", "/42/page_data.json", "4a/page_data.json", "42"]
    {
        assert_eq!(page_of(bad), None, "{bad}");
    }
    assert_eq!(page_of("42/page_data.json"), Some("42"));
}

#[tokio::test]
async fn writes_queued_while_the_writer_is_held_wait_for_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let tree = store.tree(trees::INBOX).unwrap();
    let held = store.pause_writer().unwrap();
    let commit = tokio::spawn(store.commit(&tree, b"k".to_vec(), b"v".to_vec()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!commit.is_finished(), "a commit went through a held writer");
    assert!(tree.get(b"k").unwrap().is_none());
    drop(held);
    commit.await.unwrap().unwrap();
    assert!(tree.get(b"k").unwrap().is_some());
}
