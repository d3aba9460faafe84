//! CPU memory bandwidth: `memcpy`, a summing read and a `fill` write, split over all cores.

use std::time::Instant;

use crate::bandwidth::{BandwidthBackend, BandwidthTest, PreparedTransfer};
use crate::device::{ensure_fits, host_available_bytes, DeviceInfo};
use crate::error::{MatmulError, Result};

/// Memory bandwidth of the host, on all cores.
#[derive(Debug, Clone)]
pub struct CpuBandwidthBackend {
    info: DeviceInfo,
}

impl Default for CpuBandwidthBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBandwidthBackend {
    /// The backend for this host.
    pub fn new() -> Self {
        Self {
            info: super::cpu_device_info("std (copy_from_slice / sum / fill), scoped threads"),
        }
    }
}

fn buffers_needed(test: BandwidthTest, buffer_bytes: u64) -> u64 {
    match test {
        BandwidthTest::Copy => buffer_bytes.saturating_mul(2),
        _ => buffer_bytes,
    }
}

impl BandwidthBackend for CpuBandwidthBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn ensure_fits(&self, test: BandwidthTest, buffer_bytes: u64) -> Result<()> {
        if !BandwidthTest::for_device(crate::device::BenchDevice::Cpu).contains(&test) {
            return Err(MatmulError::InvalidParameter(format!(
                "bandwidth test '{test}' needs a GPU (the CPU runs copy, read, write)"
            )));
        }
        ensure_fits(
            &format!("{test} over {} MiB", buffer_bytes >> 20),
            "cpu",
            buffers_needed(test, buffer_bytes),
            host_available_bytes(),
        )
    }

    fn prepare<'a>(
        &'a mut self,
        test: BandwidthTest,
        buffer_bytes: u64,
    ) -> Result<Box<dyn PreparedTransfer + 'a>> {
        self.ensure_fits(test, buffer_bytes)?;
        let words = usize::try_from(buffer_bytes / 8)
            .ok()
            .filter(|&w| w > 0)
            .ok_or_else(|| {
                MatmulError::InvalidSize(format!("{buffer_bytes} bytes is not a CPU buffer size"))
            })?;
        let src: Vec<u64> = (0..words as u64).map(word_pattern).collect();
        let dst = if test == BandwidthTest::Copy {
            vec![0u64; words]
        } else {
            Vec::new()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Box::new(CpuTransfer {
            test,
            src,
            dst,
            threads,
            pass: 0,
        }))
    }
}

/// The value of word `i` of a source buffer (a SplitMix64 finaliser: every word different).
pub(crate) fn word_pattern(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct CpuTransfer {
    test: BandwidthTest,
    src: Vec<u64>,
    dst: Vec<u64>,
    threads: usize,
    pass: u64,
}

impl CpuTransfer {
    fn chunk(&self) -> usize {
        self.src.len().div_ceil(self.threads).max(1)
    }

    /// One pass; returns the read sum for `Read`, 0 otherwise.
    fn run_pass(&mut self) -> u64 {
        let chunk = self.chunk();
        self.pass += 1;
        match self.test {
            BandwidthTest::Copy => {
                std::thread::scope(|s| {
                    for (d, src) in self.dst.chunks_mut(chunk).zip(self.src.chunks(chunk)) {
                        s.spawn(move || d.copy_from_slice(src));
                    }
                });
                0
            }
            BandwidthTest::Write => {
                let value = word_pattern(self.pass ^ 0xABCD);
                std::thread::scope(|s| {
                    for d in self.src.chunks_mut(chunk) {
                        s.spawn(move || d.fill(value));
                    }
                });
                0
            }
            _ => std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .src
                    .chunks(chunk)
                    .map(|c| s.spawn(move || sum_words(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .fold(0u64, u64::wrapping_add)
            }),
        }
    }
}

/// Wrapping sum of `words` with four independent accumulators (so it runs at memory speed).
fn sum_words(words: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let mut it = words.chunks_exact(4);
    for c in it.by_ref() {
        for l in 0..4 {
            acc[l] = acc[l].wrapping_add(c[l]);
        }
    }
    let tail = it.remainder().iter().fold(0u64, |a, &w| a.wrapping_add(w));
    acc.iter().fold(tail, |a, &w| a.wrapping_add(w))
}

impl PreparedTransfer for CpuTransfer {
    fn label(&self) -> String {
        let what = match self.test {
            BandwidthTest::Copy => "copy_from_slice",
            BandwidthTest::Write => "slice fill",
            _ => "u64 sum, 4 accumulators",
        };
        format!("{what}, {} threads", self.threads)
    }

    fn verify(&mut self) -> Result<()> {
        let name = self.test.name();
        let fail = move |detail: String| MatmulError::TransferCheckFailed {
            test: name.into(),
            detail,
        };
        match self.test {
            BandwidthTest::Copy => {
                self.dst.fill(0);
                self.run_pass();
                if let Some(i) = (0..self.src.len()).find(|&i| self.dst[i] != self.src[i]) {
                    return Err(fail(format!("word {i} was not copied")));
                }
            }
            BandwidthTest::Write => {
                self.run_pass();
                let want = word_pattern(self.pass ^ 0xABCD);
                if let Some(i) = self.src.iter().position(|&w| w != want) {
                    return Err(fail(format!("word {i} was not written")));
                }
            }
            _ => {
                let want = self.src.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                let got = self.run_pass();
                if got != want {
                    return Err(fail(format!("sum {got:#x}, expected {want:#x}")));
                }
            }
        }
        Ok(())
    }

    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            let sum = self.run_pass();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(sum);
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cpu_test_verifies_and_times() {
        let mut b = CpuBandwidthBackend::new();
        for test in BandwidthTest::for_device(crate::device::BenchDevice::Cpu) {
            let mut t = b.prepare(test, 1 << 20).unwrap();
            t.verify().unwrap();
            assert_eq!(t.time_launches(2).unwrap().len(), 2);
        }
    }

    #[test]
    fn gpu_tests_and_huge_buffers_are_refused() {
        let b = CpuBandwidthBackend::new();
        assert!(b.ensure_fits(BandwidthTest::H2dPinned, 1 << 20).is_err());
        let e = b.ensure_fits(BandwidthTest::Copy, 1 << 60).unwrap_err();
        assert!(matches!(e, MatmulError::InsufficientMemory { .. }));
    }

    #[test]
    fn sum_matches_a_plain_fold() {
        let w: Vec<u64> = (0..1003).map(word_pattern).collect();
        let plain = w.iter().fold(0u64, |a, &x| a.wrapping_add(x));
        assert_eq!(sum_words(&w), plain);
    }
}
