//! Dummy weights: seeded random tensors of the right shapes, made without any file.

use candle_core::{DType, Device, Tensor};

use super::{Init, WeightSource};
use crate::error::Result;

/// Standard deviation of the dummy weights (GPT-2 / Llama initialiser range).
const DUMMY_STD: f32 = 0.02;

/// Random weights: each tensor is a deterministic function of `(seed, tensor name)`, so a
/// model's dummy weights are the same at every load, whatever order tensors are asked in.
///
/// On the CPU the values come from a SplitMix64 stream, each value the sum of four 16-bit
/// uniforms rescaled (an Irwin–Hall approximation of a normal, std 0.02): fast enough for
/// multi-billion-parameter presets. On a GPU they are drawn on the device with candle's seeded
/// normal generator (no host copy).
#[derive(Debug, Clone)]
pub struct DummyWeights {
    seed: u64,
    dtype: DType,
    device: Device,
}

impl DummyWeights {
    /// A dummy source producing `dtype` tensors on `device`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            seed,
            dtype,
            device: device.clone(),
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of the name mixed with the seed: one independent stream per tensor.
fn stream_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    let mut s = h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    splitmix64(&mut s)
}

/// Values per independently seeded chunk: the output does not depend on the thread count.
const CHUNK: usize = 1 << 20;

/// Fills `out` with approximately normal values of standard deviation `std`.
fn fill_normal(out: &mut [f32], std: f32, seed: u64) {
    // Sum of 4 U(0,1): mean 2, variance 1/3.
    let scale = std * 3f32.sqrt() / 65536.0;
    let mut state = seed;
    for x in out {
        let r = splitmix64(&mut state);
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        *x = (sum as f32 - 2.0 * 65536.0) * scale;
    }
}

/// `n` approximately normal values with standard deviation `std`, generated on all cores in
/// chunks of [`CHUNK`] values, chunk `i` seeded from `(seed, i)`.
fn host_normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunks: Vec<(usize, &mut [f32])> = out.chunks_mut(CHUNK).enumerate().collect();
    let per_thread = chunks.len().div_ceil(threads).max(1);
    let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
    let mut it = chunks.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        for group in groups {
            scope.spawn(move || {
                for (i, chunk) in group {
                    let mut s = seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407);
                    fill_normal(chunk, std, splitmix64(&mut s));
                }
            });
        }
    });
    out
}

impl WeightSource for DummyWeights {
    fn has(&self, _name: &str) -> bool {
        true
    }

    fn load(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let t = match init {
            Init::Ones => Tensor::ones(shape, self.dtype, &self.device)?,
            Init::Zeros => Tensor::zeros(shape, self.dtype, &self.device)?,
            Init::Normal if self.device.is_cpu() => {
                let n = shape.iter().product();
                let data = host_normal(n, DUMMY_STD, stream_seed(self.seed, name));
                Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?
            }
            Init::Normal => {
                self.device.set_seed(stream_seed(self.seed, name))?;
                Tensor::randn(0f32, DUMMY_STD, shape, &self.device)?.to_dtype(self.dtype)?
            }
        };
        Ok(t)
    }

    fn load_transposed(&self, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        // Random either way: draw the transposed layout directly, no copy.
        self.load(name, &[shape[1], shape[0]], Init::Normal)
    }

    fn describe(&self) -> String {
        format!("dummy weights (seed {})", self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_normal_has_the_requested_spread_and_is_deterministic() {
        let a = host_normal(100_000, 0.02, 7);
        let b = host_normal(100_000, 0.02, 7);
        let c = host_normal(100_000, 0.02, 8);
        // Chunked generation: long tensors differ chunk to chunk too.
        let long = host_normal(3 * CHUNK + 5, 0.02, 7);
        assert_eq!(long[..100], a[..100]);
        assert_ne!(long[CHUNK..CHUNK + 100], long[..100]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 5e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 5e-4, "std {}", var.sqrt());
    }

    #[test]
    fn each_tensor_name_gets_its_own_values() -> Result<()> {
        let w = DummyWeights::new(1, DType::F32, &Device::Cpu);
        let a = w
            .load("a.weight", &[4, 4], Init::Normal)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let a2 = w
            .load("a.weight", &[4, 4], Init::Normal)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = w
            .load("b.weight", &[4, 4], Init::Normal)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(a, a2);
        assert_ne!(a, b);
        let ones = w.load("n.weight", &[3], Init::Ones)?.to_vec1::<f32>()?;
        assert_eq!(ones, vec![1.0; 3]);
        Ok(())
    }
}
