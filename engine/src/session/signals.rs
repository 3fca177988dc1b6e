//! Signals: Ctrl-C, SIGTERM and SIGHUP cancel the run (then kill, then exit).

use tokio_util::sync::CancellationToken;

use crate::exit;

/// The cancellation of this process's run, with Ctrl-C, SIGTERM and SIGHUP (a dropped ssh
/// session) handling installed on first use: the first signal cancels the run (it ends as
/// `aborted`, 130, resumable); the second SIGKILLs the running steps' process groups at once
/// (children that ignore SIGTERM too) and lets the run record its end; a third exits at once.
pub fn run_cancel() -> CancellationToken {
    static TOKEN: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let cancel = CancellationToken::new();
            install_signals(cancel.clone());
            cancel
        })
        .clone()
}

/// Installs the handling described at [`run_cancel`] (use that: it installs it once).
pub fn install_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
            }
            count += 1;
            match count {
                1 => {
                    eprintln!("\ninterrupting: stopping the running step (press Ctrl-C again to exit at once)");
                    cancel.cancel();
                }
                2 => {
                    eprintln!("\nexiting now: killing the running step's process group; the journal is intact and the run can be resumed");
                    cancel.cancel();
                    crate::backends::shell::kill_running_groups();
                    // The run records its end as soon as the killed step returns; if something
                    // else holds it up, do not wait for it.
                    std::thread::spawn(|| {
                        std::thread::sleep(std::time::Duration::from_secs(2));
                        std::process::exit(exit::INTERRUPTED);
                    });
                }
                _ => std::process::exit(exit::INTERRUPTED),
            }
        }
    });
}
