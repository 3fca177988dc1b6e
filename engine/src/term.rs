//! What reaches the operator's terminal. Every text the engine shows (the run view, prompts,
//! plans, diagnostics, drill results, reports on a terminal, error messages) passes through
//! [`visible`] on its way out, so that a value from an input, a step's output, an HTTP body or
//! a runbook cannot move the cursor, clear the screen, set the window title or rewrite a
//! prompt: control characters are shown as escapes (`\x1b`, `\r`, `\u{9b}`), never sent.
//!
//! The crate's `println!`, `print!`, `eprintln!` and `eprint!` are this module's (see the
//! macros below, which shadow std's in every module of the crate), so a new message cannot
//! bypass the sanitiser by accident. Styled output whose escapes the engine itself produces
//! (miette's colours, indicatif's spinners, dialoguer's prompts) sanitises its *inputs* instead:
//! `diag::Diagnostic::render`, `view` and `prompt.rs`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

/// Colour on stderr: only at a terminal, and never with `NO_COLOR` set (any value).
pub fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Whether `c` is shown as an escape rather than sent to the terminal. Line feed and tab are
/// sent (they move to the next line or column, nothing else); every other C0 control, DEL,
/// every C1 control (U+0080..U+009F: U+009B is CSI on some terminals) and the Unicode
/// bidirectional controls (which reorder what is shown, "Trojan Source") are escaped.
pub fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `s` with every unsafe character (see [`is_unsafe`]) written as a visible escape.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`visible`] for a text that must stay on one line (a spinner's message, a prompt): line
/// feeds are escaped as well.
pub fn visible_line(s: &str) -> Cow<'_, str> {
    if !s.contains('\n') {
        return visible(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\n' || is_unsafe(c) {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Writes `args`, sanitised, to stdout (the crate's `print!`/`println!`). A closed pipe
/// (`runbook list | head`) is not an error worth a panic.
pub fn out(args: std::fmt::Arguments) {
    let s = args.to_string();
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(visible(&s).as_bytes()).and_then(|_| o.flush());
}

/// What writes out lines held back for stderr (a CI log written in blocks, `view::HOLD`)
/// before any other message goes there, so that stderr keeps the order things happened in.
type BeforeStderr = Box<dyn Fn() + Send>;
static BEFORE_STDERR: std::sync::Mutex<Option<BeforeStderr>> = std::sync::Mutex::new(None);

/// Sets what [`err`] calls before it writes (replacing the one set before).
pub fn before_stderr(f: BeforeStderr) {
    if let Ok(mut b) = BEFORE_STDERR.lock() {
        *b = Some(f);
    }
}

/// Writes `args`, sanitised, to stderr (the crate's `eprint!`/`eprintln!`), after what is
/// held back for it (see [`before_stderr`]).
pub fn err(args: std::fmt::Arguments) {
    if let Ok(b) = BEFORE_STDERR.lock() {
        if let Some(f) = b.as_ref() {
            f();
        }
    }
    let s = args.to_string();
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(visible(&s).as_bytes());
}

// The crate's print macros: std's, through the sanitiser. Being `macro_rules!` defined before
// every other module, they shadow the prelude's in the whole crate.
macro_rules! println {
    () => { $crate::term::out(::std::format_args!("\n")) };
    ($($a:tt)*) => { $crate::term::out(::std::format_args!("{}\n", ::std::format_args!($($a)*))) };
}
macro_rules! print {
    ($($a:tt)*) => { $crate::term::out(::std::format_args!($($a)*)) };
}
macro_rules! eprintln {
    () => { $crate::term::err(::std::format_args!("\n")) };
    ($($a:tt)*) => { $crate::term::err(::std::format_args!("{}\n", ::std::format_args!($($a)*))) };
}
macro_rules! eprint {
    ($($a:tt)*) => { $crate::term::err(::std::format_args!($($a)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        assert_eq!(visible("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(visible("over\rwrite"), "over\\rwrite");
        assert_eq!(visible("bell\x07 del\x7f"), "bell\\x07 del\\x7f");
        assert_eq!(visible("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(visible("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(visible("two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(visible_line("two\nlines"), "two\\nlines");
        assert_eq!(visible("naïve ✔ 日本"), "naïve ✔ 日本");
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
    }
}
