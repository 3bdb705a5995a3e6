//! The data directory (`MCPR_DATA_DIR`): the SQLite database with its `-wal` and `-shm`
//! files, `master.key` and `session.key`. It is its owner's alone: the directory 0700 and
//! every file in it 0600, as they are created, and tightened at start when an earlier
//! version or an operator left them looser (each change is logged).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode bits a directory or a file of the data directory may have at most.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (0700) when it does not exist; its parents get the usual modes.
pub fn create(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Creates `path` empty with 0600 unless it exists, so that a program that would create it
/// with looser bits (SQLite: 0644) opens ours; SQLite gives its `-wal` and `-shm` files the
/// database's mode.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

/// Takes group and other bits off `dir` and off every file and directory directly in it
/// (symbolic links are left alone). A mode it cannot change is logged, not fatal: the
/// router still starts, and the operator reads why.
pub fn tighten(dir: &Path) {
    tighten_one(dir, DIR_MODE);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the data directory to check its permissions");
            return;
        }
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => tighten_one(&entry.path(), DIR_MODE),
            Ok(t) if t.is_file() => tighten_one(&entry.path(), FILE_MODE),
            _ => {}
        }
    }
}

fn tighten_one(path: &Path, most: u32) {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & !most == 0 {
        return;
    }
    let tightened = mode & most;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            was = format!("{mode:04o}"),
            now = format!("{tightened:04o}"),
            "tightened the permissions of the data directory: it holds the database and keys"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            error = %e,
            "the data directory is readable by others and its permissions cannot be tightened"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_private_and_tightens_what_exists() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/data");
        create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        create(&dir).unwrap();

        let db = dir.join("mcpr.db");
        create_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, b"kept").unwrap();
        create_private_file(&db).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"kept");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o775)).unwrap();
        tighten(&dir);
        assert_eq!((mode(&dir), mode(&db), mode(&sub)), (0o700, 0o600, 0o700));
    }
}
