//! Why a run could not start or resume: the session layer's errors. Returned, never printed
//! here: `main` prints each once and maps it to its exit code (`cli::error`). A run that
//! started ends with its own outcome instead (journaled, shown by the terminal view).

use std::path::PathBuf;

use crate::load::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The runbook or the `--world` drill has errors.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Input values or `--answer` values that do not fit the runbook: every problem, one per
    /// line.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// A secret the runbook declares cannot be read.
    #[error("{0}")]
    Secrets(String),
    /// A non-interactive run without the operator or reason the runbook requires.
    #[error("{0}")]
    Identity(String),
    /// The operator left the operator or reason prompt (`interrupted`: with Ctrl-C). Nothing
    /// ran and nothing more is said.
    #[error("the operator left the prompt")]
    Declined { interrupted: bool },
    /// The new run's journal cannot be created.
    #[error("cannot create the journal in {}: {source}; nothing was run", dir.display())]
    JournalCreate {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A resumed run's journal cannot be opened to append to it.
    #[error("cannot append to {}: {source}", path.display())]
    JournalReopen {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A drill's journal cannot replace the one an earlier run of the drill left, or cannot
    /// be created.
    #[error("{0}")]
    DrillJournal(String),
    /// The new run's lock cannot be taken.
    #[error("{0}; nothing was run")]
    Lock(String),
    /// `resume RUN` names no journal.
    #[error("{0}")]
    NoRun(std::io::Error),
    /// Another process holds the run's lock; `command` resumes it once that one has ended.
    #[error("cannot resume {run}: {why}: {command}")]
    Busy {
        run: String,
        why: String,
        command: String,
    },
    /// The journal cannot be read or replayed for a resume.
    #[error("{0}")]
    Journal(String),
    /// The run cannot be resumed (it finished, or it is a training run resumed without its
    /// world); `next` is the command that goes on from here.
    #[error("run {run}: {why}\n{next}")]
    NotResumable {
        run: String,
        why: String,
        next: String,
    },
    /// A file the run loaded changed since it started, and `--force` is absent.
    #[error("{what}; resuming could run steps that were never planned. To resume anyway (it is journaled): {command}")]
    Changed { what: String, command: String },
}

impl SessionError {
    /// The lines `main` prints, each as `error: <line>`: the problems of `Invalid` one by one,
    /// nothing for `Declined`, else the message.
    pub fn lines(&self) -> Vec<String> {
        match self {
            SessionError::Invalid(all) => all.clone(),
            SessionError::Declined { .. } => vec![],
            other => vec![other.to_string()],
        }
    }
}
