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
///
/// The handling runs on a thread of its own, with its own small runtime: the run's runtime
/// has one thread (see `cli::runtime`), and that thread may be blocked in a prompt or a
/// debug build's pause hook when a signal arrives; a signal must be acted on then too. The
/// signals are registered before this returns, so none sent after it is missed.
pub fn install_signals(cancel: CancellationToken) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("runbook-signals".into())
        .spawn(move || {
            // Without a runtime the sender is dropped, which ends the wait below.
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(handle_signals(cancel, ready_tx));
            }
        });
    if spawned.is_ok() {
        // A dropped sender: the handling could not be installed, as when tokio cannot
        // register a signal; the run goes on without it.
        let _ = ready_rx.recv();
    }
}

/// Registers the signals, says so on `ready` (dropped unsent if they cannot be registered),
/// then handles them.
async fn handle_signals(cancel: CancellationToken, ready: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let _ = ready.send(());
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
}
