//! The GEMMs of one transformer layer, so decode (few tokens) and prefill (many tokens)
//! GEMMs are measured rather than guessed from a square sweep.
//!
//! | GEMM       | M (tokens) | K                     | N                                  |
//! |------------|------------|-----------------------|------------------------------------|
//! | `qkv`      | T          | hidden                | (heads + 2·kv_heads) · head_dim    |
//! | `attn_out` | T          | heads · head_dim      | hidden                             |
//! | `mlp_up`   | T          | hidden                | intermediate                       |
//! | `mlp_gate` | T          | hidden                | intermediate (gated MLPs: SwiGLU)  |
//! | `mlp_down` | T          | intermediate          | hidden                             |
//! | `lm_head`  | T          | hidden                | vocab                              |

use serde::{Deserialize, Serialize};

use crate::error::{MatmulError, Result};
use crate::shape::{GemmProblem, GemmShape};

/// Token counts a model-shape sweep uses when none are given: decode (1, 8, 64 sequences in a
/// batch) to prefill (512 to 8192 prompt tokens).
pub const DEFAULT_TOKEN_COUNTS: [usize; 6] = [1, 8, 64, 512, 2048, 8192];

/// The dimensions of a decoder-only transformer that fix its GEMM shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerDims {
    /// Model name, used in the GEMM labels (`llama-3-8b`).
    pub name: String,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` with grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size (the LM head's output width).
    pub vocab: usize,
    /// Whether the MLP is gated (Llama's SwiGLU: separate gate and up projections).
    pub gated_mlp: bool,
}

impl TransformerDims {
    /// The GEMMs one layer (plus the LM head) runs for `tokens` tokens in flight, in layer order.
    ///
    /// # Errors
    /// [`MatmulError::InvalidSize`] if `tokens` or a model dimension is 0.
    pub fn layer_gemms(&self, tokens: usize) -> Result<Vec<GemmProblem>> {
        if self.heads == 0 || self.kv_heads == 0 || self.head_dim == 0 {
            return Err(MatmulError::InvalidSize(format!(
                "model {}: heads, kv_heads and head_dim must be at least 1",
                self.name
            )));
        }
        let q_width = self.heads * self.head_dim;
        let qkv_width = (self.heads + 2 * self.kv_heads) * self.head_dim;
        let mut layers = vec![
            ("qkv", GemmShape::new(tokens, qkv_width, self.hidden)?),
            ("attn_out", GemmShape::new(tokens, self.hidden, q_width)?),
            (
                "mlp_up",
                GemmShape::new(tokens, self.intermediate, self.hidden)?,
            ),
        ];
        if self.gated_mlp {
            layers.push((
                "mlp_gate",
                GemmShape::new(tokens, self.intermediate, self.hidden)?,
            ));
        }
        layers.push((
            "mlp_down",
            GemmShape::new(tokens, self.hidden, self.intermediate)?,
        ));
        layers.push(("lm_head", GemmShape::new(tokens, self.vocab, self.hidden)?));
        Ok(layers
            .into_iter()
            .map(|(layer, shape)| GemmProblem {
                label: format!("{} {layer}", self.name),
                tokens: Some(tokens),
                shape,
            })
            .collect())
    }

    /// The layer GEMMs for every token count, token count major.
    ///
    /// # Errors
    /// As [`TransformerDims::layer_gemms`].
    pub fn sweep(&self, token_counts: &[usize]) -> Result<Vec<GemmProblem>> {
        let mut out = Vec::new();
        for &t in token_counts {
            out.extend(self.layer_gemms(t)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama3_8b() -> TransformerDims {
        TransformerDims {
            name: "llama-3-8b".into(),
            hidden: 4096,
            intermediate: 14336,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            vocab: 128_256,
            gated_mlp: true,
        }
    }

    #[test]
    fn llama3_shapes_match_the_model() {
        let g = llama3_8b().layer_gemms(1).unwrap();
        let names: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            names,
            [
                "llama-3-8b qkv",
                "llama-3-8b attn_out",
                "llama-3-8b mlp_up",
                "llama-3-8b mlp_gate",
                "llama-3-8b mlp_down",
                "llama-3-8b lm_head"
            ]
        );
        // GQA: 32 query heads + 2 x 8 kv heads of 128 = 6144
        assert_eq!(g[0].shape, GemmShape::new(1, 6144, 4096).unwrap());
        assert_eq!(g[4].shape, GemmShape::new(1, 4096, 14336).unwrap());
        assert_eq!(g[5].shape.n, 128_256);
    }

    #[test]
    fn ungated_mlp_has_no_gate_and_sweep_multiplies() {
        let mut d = llama3_8b();
        d.gated_mlp = false;
        let g = d.sweep(&[1, 512]).unwrap();
        assert_eq!(g.len(), 10);
        assert!(g.iter().all(|p| !p.label.ends_with("mlp_gate")));
        assert_eq!(g[5].tokens, Some(512));
        assert!(d.layer_gemms(0).is_err());
    }
}
