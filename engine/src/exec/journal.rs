//! The journal: `<journal-dir>/<run-id>/journal.jsonl`, append-only, one event per line,
//! each line written whole by one `write`, and made durable (one `fdatasync`) before each change
//! to the world (see `Emitter::needs_sync` and docs/reliability.md).
//!
//! **Preallocation.** The file is extended ahead of its events with written zeros, a chunk at a
//! time (64 KiB, doubling up to 1 MiB), and events are written over those zeros. A sync of a
//! file whose size and blocks did not change (`fdatasync` of overwritten, already-written
//! blocks) only writes the data and flushes the disk's cache: it needs no file-system journal
//! commit, which on a busy disk also carries every other process's metadata. Only the sync
//! after a new chunk pays a commit. The unwritten tail of the last chunk is NUL bytes, which no
//! event holds (JSON escapes them): readers skip them, `reopen` cuts them off, and a run that
//! ends (`trim`) leaves a file of whole lines only. A SIGKILL or a power cut leaves the tail.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::events::Envelope;

/// The file name of a journal inside its run directory.
pub const FILE_NAME: &str = "journal.jsonl";

/// The first chunk of written zeros reserved ahead of the events; each next chunk is as large as
/// the file already is, up to [`MAX_CHUNK`].
pub const FIRST_CHUNK: u64 = 64 * 1024;
/// The largest chunk reserved at once.
pub const MAX_CHUNK: u64 = 1024 * 1024;

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes of whole events: where the next event is written.
    len: u64,
    /// Bytes of the file: the events and the written zeros reserved after them.
    reserved: u64,
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
            .write(true)
            .open(&path)?;
        sync_dir(&run_dir);
        Ok(Journal {
            path,
            file,
            len: 0,
            reserved: 0,
        })
    }

    /// Opens an existing journal to append to it (resume). What readers skip is cut off first
    /// (a torn last line, the unwritten tail of NUL bytes, see [`read`]), so that the file holds
    /// whole lines only; a journal with NUL bytes among the lines it keeps (written after its
    /// run stopped) is rewritten without them, through a new file renamed over it.
    pub fn reopen(path: &Path) -> io::Result<Journal> {
        let scan = scan(path)?;
        if scan.nul_inside {
            rewrite_without_nuls(path, scan.keep)?;
        } else if scan.keep != scan.size {
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(scan.keep)?;
            f.sync_all()?;
        }
        let file = OpenOptions::new().write(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len,
            reserved: len,
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
        let end = self.len + lines.len() as u64;
        if end > self.reserved {
            self.reserve(end)?;
        }
        // One write call: a crash leaves at most one torn line, at the end.
        self.file.write_all_at(&lines, self.len)?;
        self.len = end;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Extends the file with written zeros to hold at least `end` bytes, by whole chunks. The
    /// zeros become durable with the next sync (which then pays the one metadata commit).
    fn reserve(&mut self, end: u64) -> io::Result<()> {
        let mut target = self.reserved.max(self.len);
        while target < end {
            target += target.clamp(FIRST_CHUNK, MAX_CHUNK);
        }
        let zeros = vec![0u8; (target - self.reserved).min(MAX_CHUNK) as usize];
        while self.reserved < target {
            let n = (target - self.reserved).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], self.reserved)?;
            self.reserved += n as u64;
        }
        Ok(())
    }

    /// Gives back the reserved zeros: the file then holds whole lines only. Called when a run
    /// ends; appending again (a resume) reserves anew. Not synced: a power cut that loses the
    /// new size leaves the tail, which readers skip.
    pub fn trim(&mut self) -> io::Result<()> {
        if self.reserved > self.len {
            self.file.set_len(self.len)?;
            self.reserved = self.len;
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.trim();
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What `reopen` keeps of a journal.
struct Scan {
    size: u64,
    /// Bytes up to the end of the last whole line that readers keep.
    keep: u64,
    /// A kept line holds NUL bytes.
    nul_inside: bool,
}

/// Reads a journal as [`read`] does and tells what to keep of it: every whole line before the
/// unwritten tail; not a last line without its newline (a torn write).
fn scan(path: &Path) -> io::Result<Scan> {
    let size = std::fs::metadata(path)?.len();
    let mut scan = Scan {
        size,
        keep: 0,
        nul_inside: false,
    };
    let mut offset = 0u64;
    let r = io::BufReader::new(File::open(path)?);
    for_each_line(r, |_, line, whole| {
        offset += line.len() as u64;
        if let Line::Tail = classify(line, !whole) {
            return false;
        }
        if whole {
            scan.keep = offset;
            scan.nul_inside |= line.contains(&0);
        }
        true
    })?;
    Ok(scan)
}

/// Writes the first `keep` bytes of `path` without their NUL bytes to a new file and renames it
/// over the journal.
fn rewrite_without_nuls(path: &Path, keep: u64) -> io::Result<()> {
    use std::io::Read as _;
    let tmp = path.with_extension("jsonl.rewrite");
    let mut out = File::create(&tmp)?;
    let mut r = io::BufReader::new(File::open(path)?).take(keep);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let kept: Vec<u8> = buf[..n].iter().copied().filter(|b| *b != 0).collect();
        out.write_all(&kept)?;
    }
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// A journal read back: its events, and whether it ended early.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub events: Vec<Envelope>,
    /// The last line was cut mid-write (a crash or SIGKILL during an append), or the lines
    /// ended in the unwritten tail with a partial line (a power cut).
    pub truncated: bool,
    /// Lines that could not be parsed (other than a torn last line), with their numbers.
    pub bad_lines: Vec<(usize, String)>,
}

/// The longest journal line read back. The engine's own events are far shorter (a step's
/// output is cut to 1 MiB per stream, and even escaped as JSON stays under this); a longer line
/// means a damaged or hostile file, and reading it would cost its length in memory.
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// Reads a journal, tolerating a torn last line and the unwritten tail. Reads line by line,
/// each bounded by [`MAX_LINE`]: a longer line is an error that names it.
pub fn read(path: &Path) -> io::Result<Read> {
    let mut out = Read::default();
    for_each_line(
        io::BufReader::new(File::open(path)?),
        |number, line, whole| take(&mut out, number, classify(line, !whole)),
    )?;
    Ok(out)
}

/// Parses journal bytes (as [`read`] reads a file).
pub fn parse(bytes: &[u8]) -> Read {
    let mut out = Read::default();
    // Reading from memory cannot fail, and no line can be longer than the bytes.
    let _ = for_each_line(bytes, |number, line, whole| {
        take(&mut out, number, classify(line, !whole))
    });
    out
}

/// Adds one line to what was read; false at the unwritten tail (nothing after it is read).
fn take(out: &mut Read, number: usize, line: Line) -> bool {
    match line {
        Line::Empty => {}
        Line::Event(e) => out.events.push(*e),
        Line::Torn => out.truncated = true,
        Line::Tail => {
            out.truncated = true;
            return false;
        }
        Line::Bad(err) => out.bad_lines.push((number, err)),
    }
    true
}

/// Calls `f(number, line, whole)` for each line of `r` (with its newline when `whole`), until
/// `f` returns false. A line longer than [`MAX_LINE`] is an error that names it.
fn for_each_line(
    mut r: impl io::BufRead,
    mut f: impl FnMut(usize, &[u8], bool) -> bool,
) -> io::Result<()> {
    use std::io::{BufRead as _, Read as _};
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
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
        if !f(number, &line, whole) {
            return Ok(());
        }
    }
}

/// One line of a journal, as readers take it.
enum Line {
    /// Blank, or NUL bytes only (the unwritten tail after the last event).
    Empty,
    Event(Box<Envelope>),
    /// The last line, without its newline, that does not parse: a write cut by a crash.
    Torn,
    /// A line that holds NUL bytes and does not parse without them: the unwritten tail, cut
    /// into by a power loss (a block of later lines reached the disk, an earlier one did not).
    /// Nothing from here on was made durable by a sync; the journal ends before it.
    Tail,
    /// A line that does not parse, with the parser's error.
    Bad(String),
}

/// `line` without its NUL bytes (which no event holds: JSON escapes them), parsed; `last`
/// when it is the last line and has no newline.
fn classify(line: &[u8], last: bool) -> Line {
    let nul = line.contains(&0);
    let kept: std::borrow::Cow<[u8]> = if nul {
        line.iter()
            .copied()
            .filter(|b| *b != 0)
            .collect::<Vec<u8>>()
            .into()
    } else {
        line.into()
    };
    let text = String::from_utf8_lossy(&kept);
    if text.trim().is_empty() {
        return Line::Empty;
    }
    match serde_json::from_str::<Envelope>(&text) {
        Ok(e) => Line::Event(Box::new(e)),
        Err(_) if nul => Line::Tail,
        Err(_) if last => Line::Torn,
        Err(err) => Line::Bad(err.to_string()),
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

    /// The bytes of a journal file.
    fn bytes(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap()
    }

    #[test]
    fn events_are_written_over_reserved_zeros_and_a_run_end_trims_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        j.append(&env(1)).unwrap();
        j.append_all_sync(&[env(2), env(3)], false).unwrap();
        let path = j.path().to_path_buf();
        let b = bytes(&path);
        // A chunk of written zeros after the events: the size does not change with each event.
        assert_eq!(b.len() as u64, FIRST_CHUNK);
        let end = b.iter().rposition(|c| *c == b'\n').unwrap() + 1;
        assert!(b[end..].iter().all(|c| *c == 0));
        // Readers see the events only, and no torn line.
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 3);
        assert!(!r.truncated && r.bad_lines.is_empty());
        assert_eq!(parse(&b).events.len(), 3);
        // More than a chunk: the reservation grows by whole chunks, as large as the file.
        let big: Vec<Envelope> = (4..1000).map(env).collect();
        j.append_all_sync(&big, false).unwrap();
        let size = bytes(&path).len() as u64;
        assert!(
            size > FIRST_CHUNK && size.is_multiple_of(FIRST_CHUNK),
            "{size}"
        );
        assert_eq!(read(&path).unwrap().events.len(), 999);
        // The end of the run gives the zeros back: whole lines only.
        j.trim().unwrap();
        let b = bytes(&path);
        assert!(b.ends_with(b"\n") && !b.contains(&0));
        assert_eq!(read(&path).unwrap().events.len(), 999);
        // Appending after a trim (a resume) reserves again.
        j.append(&env(1000)).unwrap();
        assert_eq!(read(&path).unwrap().events.len(), 1000);
    }

    #[test]
    fn a_killed_runs_tail_is_skipped_and_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        j.append(&env(1)).unwrap();
        j.append(&env(2)).unwrap();
        let path = j.path().to_path_buf();
        // A SIGKILL: no trim, the reserved zeros stay.
        std::mem::forget(j);
        assert!(bytes(&path).ends_with(&[0]));
        let mut j = Journal::reopen(&path).unwrap();
        let b = bytes(&path);
        assert!(b.ends_with(b"\n") && !b.contains(&0), "reopen cut the tail");
        j.append(&env(3)).unwrap();
        drop(j);
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 3);
        assert!(!r.truncated);
    }

    #[test]
    fn a_power_cut_into_the_unwritten_tail_ends_the_journal_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        for s in 1..=4 {
            j.append(&env(s)).unwrap();
        }
        let path = j.path().to_path_buf();
        std::mem::forget(j);
        // Event 3's line lost its middle (a block that never reached the disk), event 4's
        // line did reach it: the journal ends after event 2, and reopen cuts it there.
        let mut b = bytes(&path);
        let lines: Vec<usize> = b
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == b'\n')
            .map(|(i, _)| i)
            .collect();
        let (start, end) = (lines[1] + 1, lines[2]);
        for c in &mut b[start + 10..end - 5] {
            *c = 0;
        }
        std::fs::write(&path, &b).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 2);
        assert!(r.truncated && r.bad_lines.is_empty());
        assert_eq!(parse(&b).events.len(), 2);
        drop(Journal::reopen(&path).unwrap());
        assert_eq!(bytes(&path), b[..start].to_vec());
    }

    #[test]
    fn lines_written_after_the_tail_are_read_and_kept_without_the_zeros() {
        // A killed run's journal, then lines appended by hand after its reserved zeros: they
        // are read (and validated like any line by `resume`), and reopen rewrites the file
        // without the zeros.
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        j.append(&env(1)).unwrap();
        let path = j.path().to_path_buf();
        std::mem::forget(j);
        let mut b = bytes(&path);
        b.extend_from_slice(serde_json::to_string(&env(2)).unwrap().as_bytes());
        b.push(b'\n');
        std::fs::write(&path, &b).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 2);
        assert!(!r.truncated && r.bad_lines.is_empty());
        let mut j = Journal::reopen(&path).unwrap();
        j.append(&env(3)).unwrap();
        drop(j);
        let b = bytes(&path);
        assert!(!b.contains(&0));
        assert_eq!(read(&path).unwrap().events.len(), 3);
    }
}
