//! The floor of a journaled shell step on this machine, for `bench/run`: the least a program
//! must do per step to run `/bin/true` with a journal that is durable before each change.
//!
//! Per step: write one line (about the size of a step's journal lines) into a file, over
//! newlines written there first (as the engine does), make it durable with one `fdatasync`
//! (unless `nosync`), start `/bin/true` in a process group of its own with standard output and
//! error piped, wait for it, and read both pipes to their end.
//! No parsing, no templates, no terminal output: only the system calls. `std` starts the
//! child with `posix_spawn` here, as the engine does.
//!
//!     rustc -O --edition 2021 bench/floor.rs -o floor
//!     ./floor <steps> sync|nosync <journal file>
//!
//! Prints nothing; `bench/run` times it like the other commands.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: floor <steps> sync|nosync <journal file>";
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let sync = match args.get(2).map(String::as_str) {
        Some("sync") => true,
        Some("nosync") => false,
        _ => panic!("{usage}"),
    };
    let path = args.get(3).expect(usage);
    let mut journal = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open the journal");
    // A step's lines in the engine's journal are about 1 KB (started, attempt, process,
    // finished); one write of that size per step.
    let mut line = vec![b'x'; 1023];
    line.push(b'\n');
    // The lines go over newlines written first, as the engine's journal writes its lines
    // (`exec::journal`): a sync then writes the line's page and not the file's new length.
    journal
        .write_all(&vec![b'\n'; steps * line.len()])
        .expect("write the journal ahead");
    let mut out = Vec::new();
    for i in 0..steps {
        journal
            .write_all_at(&line, (i * line.len()) as u64)
            .expect("write the journal");
        if sync {
            journal.sync_data().expect("fdatasync the journal");
        }
        let mut child = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start /bin/true");
        out.clear();
        let _ = child.stdout.take().expect("stdout").read_to_end(&mut out);
        let _ = child.stderr.take().expect("stderr").read_to_end(&mut out);
        let status = child.wait().expect("wait for /bin/true");
        assert!(status.success(), "/bin/true failed: {status}");
    }
}
