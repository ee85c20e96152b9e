//! Operator commands run as root (`sudo pagesync pages`) must not leave root-owned
//! files in the data dir, which the daemon could then not write. When no daemon
//! answers and the command opens the store itself, it first becomes the data dir's
//! owner (after reading the configuration and the secrets, which only root may read).
//!
//! Linux keeps user and group ids per thread; the C library's `setuid` signals every
//! thread to follow. pagesync makes the change while the process has a single thread
//! (the CLI's runtime has not started a second one yet), checked in /proc, so the
//! per-thread calls change the whole process, without `unsafe`.

use std::path::Path;

use rustix::process::{Gid, Uid};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// As root, switches to the user and group owning `data_dir` (or, when it does not
/// exist yet, its nearest existing parent: whoever owns the place owns what is created
/// there), dropping supplementary groups, and returns them; as anyone else, or when
/// root owns the place, does nothing.
pub fn become_owner_of(data_dir: &Path) -> Result<Option<(u32, u32)>, String> {
    use std::os::unix::fs::MetadataExt as _;
    if !is_root() {
        return Ok(None);
    }
    let absolute = std::path::absolute(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let meta = absolute
        .ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok())
        .ok_or_else(|| format!("{}: no part of the path can be read", data_dir.display()))?;
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 {
        return Ok(None);
    }
    let threads = thread_count();
    if threads != Some(1) {
        return Err(format!(
            "cannot switch to the data dir's owner (uid {uid}) with {} threads running; run the command as that user",
            threads.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string())
        ));
    }
    // Groups first, then the group, then the user: each step needs the privilege the
    // next one drops.
    rustix::thread::set_thread_groups(&[])
        .and_then(|()| rustix::thread::set_thread_gid(Gid::from_raw(gid)))
        .and_then(|()| rustix::thread::set_thread_uid(Uid::from_raw(uid)))
        .map_err(|e| format!("cannot switch to the data dir's owner (uid {uid}, gid {gid}): {e}"))?;
    Ok(Some((uid, gid)))
}

/// The process's thread count, from /proc/self/status.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| line.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_thread_count_is_read_from_proc() {
        // The test harness runs tests on threads of its own: more than one.
        assert!(super::thread_count().is_some_and(|n| n >= 1));
    }
}
