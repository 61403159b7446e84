//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, rotated by
//! size into `<file>.1`, `<file>.2`, … (oldest has the highest number). The shim writes
//! them, so output survives a daemon restart; the daemon reads them for `logs` and `attach`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Now, in Docker's timestamp format (RFC 3339 with nanoseconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
}

impl Writer {
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Appends one entry (`data` is one line with its newline, or a partial line).
    pub fn write(&mut self, stream: &str, data: &[u8]) -> io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: stream.into(),
            time: now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let n = self.max_files - 1;
        let _ = fs::remove_file(numbered(&self.path, n));
        for i in (1..n).rev() {
            let _ = fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1));
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log files of a container, oldest first (rotated ones, then the live one).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut n = 1;
    while numbered(path, n).exists() {
        out.push(numbered(path, n));
        n += 1;
    }
    out.reverse();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Parses the entries of a buffer of complete lines; malformed lines are skipped (a crash
/// can leave a torn last line, which must not hide the rest).
pub fn parse(buf: &[u8]) -> Vec<Entry> {
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_rotates() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c-json.log");
        let mut w = Writer::open(&p, Some(200), 3).unwrap();
        for i in 0..20 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        let fs = files(&p);
        assert_eq!(fs.len(), 3, "{fs:?}");
        let all: Vec<Entry> = fs
            .iter()
            .flat_map(|f| parse(&std::fs::read(f).unwrap()))
            .collect();
        assert_eq!(all.last().unwrap().log, "line 19\n");
        let nums: Vec<usize> = all
            .iter()
            .map(|e| e.log.trim().strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "entries stay in order: {nums:?}"
        );
    }
}
