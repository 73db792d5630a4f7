//! Reading the files an input names, so that no input can hang or flood the
//! process: only regular files are opened (a FIFO, a device such as
//! `/dev/zero`, or a socket is refused before it is opened, so nothing blocks
//! or reads forever), no more bytes are read than the caller's limit (checked
//! from the file's size first, so an oversized file is refused unread), and
//! directory walks do not follow links to directories (so a link loop cannot
//! hang a walk or repeat its files) and visit each real file once.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The bytes of the regular file `path`, refused with a message when it is
/// not a regular file or holds more than `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if !meta.is_file() {
        bail!("{shown} is not a regular file (a directory, device, FIFO or socket); only regular files are read");
    }
    if meta.len() > limit {
        bail!("{shown} is {} bytes; at most {limit} are read", meta.len());
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?;
    read_bounded(file, limit, &shown.to_string())
}

/// At most `limit` bytes of a stream (stdin, a named pipe), refused with a
/// message naming it when it holds more.
pub fn read_bounded(stream: impl Read, limit: u64, name: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > limit {
        bail!("{name} holds more than {limit} bytes; at most {limit} are read");
    }
    Ok(bytes)
}

/// Every file under `dir` (at any depth) whose name ends in `.extension`,
/// sorted, each real file once. Links to files are followed; links to
/// directories are not (a note names each one), since a link can point back
/// up the tree.
pub fn walk(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect(dir, extension, &mut files)?;
    files.sort();
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn collect(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let is_dir = if kind.is_symlink() {
            let target_is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
            if target_is_dir {
                eprintln!(
                    "note: {} links to a directory; not followed",
                    path.display()
                );
                continue;
            }
            false
        } else {
            kind.is_dir()
        };
        if is_dir {
            collect(&path, extension, out)?;
        } else if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        let err = read_regular(&file, 4).unwrap_err().to_string();
        assert!(err.contains("5 bytes; at most 4"), "{err}");
        let err = read_regular(dir.path(), 4).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn walks_visit_each_real_file_once_and_do_not_follow_directory_links() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/1.xml"), b"x").unwrap();
        std::fs::write(root.join("a/b/2.xml"), b"x").unwrap();
        std::fs::write(root.join("a/b/notes.txt"), b"x").unwrap();
        symlink(root, root.join("a/b/up")).unwrap();
        symlink(".", root.join("a/loop")).unwrap();
        symlink(root.join("a/1.xml"), root.join("a/b/same.xml")).unwrap();
        symlink(root.join("missing.xml"), root.join("a/dangling.xml")).unwrap();
        let found = walk(root, "xml").unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a/1.xml", "a/b/2.xml", "a/dangling.xml"]);
    }
}
