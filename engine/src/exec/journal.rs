//! The journal: `<journal-dir>/<run-id>/journal.jsonl`, one event per line, each line written
//! whole and fsync'd before the run goes on.
//!
//! The file is written ahead with newlines (see [`Journal`]): a sync then writes only the pages
//! of the new lines, not the file's length as well. Readers skip blank lines, so a journal
//! whose process was killed, which still ends in newlines, reads the same.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::events::Envelope;

/// The file name of a journal inside its run directory.
pub const FILE_NAME: &str = "journal.jsonl";

/// The first stretch of newlines written ahead of the lines; each later one is as long as the
/// file already is, up to [`PAD_MAX`].
const PAD_MIN: u64 = 8 * 1024;
const PAD_MAX: u64 = 1024 * 1024;
/// The next stretch is written when less than this is left: the lines of a step are shorter.
const PAD_LOW: u64 = 4 * 1024;

/// An open journal, appending.
///
/// Lines are written at `end`, into a file that is longer than them: past `end` it holds only
/// newlines, written ahead a stretch at a time (8 KiB, then as much as the file holds, at most
/// 1 MiB) when less than 4 KiB of them is left. An `fdatasync` of a line that grows the file
/// must also write the file's new length (a second write to the disk, about 50 µs of the
/// 190 µs a sync takes on the bench machine); a line written over newlines leaves the length
/// as it is, and its sync writes only its pages. This is what databases do with their logs (PostgreSQL fills each WAL segment with
/// zeros before using it). The newlines are cut off when the journal is dropped; a killed
/// process leaves them, and every reader skips blank lines (`read`, `parse`, `reopen`).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Where the next line goes: just after the last whole line.
    end: u64,
    /// The file's length: between `end` and `len` there are only newlines.
    len: u64,
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
            .read(true)
            .write(true)
            .open(&path)?;
        sync_dir(&run_dir);
        Ok(Journal {
            path,
            file,
            end: 0,
            len: 0,
        })
    }

    /// Opens an existing journal to append to it (resume). The newlines written ahead and a
    /// torn last line are cut off first, so that the file ends with its last whole event.
    pub fn reopen(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let keep = whole_end(&file, len)?;
        if keep != len {
            file.set_len(keep)?;
            file.sync_all()?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            end: keep,
            len: keep,
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
        // One write call: a crash leaves at most one torn line, at the end (followed by
        // newlines).
        self.file.write_all_at(&lines, self.end)?;
        self.end += lines.len() as u64;
        self.len = self.len.max(self.end);
        if self.len - self.end < PAD_LOW {
            self.write_ahead();
        }
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes the next stretch of newlines past the end of the file. After the lines, never
    /// in their write: when the disk is full it fails alone (the journal then grows line by
    /// line, as any appended file) and takes no line with it.
    fn write_ahead(&mut self) {
        let pad = vec![b'\n'; self.len.clamp(PAD_MIN, PAD_MAX) as usize];
        if let Ok(n) = self.file.write_at(&pad, self.len) {
            self.len += n as u64;
        }
    }
}

impl Drop for Journal {
    /// Cuts off the newlines written ahead: a journal whose run ended, even in an error, ends
    /// with its last event. Not synced: a power loss can bring the newlines back, which
    /// readers skip.
    fn drop(&mut self) {
        if self.len > self.end {
            let _ = self.file.set_len(self.end);
        }
    }
}

/// Where the journal's last whole event ends (just after its newline): past the newlines
/// written ahead, and before a last line that does not parse (a write torn by a crash).
/// Reads the file from its end, a block at a time: it may be large (see `read`).
fn whole_end(file: &File, len: u64) -> io::Result<u64> {
    // The last byte that is not a newline, and the newline before it: the start of its line.
    let Some(last) = rposition_at(file, len, |b| b != b'\n')? else {
        return Ok(0);
    };
    let first = rposition_at(file, last + 1, |b| b == b'\n')?.map_or(0, |p| p + 1);
    let whole = last + 1 < len; // a newline follows it
    let size = (last + 1 - first) as usize;
    if whole && size <= MAX_LINE {
        let mut line = vec![0u8; size];
        file.read_exact_at(&mut line, first)?;
        if serde_json::from_slice::<Envelope>(&line).is_ok() {
            return Ok(last + 2);
        }
    }
    Ok(first)
}

/// The offset of the last byte before `end` for which `pred` holds, reading the file backwards
/// a block at a time.
fn rposition_at(file: &File, mut end: u64, pred: impl Fn(u8) -> bool) -> io::Result<Option<u64>> {
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = (end - start) as usize;
        file.read_exact_at(&mut block[..n], start)?;
        if let Some(p) = block[..n].iter().rposition(|b| pred(*b)) {
            return Ok(Some(start + p as u64));
        }
        end = start;
    }
    Ok(None)
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

/// Reads a journal, tolerating a torn last line and the newlines a killed run leaves after it.
/// Reads line by line, each bounded by [`MAX_LINE`]: a longer line is an error that names it.
pub fn read(path: &Path) -> io::Result<Read> {
    use std::io::{BufRead, Read as _};
    let mut r = io::BufReader::new(File::open(path)?);
    let mut lines = Lines::default();
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
        // A line without its newline is the file's last (a longer one is the error above).
        lines.line(number, &String::from_utf8_lossy(&line), whole);
    }
    Ok(lines.finish())
}

/// Parses journal bytes.
pub fn parse(bytes: &[u8]) -> Read {
    let text = String::from_utf8_lossy(bytes);
    let ends_whole = text.ends_with('\n') || text.is_empty();
    let all: Vec<&str> = text.split_terminator('\n').collect();
    let mut lines = Lines::default();
    for (i, line) in all.iter().enumerate() {
        lines.line(i + 1, line, i + 1 < all.len() || ends_whole);
    }
    lines.finish()
}

/// A [`Read`] built line by line. A line that does not parse is torn (a write cut by a crash,
/// which readers tolerate) when it is the last and has no newline, or when only blank lines
/// follow it, at least one (the newlines [`Journal`] writes ahead); anywhere else it is a bad
/// line.
#[derive(Default)]
struct Lines {
    out: Read,
    /// The last line that did not parse, while only blank lines follow it.
    pending: Option<(usize, String)>,
    /// A blank line follows `pending`.
    blank_after: bool,
}

impl Lines {
    /// Line `number`; `whole` when it ends with a newline.
    fn line(&mut self, number: usize, line: &str, whole: bool) {
        if line.trim().is_empty() {
            self.blank_after = self.pending.is_some();
            return;
        }
        if let Some(bad) = self.pending.take() {
            self.out.bad_lines.push(bad);
        }
        match serde_json::from_str::<Envelope>(line) {
            Ok(e) => self.out.events.push(e),
            Err(_) if !whole => self.out.truncated = true,
            Err(err) => {
                self.pending = Some((number, err.to_string()));
                self.blank_after = false;
            }
        }
    }

    fn finish(mut self) -> Read {
        match self.pending.take() {
            Some(_) if self.blank_after => self.out.truncated = true,
            Some(bad) => self.out.bad_lines.push(bad),
            None => {}
        }
        self.out
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

    #[test]
    fn lines_go_over_newlines_written_ahead_which_the_drop_cuts_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "run1").unwrap();
        let path = j.path().to_path_buf();
        let mut lines = Vec::new();
        for seq in 1..=300 {
            j.append_all_sync(&[env(seq)], seq % 7 == 0).unwrap();
            serde_json::to_writer(&mut lines, &env(seq)).unwrap();
            lines.push(b'\n');
            // While the journal is open the file is longer than its lines, and only newlines
            // follow them; the length grows a stretch at a time, not with every line.
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.len() > lines.len(), "at {seq}");
            assert_eq!(&bytes[..lines.len()], &lines[..], "at {seq}");
            assert!(bytes[lines.len()..].iter().all(|b| *b == b'\n'), "at {seq}");
            let r = read(&path).unwrap();
            assert_eq!(r.events.len(), seq as usize);
            assert!(!r.truncated && r.bad_lines.is_empty());
        }
        let open_len = std::fs::metadata(&path).unwrap().len();
        assert!(open_len <= lines.len() as u64 * 2 + PAD_MIN, "{open_len}");
        drop(j);
        assert_eq!(std::fs::read(&path).unwrap(), lines);
    }

    /// A journal of events 1 to `n` whose process was killed: never dropped. Its path, and
    /// where its next line would have gone.
    fn killed(dir: &Path, n: u64) -> (PathBuf, u64) {
        let mut j = Journal::create(dir, "run1").unwrap();
        for seq in 1..=n {
            j.append(&env(seq)).unwrap();
        }
        let out = (j.path().to_path_buf(), j.end);
        std::mem::forget(j);
        out
    }

    #[test]
    fn a_killed_runs_newlines_are_skipped_and_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = killed(dir.path(), 2);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.ends_with(b"\n\n\n"));
        let r = parse(&bytes);
        assert_eq!(
            (r.events.len(), r.truncated, r.bad_lines.len()),
            (2, false, 0)
        );
        let mut j = Journal::reopen(&path).unwrap();
        let whole = std::fs::read(&path).unwrap();
        assert!(whole.ends_with(b"}\n"), "reopen cut the newlines off");
        j.append(&env(3)).unwrap();
        drop(j);
        let r = read(&path).unwrap();
        assert_eq!(
            r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn a_torn_line_before_the_newlines_is_torn_not_bad_and_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (path, at) = killed(dir.path(), 1);
        // A write cut by a power loss: part of a line, then the newlines written ahead.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"{\"v\":1,\"seq\":2,\"ts", at)
            .unwrap();
        let r = read(&path).unwrap();
        assert_eq!(
            (r.events.len(), r.truncated, r.bad_lines.len()),
            (1, true, 0)
        );
        let r = parse(&std::fs::read(&path).unwrap());
        assert_eq!(
            (r.events.len(), r.truncated, r.bad_lines.len()),
            (1, true, 0)
        );
        // A line that does not parse with a whole line after it is bad, as before.
        let r = parse(b"not json\n\n{\"v\":1}\n");
        assert_eq!((r.truncated, r.bad_lines.len()), (false, 2));
        let r = parse(b"not json\n");
        assert_eq!((r.truncated, r.bad_lines.len()), (false, 1));
        let mut j = Journal::reopen(&path).unwrap();
        j.append(&env(2)).unwrap();
        drop(j);
        let r = read(&path).unwrap();
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(!r.truncated && r.bad_lines.is_empty());
    }

    #[test]
    fn reopen_of_an_empty_or_blank_journal_starts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for bytes in [&b""[..], b"\n\n\n", b"{\"v\""] {
            std::fs::write(&path, bytes).unwrap();
            let mut j = Journal::reopen(&path).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
            j.append(&env(1)).unwrap();
            drop(j);
            assert_eq!(read(&path).unwrap().events.len(), 1);
        }
    }
}
