//! Where a bench's files go.

use std::fs;
use std::path::{Path, PathBuf};

/// `target/` of this build: a bench runs as `target/<profile>/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Writes each `(file name, text)` into `dir`, creating it, and says where they went.
pub fn write_csv_files(
    dir: &Path,
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    println!("\nCSV in {}", dir.display());
    Ok(())
}
