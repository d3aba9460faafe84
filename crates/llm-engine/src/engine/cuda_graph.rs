//! CUDA graphs over decode steps of 1 to [`MAX_GRAPH_BATCH`] sequences (vLLM captures its
//! decode steps the same way; `--enforce-eager` turns it off there and here).
//!
//! A batch-1 decode step of a 7B model is ~300 kernel launches. Launched one by one, the GPU
//! idles between them and, worse, between steps, while the host samples, schedules and
//! uploads the next step's inputs. A graph replays the whole step with one launch: the forward
//! pass and argmax for an all-greedy batch, the forward pass into a persistent logits buffer
//! otherwise (the engine samples from it, on the device for top-k, see `Engine::sample`).
//!
//! What makes a step replayable: every kernel reads its per-step data from the same device
//! addresses with the same launch arguments. [`BatchLayout::new_fixed`] writes the token ids,
//! positions and attention metadata into one persistent buffer per batch size (block tables
//! padded to the longest sequence the engine allows), and the sampled ids (or the logits) land
//! in a persistent output buffer. Everything else a step allocates is allocated and freed inside
//! the capture (stream-ordered allocations become graph nodes).
//!
//! Per batch size: the first step runs eagerly with candle's upload cache on (candle uploads
//! shape descriptors for some ops; a capture may only reuse cached ones), the second is
//! captured, then replayed, and every later step is a replay. A failed capture turns graphs
//! off for the engine (with a warning) and the step runs eagerly: never a wrong token.

use std::collections::HashMap;

use candle_core::cuda_backend::cudarc::driver::{sys, CudaGraph};
use candle_core::{DType, Device, Tensor};

use crate::error::{EngineError, Result};
use crate::models::{BatchLayout, CausalLm, FixedLayout, PagedKvStorage, SeqSlice};

/// Largest decode batch replayed from a graph: the row counts our GEMV kernel serves, so a
/// captured step holds only our kernels and candle's (no cuBLAS workspace in the graph).
pub const MAX_GRAPH_BATCH: usize = crate::cuda::gemv::MAX_ROWS;

/// What a captured step leaves behind.
pub(crate) enum GraphStep {
    /// The greedy ids of an all-greedy batch.
    Ids(Vec<u32>),
    /// The step's f32 logits `[batch, vocab]`, in the graph's persistent buffer (valid until
    /// the next replay of the same graph).
    Logits(Tensor),
}

/// One (batch size, greedy or not) step's buffers and graph.
struct Captured {
    /// The fixed layout's index data (u32).
    buffer: Tensor,
    /// The greedy ids, u32 `[batch]`, or the logits, f32 `[batch, vocab]`.
    output: Tensor,
    graph: Option<CudaGraph>,
    /// Whether an eager step has filled candle's upload cache for this shape.
    warmed: bool,
}

/// The decode graphs of one engine.
pub(crate) struct DecodeGraphs {
    /// Block-table width of every captured step (the longest sequence's blocks).
    max_blocks: usize,
    by_batch: HashMap<(usize, bool), Captured>,
    disabled: bool,
}

impl DecodeGraphs {
    /// Graphs for an engine whose sequences span at most `max_blocks` KV blocks.
    pub(crate) fn new(max_blocks: usize) -> Self {
        Self {
            max_blocks: max_blocks.max(1),
            by_batch: HashMap::new(),
            disabled: false,
        }
    }

    /// Whether `slices` form a step a graph can run: 1 to [`MAX_GRAPH_BATCH`] decodes (one
    /// new token each, all wanting logits) within the padded block-table width.
    pub(crate) fn applies(&self, slices: &[SeqSlice], block_size: usize) -> bool {
        !self.disabled
            && (1..=MAX_GRAPH_BATCH).contains(&slices.len())
            && slices.iter().all(|s| {
                s.token_ids.len() == 1
                    && s.want_logits
                    && (s.start_pos + 1).div_ceil(block_size) <= self.max_blocks
            })
    }

    /// Runs a step [`DecodeGraphs::applies`] to, its K/V written to the cache: the greedy next
    /// token of each slice when `greedy`, else the step's logits. `Ok(None)` when graphs were
    /// just turned off because a capture failed: nothing of the step ran, the caller runs it
    /// eagerly.
    ///
    /// # Errors
    /// Forward-pass and copy errors of the eager warm-up step, graph launch errors.
    pub(crate) fn run(
        &mut self,
        model: &dyn CausalLm,
        kv: &mut PagedKvStorage,
        slices: &[SeqSlice],
        greedy: bool,
    ) -> Result<Option<GraphStep>> {
        let device = model.device().clone();
        let Device::Cuda(cuda) = &device else {
            return Ok(None);
        };
        let batch = slices.len();
        let vocab = model.config().vocab_size;
        let entry = match self.by_batch.entry((batch, greedy)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Captured {
                buffer: Tensor::zeros(
                    FixedLayout::len(batch, self.max_blocks),
                    DType::U32,
                    &device,
                )?,
                output: if greedy {
                    Tensor::zeros(batch, DType::U32, &device)?
                } else {
                    Tensor::zeros((batch, vocab), DType::F32, &device)?
                },
                graph: None,
                warmed: false,
            }),
        };
        let fixed = FixedLayout {
            buffer: &entry.buffer,
            max_blocks: self.max_blocks,
        };
        // The upload happens here, outside any capture, into the persistent buffer.
        let layout = BatchLayout::new_fixed(slices, model.config(), kv, &fixed)?;
        if let Some(graph) = &entry.graph {
            graph.launch().map_err(graph_error)?;
            return Ok(Some(step_output(&entry.output, greedy)?));
        }
        let stream = cuda.cuda_stream();
        let _upload_cache = cuda.enable_cuda_graph_htod_cache();
        if !entry.warmed {
            step_into(model, &layout, kv, &entry.output, greedy)?;
            entry.warmed = true;
            return Ok(Some(step_output(&entry.output, greedy)?));
        }
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
            .map_err(graph_error)?;
        let recorded = step_into(model, &layout, kv, &entry.output, greedy);
        let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0));
        match (recorded, graph) {
            (Ok(()), Ok(Some(graph))) => {
                graph.launch().map_err(graph_error)?;
                entry.graph = Some(graph);
                tracing::debug!(batch, greedy, "captured a CUDA graph of the decode step");
                Ok(Some(step_output(&entry.output, greedy)?))
            }
            (recorded, graph) => {
                let why = match (recorded, graph) {
                    (Err(e), _) => e.to_string(),
                    (_, Err(e)) => e.to_string(),
                    _ => "the capture recorded nothing".to_string(),
                };
                tracing::warn!(
                    "CUDA graph capture of a batch-{batch} decode step failed ({why}); \
                     running decode steps eagerly from now on"
                );
                self.disabled = true;
                self.by_batch.clear();
                Ok(None)
            }
        }
    }
}

/// The step's forward pass, then its argmax (`greedy`) or its logits copied into `output`
/// (persistent).
fn step_into(
    model: &dyn CausalLm,
    layout: &BatchLayout<'_>,
    kv: &mut PagedKvStorage,
    output: &Tensor,
    greedy: bool,
) -> Result<()> {
    let logits = model.forward_layout(layout, kv)?;
    if greedy {
        output.slice_set(&crate::cuda::argmax_rows(&logits)?, 0, 0)?;
    } else {
        output.slice_set(&logits.to_dtype(DType::F32)?.contiguous()?, 0, 0)?;
    }
    Ok(())
}

/// What a step left in `output`: the ids on the host, or the logits buffer.
fn step_output(output: &Tensor, greedy: bool) -> Result<GraphStep> {
    Ok(if greedy {
        GraphStep::Ids(greedy_ids_to_host(output)?)
    } else {
        GraphStep::Logits(output.clone())
    })
}

/// The ids of a greedy step on the host; a row with no non-NaN logit is an error.
pub(super) fn greedy_ids_to_host(ids: &Tensor) -> Result<Vec<u32>> {
    let ids = ids.to_vec1::<u32>()?;
    match ids.iter().position(|&t| t == crate::cuda::NO_ARGMAX) {
        Some(row) => Err(EngineError::InvalidBatch(format!(
            "no finite logit in row {row} of the step"
        ))),
        None => Ok(ids),
    }
}

fn graph_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::CudaKernel {
        kernel: "decode step CUDA graph".into(),
        reason: e.to_string(),
    }
}
