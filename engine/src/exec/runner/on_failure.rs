//! `on_failure`: the handlers that run after a failed run.

use crate::exec::events::Phase;

use super::{Frame, Resumed, Runner, StepEnd};

impl Runner {
    /// Runs the `on_failure` steps. A failed handler does not stop the others; an
    /// interruption, a missing answer or a declined gate stops the sequence (resumable).
    pub(super) async fn run_on_failure(&mut self, frame: &mut Frame) -> Option<(StepEnd, String)> {
        let rb = frame.rb.clone();
        for step in &rb.on_failure {
            let sid = step.id.clone();
            if self.cancel.is_cancelled() {
                return Some((StepEnd::Interrupted, sid));
            }
            let pre_approved = match self.resume_step(step, &sid, Phase::OnFailure, frame) {
                Resumed::Proceed { pre_approved } => pre_approved,
                Resumed::Settled(StepEnd::Done | StepEnd::Failed(_)) => continue,
                Resumed::Settled(other) => return Some((other, sid)),
            };
            match self
                .run_step(step, &sid, Phase::OnFailure, frame, pre_approved)
                .await
            {
                StepEnd::Done | StepEnd::Failed(_) => {}
                other => return Some((other, sid)),
            }
        }
        None
    }
}
