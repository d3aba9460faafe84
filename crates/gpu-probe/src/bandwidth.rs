//! Theoretical memory bandwidth from the memory bus width and clock.

/// Theoretical peak memory bandwidth in GB/s (10^9 bytes/s):
/// bus width (bits) × memory clock (MHz) × 2 (double data rate) / 8 (bits per byte).
///
/// With NVML's figures this reproduces the datasheets: an H100 SXM (5,120-bit HBM3 at
/// 2,619 MHz) gives 3,352 GB/s (datasheet: 3.35 TB/s), a T4 (256-bit GDDR6 at 5,001 MHz)
/// 320 GB/s.
///
/// ```
/// let gb_s = gpu_probe::theoretical_bandwidth_gb_s(5120, 2619);
/// assert!((gb_s - 3352.32).abs() < 0.01);
/// ```
pub fn theoretical_bandwidth_gb_s(bus_width_bits: u32, memory_clock_mhz: u32) -> f64 {
    f64::from(bus_width_bits) * f64::from(memory_clock_mhz) * 1e6 * 2.0 / 8.0 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn reproduces_datasheet_bandwidths() {
        // (bus bits, NVML max memory clock MHz, datasheet GB/s, tolerance GB/s)
        let cases = [
            (5120, 2619, 3350.0, 5.0), // H100 SXM, HBM3
            (5120, 1215, 1555.0, 1.0), // A100 40GB, HBM2
            (5120, 1593, 2039.0, 1.0), // A100 80GB SXM, HBM2e
            (256, 5001, 320.0, 1.0),   // T4, GDDR6
            (192, 6251, 300.0, 1.0),   // L4, GDDR6
            (4096, 877, 900.0, 2.0),   // V100, HBM2
        ];
        for (bits, mhz, want, tol) in cases {
            let got = theoretical_bandwidth_gb_s(bits, mhz);
            assert!(
                close(got, want, tol),
                "{bits} bits @ {mhz} MHz: {got} vs {want}"
            );
        }
    }

    #[test]
    fn zero_inputs_give_zero_and_scale_linearly() {
        assert_eq!(theoretical_bandwidth_gb_s(0, 1000), 0.0);
        assert_eq!(theoretical_bandwidth_gb_s(1000, 0), 0.0);
        let one = theoretical_bandwidth_gb_s(64, 1000);
        assert!(close(one, 16.0, 1e-12));
        assert!(close(
            theoretical_bandwidth_gb_s(128, 1000),
            2.0 * one,
            1e-12
        ));
    }

    #[test]
    fn largest_inputs_do_not_overflow() {
        let v = theoretical_bandwidth_gb_s(u32::MAX, u32::MAX);
        assert!(v.is_finite() && v > 0.0);
    }
}
