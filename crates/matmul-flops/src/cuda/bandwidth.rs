//! GPU memory bandwidth: the copy engine, our NVRTC kernels, and host↔device transfers.
//!
//! Sources are filled on the device by `bw_fill` (word `w` = [`fill_word_value`]`(w, seed)`),
//! so every test can be verified on the host without moving the whole buffer: a copy is
//! checked at sampled positions, the read kernel's sum against [`expected_word_sum`], the
//! write kernel's pattern at sampled positions. Kernel grids are tuned per test (a few grid
//! sizes, fastest median kept) and reported.

use std::time::Instant;

use cudarc::driver::{CudaSlice, LaunchConfig, PinnedHostSlice, PushKernelArg};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::context::OpenDevice;
use super::events::EventTimer;
use super::kernels::Kernels;
use crate::bandwidth::{
    expected_word_sum, fill_word_value, BandwidthBackend, BandwidthTest, PreparedTransfer,
};
use crate::device::{ensure_fits, host_available_bytes, DeviceInfo};
use crate::error::{MatmulError, Result};

/// Threads per block of our kernels.
const BLOCK: u32 = 512;
/// Seed of the filled source buffers.
const SEED: u32 = 0x00C0_FFEE;
/// Positions (16-byte vectors) checked after a copy or a write.
const CHECKED_VECTORS: usize = 512;

/// Memory bandwidth of one CUDA device.
pub struct CudaBandwidthBackend {
    dev: OpenDevice,
    kernels: Kernels,
    timer: EventTimer,
}

impl CudaBandwidthBackend {
    /// Opens CUDA device `ordinal` and compiles our kernels with NVRTC.
    ///
    /// # Errors
    /// [`MatmulError::NoSuchDevice`]; driver or NVRTC failures.
    pub fn open(ordinal: usize) -> Result<Self> {
        let dev = OpenDevice::open(ordinal, "CUDA driver copies + NVRTC kernels")?;
        let kernels = Kernels::load(&dev.ctx, dev.compute_capability)?;
        let timer = EventTimer::new(dev.ctx.clone());
        Ok(Self {
            dev,
            kernels,
            timer,
        })
    }
}

fn device_buffers(test: BandwidthTest) -> u64 {
    match test {
        BandwidthTest::Copy | BandwidthTest::CopyKernel => 2,
        _ => 1,
    }
}

impl BandwidthBackend for CudaBandwidthBackend {
    fn device(&self) -> &DeviceInfo {
        &self.dev.info
    }

    fn ensure_fits(&self, test: BandwidthTest, buffer_bytes: u64) -> Result<()> {
        if !buffer_bytes.is_multiple_of(16) || buffer_bytes == 0 {
            return Err(MatmulError::InvalidSize(format!(
                "a GPU bandwidth buffer must be a positive multiple of 16 bytes, not {buffer_bytes}"
            )));
        }
        let what = format!("{test} over {} MiB", buffer_bytes >> 20);
        ensure_fits(
            &what,
            &self.dev.info.device,
            buffer_bytes.saturating_mul(device_buffers(test)),
            self.dev.free_bytes()?,
        )?;
        if !test.is_device_memory() {
            ensure_fits(&what, "host", buffer_bytes, host_available_bytes())?;
        }
        Ok(())
    }

    fn prepare<'a>(
        &'a mut self,
        test: BandwidthTest,
        buffer_bytes: u64,
    ) -> Result<Box<dyn PreparedTransfer + 'a>> {
        self.ensure_fits(test, buffer_bytes)?;
        self.dev.ctx.bind_to_thread()?;
        let bytes = usize::try_from(buffer_bytes)
            .map_err(|_| MatmulError::InvalidSize(format!("{buffer_bytes} bytes")))?;
        let stream = self.dev.stream.clone();
        let vectors = buffer_bytes / 16;
        let mut src = stream.alloc_zeros::<u8>(bytes)?;
        if !matches!(
            test,
            BandwidthTest::Write | BandwidthTest::H2dPinned | BandwidthTest::H2dPageable
        ) {
            let cfg = grid(self.dev.sm_count * 8);
            let mut launch = stream.launch_builder(&self.kernels.fill);
            launch.arg(&mut src).arg(&vectors).arg(&SEED);
            // SAFETY: bw_fill(uint4*, u64 n, u32 seed) writes n vectors; `src` holds n.
            unsafe { launch.launch(cfg) }?;
        }
        let dst = if device_buffers(test) == 2 {
            Some(stream.alloc_zeros::<u8>(bytes)?)
        } else {
            None
        };
        let host = match test {
            BandwidthTest::H2dPinned | BandwidthTest::D2hPinned => {
                // SAFETY: the pinned buffer is fully written below before anything reads it.
                let mut p = unsafe { self.dev.ctx.alloc_pinned_with_flags::<u8>(bytes, 0) }?;
                fill_host(p.as_mut_slice()?);
                HostBuffer::Pinned(p)
            }
            BandwidthTest::H2dPageable | BandwidthTest::D2hPageable => {
                let mut v = vec![0u8; bytes];
                fill_host(&mut v);
                HostBuffer::Pageable(v)
            }
            _ => HostBuffer::None,
        };
        let read_sum = stream.alloc_zeros::<u32>(1)?;
        stream.synchronize()?;
        let mut transfer = CudaTransfer {
            test,
            vectors,
            src,
            dst,
            host,
            read_sum,
            blocks: self.dev.sm_count * 4,
            backend: self,
        };
        transfer.tune_grid()?;
        Ok(Box::new(transfer))
    }
}

fn grid(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Fills a host buffer with the `bw_fill` pattern (on all cores).
fn fill_host(buf: &mut [u8]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = (buf.len() / 4).div_ceil(threads).max(1) * 4;
    std::thread::scope(|s| {
        for (c, part) in buf.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                let first_word = (c * chunk / 4) as u64;
                for (i, w) in part.chunks_exact_mut(4).enumerate() {
                    w.copy_from_slice(&fill_word_value(first_word + i as u64, SEED).to_le_bytes());
                }
            });
        }
    });
}

enum HostBuffer {
    None,
    Pinned(PinnedHostSlice<u8>),
    Pageable(Vec<u8>),
}

struct CudaTransfer<'a> {
    test: BandwidthTest,
    vectors: u64,
    src: CudaSlice<u8>,
    dst: Option<CudaSlice<u8>>,
    host: HostBuffer,
    read_sum: CudaSlice<u32>,
    blocks: u32,
    backend: &'a mut CudaBandwidthBackend,
}

impl CudaTransfer<'_> {
    /// The write kernel's pattern for pass value `v`, vector `_i`.
    fn write_pattern(v: u32) -> [u32; 4] {
        [v, v ^ 1, v ^ 2, v ^ 3]
    }

    /// Queues one pass of the device-side tests.
    fn launch_device(&mut self) -> Result<()> {
        let b = &mut *self.backend;
        let stream = b.dev.stream.clone();
        let cfg = grid(self.blocks);
        match self.test {
            BandwidthTest::Copy => {
                let dst = self.dst.as_mut().ok_or_else(missing_dst)?;
                stream.memcpy_dtod(&self.src, dst)?;
            }
            BandwidthTest::CopyKernel => {
                let dst = self.dst.as_mut().ok_or_else(missing_dst)?;
                let mut launch = stream.launch_builder(&b.kernels.copy);
                launch.arg(&self.src).arg(dst).arg(&self.vectors);
                // SAFETY: bw_copy(const uint4*, uint4*, u64 n); both buffers hold n vectors.
                unsafe { launch.launch(cfg) }?;
            }
            BandwidthTest::Read => {
                let mut launch = stream.launch_builder(&b.kernels.read);
                launch
                    .arg(&self.src)
                    .arg(&self.vectors)
                    .arg(&mut self.read_sum);
                // SAFETY: bw_read(const uint4*, u64 n, u32* out); `src` holds n vectors.
                unsafe { launch.launch(cfg) }?;
            }
            BandwidthTest::Write => {
                let value = SEED;
                let mut launch = stream.launch_builder(&b.kernels.write);
                launch.arg(&mut self.src).arg(&self.vectors).arg(&value);
                // SAFETY: bw_write(uint4*, u64 n, u32 value); `src` holds n vectors.
                unsafe { launch.launch(cfg) }?;
            }
            _ => {
                return Err(MatmulError::InvalidParameter(format!(
                    "{} is a host transfer",
                    self.test
                )))
            }
        }
        Ok(())
    }

    /// One host transfer, waited for.
    fn host_transfer(&mut self) -> Result<()> {
        let stream = self.backend.dev.stream.clone();
        match (&mut self.host, self.test) {
            (HostBuffer::Pinned(h), BandwidthTest::H2dPinned) => {
                stream.memcpy_htod(h, &mut self.src)?
            }
            (HostBuffer::Pageable(h), BandwidthTest::H2dPageable) => {
                stream.memcpy_htod(h, &mut self.src)?
            }
            (HostBuffer::Pinned(h), BandwidthTest::D2hPinned) => {
                stream.memcpy_dtoh(&self.src, h)?
            }
            (HostBuffer::Pageable(h), BandwidthTest::D2hPageable) => {
                stream.memcpy_dtoh(&self.src, h)?
            }
            _ => {
                return Err(MatmulError::InvalidParameter(format!(
                    "{} is not a host transfer",
                    self.test
                )))
            }
        }
        stream.synchronize()?;
        Ok(())
    }

    /// Times a few grid sizes for our kernels and keeps the fastest.
    fn tune_grid(&mut self) -> Result<()> {
        if !matches!(
            self.test,
            BandwidthTest::CopyKernel | BandwidthTest::Read | BandwidthTest::Write
        ) {
            return Ok(());
        }
        let sms = self.backend.dev.sm_count;
        let mut best = (f64::INFINITY, self.blocks);
        for per_sm in [2u32, 4, 8, 16, 32] {
            self.blocks = sms * per_sm;
            let mut t = self.time_device(4)?;
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            tracing::debug!(test = %self.test, blocks = self.blocks, median_ms = median, "grid");
            if median < best.0 {
                best = (median, self.blocks);
            }
        }
        self.blocks = best.1;
        Ok(())
    }

    fn time_device(&mut self, count: usize) -> Result<Vec<f64>> {
        // The timer lives in the backend; take it out while this transfer launches.
        let mut timer = std::mem::replace(
            &mut self.backend.timer,
            EventTimer::new(self.backend.dev.ctx.clone()),
        );
        let stream = self.backend.dev.stream.clone();
        let result = timer.time(&stream, count, || Ok(()), |_| self.launch_device());
        self.backend.timer = timer;
        result
    }

    fn fail(&self, detail: String) -> MatmulError {
        MatmulError::TransferCheckFailed {
            test: self.test.name().into(),
            detail,
        }
    }

    /// Sampled vector indices, always including the first and the last.
    fn sampled_vectors(&self) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(u64::from(SEED));
        let mut v: Vec<u64> = (0..CHECKED_VECTORS)
            .map(|_| rng.random_range(0..self.vectors))
            .collect();
        v.push(0);
        v.push(self.vectors - 1);
        v
    }

    /// The 4 words of vector `i` of a device buffer.
    fn device_vector(&self, buf: &CudaSlice<u8>, i: u64) -> Result<[u32; 4]> {
        let stream = self.backend.dev.stream.clone();
        let start = (i * 16) as usize;
        let bytes = stream.clone_dtoh(&buf.slice(start..start + 16))?;
        Ok(words4(&bytes))
    }
}

fn missing_dst() -> MatmulError {
    MatmulError::InvalidParameter("copy without a destination buffer".into())
}

fn words4(b: &[u8]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    [w(0), w(1), w(2), w(3)]
}

fn expected_vector(i: u64) -> [u32; 4] {
    let w = i * 4;
    [0, 1, 2, 3].map(|o| fill_word_value(w + o, SEED))
}

impl PreparedTransfer for CudaTransfer<'_> {
    fn label(&self) -> String {
        match self.test {
            BandwidthTest::Copy => "cuMemcpyDtoDAsync".into(),
            BandwidthTest::CopyKernel | BandwidthTest::Read | BandwidthTest::Write => format!(
                "NVRTC {} kernel, {} blocks x {BLOCK} threads, 16-byte vectors",
                self.test, self.blocks
            ),
            BandwidthTest::H2dPinned | BandwidthTest::D2hPinned => {
                "cuMemcpy from/to page-locked host memory, wall clock".into()
            }
            BandwidthTest::H2dPageable | BandwidthTest::D2hPageable => {
                "cuMemcpy from/to pageable host memory, wall clock".into()
            }
        }
    }

    fn verify(&mut self) -> Result<()> {
        let stream = self.backend.dev.stream.clone();
        match self.test {
            BandwidthTest::Copy | BandwidthTest::CopyKernel => {
                if let Some(dst) = self.dst.as_mut() {
                    stream.memset_zeros(dst)?;
                }
                self.launch_device()?;
                stream.synchronize()?;
                let dst = self.dst.as_ref().ok_or_else(missing_dst)?;
                for i in self.sampled_vectors() {
                    if self.device_vector(dst, i)? != expected_vector(i) {
                        return Err(self.fail(format!("vector {i} was not copied")));
                    }
                }
            }
            BandwidthTest::Read => {
                stream.memset_zeros(&mut self.read_sum)?;
                self.launch_device()?;
                let got = stream.clone_dtoh(&self.read_sum)?;
                let want = expected_word_sum(self.vectors * 4, SEED);
                if got.first() != Some(&want) {
                    return Err(self.fail(format!("sum {got:x?}, expected {want:#x}")));
                }
            }
            BandwidthTest::Write => {
                stream.memset_zeros(&mut self.src)?;
                self.launch_device()?;
                stream.synchronize()?;
                for i in self.sampled_vectors() {
                    if self.device_vector(&self.src, i)? != Self::write_pattern(SEED) {
                        return Err(self.fail(format!("vector {i} was not written")));
                    }
                }
            }
            BandwidthTest::H2dPinned | BandwidthTest::H2dPageable => {
                stream.memset_zeros(&mut self.src)?;
                self.host_transfer()?;
                for i in self.sampled_vectors() {
                    if self.device_vector(&self.src, i)? != expected_vector(i) {
                        return Err(self.fail(format!("vector {i} did not arrive")));
                    }
                }
            }
            BandwidthTest::D2hPinned | BandwidthTest::D2hPageable => {
                match &mut self.host {
                    HostBuffer::Pinned(p) => p.as_mut_slice()?.fill(0),
                    HostBuffer::Pageable(v) => v.fill(0),
                    HostBuffer::None => {}
                }
                self.host_transfer()?;
                let host: &[u8] = match &self.host {
                    HostBuffer::Pinned(p) => p.as_slice()?,
                    HostBuffer::Pageable(v) => v,
                    HostBuffer::None => &[],
                };
                for i in self.sampled_vectors() {
                    let s = (i * 16) as usize;
                    if host.get(s..s + 16).map(words4) != Some(expected_vector(i)) {
                        return Err(self.fail(format!("vector {i} did not arrive")));
                    }
                }
            }
        }
        Ok(())
    }

    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>> {
        if self.test.is_device_memory() {
            return self.time_device(count);
        }
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            self.host_transfer()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(times)
    }
}
