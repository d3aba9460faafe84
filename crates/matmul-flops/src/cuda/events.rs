//! Timing launches with CUDA events recorded on the stream, between consecutive launches.

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};

use crate::error::Result;

/// A reusable pool of timing events: a batch of `n` launches uses `n + 1` events, one before
/// the first launch and one after each, so launch `i` is timed from event `i` to `i + 1`.
pub(crate) struct EventTimer {
    ctx: Arc<CudaContext>,
    events: Vec<CudaEvent>,
}

impl EventTimer {
    pub(crate) fn new(ctx: Arc<CudaContext>) -> Self {
        Self {
            ctx,
            events: Vec::new(),
        }
    }

    /// Queues `before` (untimed, e.g. the spin kernel), then `count` launches of `launch(i)`
    /// with events between them, waits, and returns each launch's milliseconds.
    pub(crate) fn time<B, F>(
        &mut self,
        stream: &Arc<CudaStream>,
        count: usize,
        before: B,
        mut launch: F,
    ) -> Result<Vec<f64>>
    where
        B: FnOnce() -> Result<()>,
        F: FnMut(usize) -> Result<()>,
    {
        while self.events.len() < count + 1 {
            self.events
                .push(self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?);
        }
        before()?;
        self.events[0].record(stream)?;
        for i in 0..count {
            launch(i)?;
            self.events[i + 1].record(stream)?;
        }
        stream.synchronize()?;
        let mut times = Vec::with_capacity(count);
        for i in 0..count {
            times.push(f64::from(self.events[i].elapsed_ms(&self.events[i + 1])?));
        }
        Ok(times)
    }
}
