//! Memory bandwidth: copy, read-only and write-only passes over a buffer, and host↔device
//! transfers, each verified before it is timed.
//!
//! | test | GPU | CPU | bytes counted per pass |
//! |---|---|---|---|
//! | `copy` | `cuMemcpyDtoDAsync` | `copy_from_slice`, all cores | read + written (2 × size) |
//! | `copy_kernel` | our NVRTC kernel (16-byte vectors) | — | read + written (2 × size) |
//! | `read` | our read-only kernel (sum reduction) | summing loop, all cores | read (size) |
//! | `write` | our write-only kernel | `fill`, all cores | written (size) |
//! | `h2d_pinned`, `h2d_pageable` | host→device copy | — | transferred (size) |
//! | `d2h_pinned`, `d2h_pageable` | device→host copy | — | transferred (size) |
//!
//! GB/s are decimal (10⁹ bytes per second), as torch_peers.py reports them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::{BenchDevice, DeviceInfo};
use crate::error::{MatmulError, Result};

/// Buffer size a GPU bandwidth run uses by default (the 2 GiB of `torch_peers.py copy`).
pub const DEFAULT_GPU_BUFFER_MIB: u64 = 2048;

/// Buffer size a CPU bandwidth run uses by default.
pub const DEFAULT_CPU_BUFFER_MIB: u64 = 256;

/// One bandwidth test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandwidthTest {
    /// The copy engine (GPU) or `memcpy` (CPU): every byte read once and written once.
    Copy,
    /// Our own copy kernel (GPU).
    CopyKernel,
    /// Our read-only kernel or loop.
    Read,
    /// Our write-only kernel or loop.
    Write,
    /// Host→device from page-locked memory.
    H2dPinned,
    /// Host→device from ordinary (pageable) memory.
    H2dPageable,
    /// Device→host into page-locked memory.
    D2hPinned,
    /// Device→host into ordinary (pageable) memory.
    D2hPageable,
}

/// How the bytes of a test are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BytesCounted {
    /// Bytes read plus bytes written (a copy of S bytes counts 2·S).
    ReadPlusWritten,
    /// Bytes read.
    Read,
    /// Bytes written.
    Written,
    /// Bytes moved across the host↔device link.
    Transferred,
}

impl BandwidthTest {
    /// Every test, in report order.
    pub const ALL: [BandwidthTest; 8] = [
        BandwidthTest::Copy,
        BandwidthTest::CopyKernel,
        BandwidthTest::Read,
        BandwidthTest::Write,
        BandwidthTest::H2dPinned,
        BandwidthTest::H2dPageable,
        BandwidthTest::D2hPinned,
        BandwidthTest::D2hPageable,
    ];

    /// The snake_case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            BandwidthTest::Copy => "copy",
            BandwidthTest::CopyKernel => "copy_kernel",
            BandwidthTest::Read => "read",
            BandwidthTest::Write => "write",
            BandwidthTest::H2dPinned => "h2d_pinned",
            BandwidthTest::H2dPageable => "h2d_pageable",
            BandwidthTest::D2hPinned => "d2h_pinned",
            BandwidthTest::D2hPageable => "d2h_pageable",
        }
    }

    /// How this test counts bytes.
    pub fn counting(self) -> BytesCounted {
        match self {
            BandwidthTest::Copy | BandwidthTest::CopyKernel => BytesCounted::ReadPlusWritten,
            BandwidthTest::Read => BytesCounted::Read,
            BandwidthTest::Write => BytesCounted::Written,
            _ => BytesCounted::Transferred,
        }
    }

    /// Bytes one pass over a buffer of `buffer_bytes` counts.
    pub fn bytes_counted(self, buffer_bytes: u64) -> u64 {
        match self.counting() {
            BytesCounted::ReadPlusWritten => buffer_bytes.saturating_mul(2),
            _ => buffer_bytes,
        }
    }

    /// Whether the test runs within device memory (its peak is the memory bandwidth), as
    /// opposed to over the host link.
    pub fn is_device_memory(self) -> bool {
        matches!(
            self,
            BandwidthTest::Copy
                | BandwidthTest::CopyKernel
                | BandwidthTest::Read
                | BandwidthTest::Write
        )
    }

    /// The tests a device runs: all eight on a GPU, `copy`, `read`, `write` on the CPU.
    pub fn for_device(device: BenchDevice) -> Vec<BandwidthTest> {
        match device {
            BenchDevice::Cpu => vec![
                BandwidthTest::Copy,
                BandwidthTest::Read,
                BandwidthTest::Write,
            ],
            BenchDevice::Cuda(_) => BandwidthTest::ALL.to_vec(),
        }
    }
}

impl fmt::Display for BandwidthTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BandwidthTest {
    type Err = MatmulError;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        BandwidthTest::ALL
            .into_iter()
            .find(|b| b.name() == t)
            .ok_or_else(|| {
                MatmulError::InvalidParameter(format!(
                    "unknown bandwidth test '{s}' (expected one of: {})",
                    BandwidthTest::ALL.map(|b| b.name()).join(", ")
                ))
            })
    }
}

/// A memory-bandwidth engine on one device.
pub trait BandwidthBackend {
    /// The device this backend runs on.
    fn device(&self) -> &DeviceInfo;

    /// Fails early if `test` cannot run or its buffers do not fit.
    ///
    /// # Errors
    /// [`MatmulError::InvalidParameter`] for a test this device does not have,
    /// [`MatmulError::InsufficientMemory`] when the buffers do not fit.
    fn ensure_fits(&self, test: BandwidthTest, buffer_bytes: u64) -> Result<()>;

    /// Allocates and fills the buffers of `test`.
    ///
    /// # Errors
    /// As `ensure_fits`, plus device failures.
    fn prepare<'a>(
        &'a mut self,
        test: BandwidthTest,
        buffer_bytes: u64,
    ) -> Result<Box<dyn PreparedTransfer + 'a>>;
}

/// A bandwidth test with its buffers allocated, ready to verify and time.
pub trait PreparedTransfer {
    /// What runs (`cuMemcpyDtoDAsync`, `copy kernel: 1056 blocks x 512 threads`).
    fn label(&self) -> String;

    /// Runs one pass and checks that the right bytes arrived (or were read).
    ///
    /// # Errors
    /// [`MatmulError::TransferCheckFailed`] when the bytes are wrong (an error, never a
    /// number), or a device failure.
    fn verify(&mut self) -> Result<()>;

    /// Runs `count` passes and returns the milliseconds of each.
    ///
    /// # Errors
    /// Device failures.
    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>>;
}

/// Opens the bandwidth backend of `device`.
///
/// # Errors
/// [`MatmulError::NotCompiledWithCuda`] for a CUDA device in a build without the `cuda`
/// feature; [`MatmulError::NoSuchDevice`]; driver errors.
pub fn open_bandwidth_backend(device: BenchDevice) -> Result<Box<dyn BandwidthBackend>> {
    match device {
        BenchDevice::Cpu => Ok(Box::new(crate::cpu::CpuBandwidthBackend::new())),
        BenchDevice::Cuda(ordinal) => open_cuda_bandwidth(ordinal),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda_bandwidth(ordinal: usize) -> Result<Box<dyn BandwidthBackend>> {
    Ok(Box::new(crate::cuda::CudaBandwidthBackend::open(ordinal)?))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda_bandwidth(_ordinal: usize) -> Result<Box<dyn BandwidthBackend>> {
    Err(MatmulError::NotCompiledWithCuda)
}

/// The value of 32-bit word `w` of a buffer filled by the GPU's `bw_fill` kernel with `seed`
/// (`kernels/bandwidth.cu`; a murmur3 finaliser), so the host can verify what the GPU moved.
pub fn fill_word_value(w: u64, seed: u32) -> u32 {
    let mut h = (w as u32) ^ ((w >> 32) as u32).wrapping_mul(0x9E37_79B9) ^ seed;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h
}

/// The wrapping (mod 2³²) sum of the first `words` words of a `bw_fill` buffer: what the
/// GPU's read kernel must report. Runs on all cores.
pub fn expected_word_sum(words: u64, seed: u32) -> u32 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per = words.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let (lo, hi) = (t * per, ((t + 1) * per).min(words));
                    (lo..hi).fold(0u32, |a, w| a.wrapping_add(fill_word_value(w, seed)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0u32, u32::wrapping_add)
    })
}

/// Converts a MiB count from the command line to bytes.
///
/// # Errors
/// [`MatmulError::InvalidSize`] for 0 or a size past 2⁴⁰ MiB.
pub fn mib_to_bytes(mib: u64) -> Result<u64> {
    if mib == 0 {
        return Err(MatmulError::InvalidSize(
            "a buffer of 0 MiB moves nothing; --size-mib must be at least 1".into(),
        ));
    }
    mib.checked_mul(1 << 20)
        .filter(|b| *b <= (1u64 << 60))
        .ok_or_else(|| MatmulError::InvalidSize(format!("{mib} MiB is not a buffer size")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_count_read_plus_written() {
        assert_eq!(BandwidthTest::Copy.bytes_counted(100), 200);
        assert_eq!(BandwidthTest::CopyKernel.bytes_counted(100), 200);
        assert_eq!(BandwidthTest::Read.bytes_counted(100), 100);
        assert_eq!(BandwidthTest::H2dPinned.bytes_counted(100), 100);
    }

    #[test]
    fn fill_values_match_the_kernel_formula() {
        // reference values from an independent (Python) implementation of the same formula
        assert_eq!(fill_word_value(0, 0), 0);
        assert_eq!(fill_word_value(1, 0), 0x514E_28B7); // murmur3 fmix32(1)
        assert_eq!(fill_word_value(0, 7), 0x18C9_AEC4);
        assert_eq!(fill_word_value((5 << 32) | 3, 0xABCD), 0x5900_3360);
        assert_eq!(expected_word_sum(1000, 42), 0xF69F_F223);
        assert_eq!(expected_word_sum(0, 42), 0);
    }

    #[test]
    fn names_round_trip_and_sizes_are_checked() {
        for t in BandwidthTest::ALL {
            assert_eq!(t.name().parse::<BandwidthTest>().ok(), Some(t));
        }
        assert!("sideways".parse::<BandwidthTest>().is_err());
        assert!(mib_to_bytes(0).is_err());
        assert_eq!(mib_to_bytes(2).ok(), Some(2 << 20));
        assert!(mib_to_bytes(u64::MAX).is_err());
        assert_eq!(BandwidthTest::for_device(BenchDevice::Cpu).len(), 3);
    }
}
