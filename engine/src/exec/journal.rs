//! The journal: `<journal-dir>/<run-id>/journal.jsonl`, append-only, one event per line,
//! each line written whole and fsync'd before the run goes on.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::events::Envelope;

/// The file name of a journal inside its run directory.
pub const FILE_NAME: &str = "journal.jsonl";

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Creates `<dir>/<run_id>/journal.jsonl` (the run directory must not exist yet).
    pub fn create(dir: &Path, run_id: &str) -> io::Result<Journal> {
        let run_dir = dir.join(run_id);
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir(&run_dir)?;
        let path = run_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(&run_dir);
        Ok(Journal { path, file })
    }

    /// Opens an existing journal to append to it (resume). A torn last line is cut off first,
    /// so that every line of the file stays a whole JSON document.
    pub fn reopen(path: &Path) -> io::Result<Journal> {
        let len = std::fs::metadata(path)?.len();
        if len > 0 {
            // Find the last newline from the end, a block at a time: the file is not read
            // whole (it may be large, see `read`).
            use std::io::{Read as _, Seek, SeekFrom};
            let mut f = OpenOptions::new().read(true).write(true).open(path)?;
            let mut end = len;
            let mut keep = 0;
            let mut block = vec![0u8; 64 * 1024];
            while end > 0 {
                let start = end.saturating_sub(block.len() as u64);
                let n = (end - start) as usize;
                f.seek(SeekFrom::Start(start))?;
                f.read_exact(&mut block[..n])?;
                if let Some(p) = block[..n].iter().rposition(|b| *b == b'\n') {
                    keep = start + p as u64 + 1;
                    break;
                }
                end = start;
            }
            if keep != len {
                f.set_len(keep)?;
                f.sync_all()?;
            }
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run directory holding the journal (and files a run writes next to it).
    pub fn run_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Appends one event and makes it durable before returning.
    pub fn append(&mut self, e: &Envelope) -> io::Result<()> {
        self.append_all(std::slice::from_ref(e))
    }

    /// Appends events that belong together (a successful attempt and its captures) in one
    /// write, made durable before returning.
    pub fn append_all(&mut self, events: &[Envelope]) -> io::Result<()> {
        self.append_all_sync(events, true)
    }

    /// Appends events in one write; with `sync`, makes them (and every earlier line) durable
    /// before returning. Without it the lines are in the kernel's page cache: they survive
    /// the process being killed, and only a power loss before the next sync can lose them.
    pub fn append_all_sync(&mut self, events: &[Envelope], sync: bool) -> io::Result<()> {
        let mut lines = Vec::new();
        for e in events {
            serde_json::to_writer(&mut lines, e).map_err(io::Error::other)?;
            lines.push(b'\n');
        }
        // One write call: a crash leaves at most one torn line, at the end.
        self.file.write_all(&lines)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A journal read back: its events, and whether it ended early.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub events: Vec<Envelope>,
    /// The last line was cut mid-write (a crash or SIGKILL during an append).
    pub truncated: bool,
    /// Lines that could not be parsed (other than a torn last line), with their numbers.
    pub bad_lines: Vec<(usize, String)>,
}

/// The longest journal line read back. The engine's own events are far shorter (a step's
/// output is cut to 1 MiB per stream, and even escaped as JSON stays under this); a longer line
/// means a damaged or hostile file, and reading it would cost its length in memory.
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// Reads a journal, tolerating a torn last line. Reads line by line, each bounded by
/// [`MAX_LINE`]: a longer line is an error that names it.
pub fn read(path: &Path) -> io::Result<Read> {
    use std::io::{BufRead, Read as _};
    let mut r = io::BufReader::new(File::open(path)?);
    let mut out = Read::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        let whole = line.last() == Some(&b'\n');
        if !whole && line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {number} is longer than {} MiB, which no journal event is; the file \
                     is damaged or not a journal",
                    MAX_LINE >> 20
                ),
            ));
        }
        let at_end = !whole && r.fill_buf()?.is_empty();
        parse_line(&mut out, number, &String::from_utf8_lossy(&line), at_end);
    }
    Ok(out)
}

/// Parses journal bytes.
pub fn parse(bytes: &[u8]) -> Read {
    let mut out = Read::default();
    let text = String::from_utf8_lossy(bytes);
    let ends_whole = text.ends_with('\n') || text.is_empty();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        parse_line(&mut out, i + 1, line, i + 1 == lines.len() && !ends_whole);
    }
    out
}

/// One line (number `number`); `torn` when it is the last and has no newline: such a line
/// that does not parse is a write cut by a crash, which readers tolerate.
fn parse_line(out: &mut Read, number: usize, line: &str, torn: bool) {
    if line.trim().is_empty() {
        return;
    }
    match serde_json::from_str::<Envelope>(line) {
        Ok(e) => out.events.push(e),
        Err(_) if torn => out.truncated = true,
        Err(err) => out.bad_lines.push((number, err.to_string())),
    }
}

/// Finds a journal from a run id or a path (a journal file or a run directory).
pub fn locate(run: &str, journal_dir: &Path) -> io::Result<PathBuf> {
    let p = Path::new(run);
    let candidates = [
        p.to_path_buf(),
        p.join(FILE_NAME),
        journal_dir.join(run).join(FILE_NAME),
    ];
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no journal for `{run}` (looked for a file, `{run}/{FILE_NAME}` and `{}/{run}/{FILE_NAME}`)",
            journal_dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::events::{Envelope, Event};

    fn env(seq: u64) -> Envelope {
        Envelope {
            v: 1,
            seq,
            ts: "2026-01-01T00:00:00.000Z".into(),
            run_id: "r".into(),
            event: Event::StepSkipped {
                step: format!("s{seq}"),
                title: String::new(),
                reason: "x".into(),
                phase: crate::exec::events::Phase::Main,
                cause: None,
            },
        }
    }

    #[test]
    fn torn_last_line_is_tolerated_and_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        j.append(&env(1)).unwrap();
        j.append(&env(2)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"v\":1,\"seq\":3,\"ts");
        std::fs::write(&path, &bytes).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 2);
        assert!(r.truncated);
        let mut j = Journal::reopen(&path).unwrap();
        j.append(&env(3)).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 3);
        assert!(!r.truncated);
    }
}
