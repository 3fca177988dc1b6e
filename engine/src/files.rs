//! Reading the files a command is given: bounded reads (a path may name `/dev/zero`, a FIFO or
//! a 10 GB log: the limit is on the bytes read, never on what metadata claims), and directory
//! walks that follow symlinks without looping and visit each file once.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most any input file (a runbook, a drill, `--inputs`, a report `--template`) may hold.
pub const MAX_FILE_BYTES: usize = crate::yaml::MAX_FILE_BYTES;

/// Reads at most `limit + 1` bytes of `path`: `None` when there was more than `limit`, so
/// that a huge file or an endless device is rejected after reading just past the limit.
pub fn read_limited(path: &Path, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// [`read_limited`] with [`MAX_FILE_BYTES`], as one message for the user on failure; `what`
/// names the file's role (`"an inputs file"`).
pub fn read_input(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    match read_limited(path, MAX_FILE_BYTES) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(format!(
            "{} holds more than {MAX_FILE_BYTES} bytes (4 MiB), the limit for {what}; \
             reading stopped there: check that this is the file you meant",
            path.display()
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// YAML files (`*.yaml`, `*.yml`) under a path, sorted; anything but a directory is returned
/// as given (a file of any name, a pipe, a device). Symlinked directories are followed, but a
/// directory already visited (by device and inode) is not entered again, so a symlink to an
/// ancestor cannot loop; a file reached by several paths (symlinks, hard links) is listed once,
/// by the first path the walk meets (directories in name order).
pub fn yaml_files(p: &Path) -> Vec<PathBuf> {
    if !p.exists() {
        return vec![];
    }
    if !p.is_dir() {
        return vec![p.to_path_buf()];
    }
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let mut dirs_seen = HashSet::new();
    let mut files_seen = HashSet::new();
    let mut out = vec![];
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&d) else {
            continue;
        };
        if !dirs_seen.insert(id(&meta)) {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        let mut subdirs = vec![];
        for path in entries {
            // Follows symlinks; a dangling one is skipped.
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if m.is_dir() {
                subdirs.push(path);
            } else if matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("yaml" | "yml")
            ) && files_seen.insert(id(&m))
            {
                out.push(path);
            }
        }
        // Popped in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    out.sort();
    out
}

/// [`yaml_files`] of several paths, each file once (by device and inode) even when two paths
/// reach it (`check dir dir/a.yaml`, a symlink next to its target), in the order given.
pub fn yaml_files_of(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    for p in paths {
        for f in yaml_files(p) {
            let fresh = match std::fs::metadata(&f) {
                Ok(m) => seen.insert((m.dev(), m.ino())),
                Err(_) => true,
            };
            if fresh {
                out.push(f);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_loops_end_and_each_file_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.yaml"), "x").unwrap();
        std::os::unix::fs::symlink(root, root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up2")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b/x.yaml"), root.join("a/y.yaml")).unwrap();
        let found = yaml_files(root);
        assert_eq!(found.len(), 1, "{found:?}");
        let twice = yaml_files_of(&[root.to_path_buf(), root.join("a/y.yaml")]);
        assert_eq!(twice.len(), 1, "{twice:?}");
    }

    #[test]
    fn reads_stop_just_past_the_limit() {
        assert!(read_limited(Path::new("/dev/zero"), 1024)
            .unwrap()
            .is_none());
        let err = read_input(Path::new("/dev/zero"), "an inputs file").unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
