//! The causal (and sliding-window) attention mask.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// Additive f32 mask `[len, ctx]` for `len` queries at positions `start_pos .. start_pos + len`
/// over keys at positions `0 .. ctx`: 0 where the query may look, -inf elsewhere. A query at
/// position `p` sees key `j` when `j <= p` and, with a sliding window `w`, `j > p - w`.
///
/// # Errors
/// Candle errors when the tensor cannot be created on `device`.
pub fn causal_mask(
    len: usize,
    start_pos: usize,
    ctx: usize,
    sliding_window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let mut data = Vec::with_capacity(len * ctx);
    for i in 0..len {
        let p = start_pos + i;
        for j in 0..ctx {
            let visible = j <= p && sliding_window.is_none_or(|w| j + w > p);
            data.push(if visible { 0f32 } else { f32::NEG_INFINITY });
        }
    }
    Ok(Tensor::from_vec(data, (len, ctx), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_see_only_the_past_and_the_window() -> Result<()> {
        let m = causal_mask(2, 3, 5, None, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(m[0][..4], [0.0; 4]);
        assert!(m[0][4].is_infinite());
        assert_eq!(m[1], vec![0.0; 5]);
        let w = causal_mask(1, 4, 5, Some(2), &Device::Cpu)?.to_vec2::<f32>()?;
        assert!(w[0][..3].iter().all(|x| x.is_infinite()));
        assert_eq!(w[0][3..], [0.0, 0.0]);
        Ok(())
    }
}
