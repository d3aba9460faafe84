//! FP8 E4M3 (the `float8_e4m3fn` of torch and CUDA's `__nv_fp8_e4m3`): encoding and decoding.
//!
//! Layout: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits. No infinities; the only NaN
//! codes are `S.1111.111`; the largest finite magnitude is 448; subnormals are `m/8 · 2^-6`.
//! Encoding rounds to nearest, ties to even, and saturates at ±448 (what a scaled FP8 GEMM
//! wants; the benchmark's inputs never come near it).

/// Number of finite non-negative codes (`0x00..=0x7E`).
const FINITE_POSITIVE_CODES: u8 = 0x7F;

/// The value of an E4M3 code (NaN for `0x7F` and `0xFF`).
pub fn e4m3_to_f32(code: u8) -> f32 {
    let sign = if code & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((code >> 3) & 0x0F);
    let man = f32::from(code & 0x07);
    if exp == 0x0F && code & 0x07 == 0x07 {
        return f32::NAN;
    }
    let magnitude = if exp == 0 {
        man / 8.0 * 2f32.powi(-6)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    sign * magnitude
}

/// The E4M3 code nearest to `x` (ties to even, saturating at ±448; NaN gives `0x7F`).
pub fn f32_to_e4m3(x: f32) -> u8 {
    if x.is_nan() {
        return 0x7F;
    }
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let a = x.abs();
    // Codes 0x00..=0x7E are finite and their magnitudes increase with the code: find the
    // first code whose value is >= a, then pick the nearer of it and its predecessor.
    let (mut lo, mut hi) = (0u8, FINITE_POSITIVE_CODES - 1);
    if a >= e4m3_to_f32(hi) {
        return sign | hi;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if e4m3_to_f32(mid) < a {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let upper = lo;
    if upper == 0 {
        return sign;
    }
    let lower = upper - 1;
    let (dl, du) = (a - e4m3_to_f32(lower), e4m3_to_f32(upper) - a);
    let code = if dl < du || (dl == du && lower % 2 == 0) {
        lower
    } else {
        upper
    };
    sign | code
}

/// Rounds `x` to the nearest E4M3 value (what the device will see after upload).
pub fn round_to_e4m3(x: f32) -> f32 {
    e4m3_to_f32(f32_to_e4m3(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(e4m3_to_f32(0x00), 0.0);
        assert_eq!(e4m3_to_f32(0x38), 1.0); // exp 7, man 0
        assert_eq!(e4m3_to_f32(0x7E), 448.0);
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9)); // smallest subnormal
        assert_eq!(e4m3_to_f32(0xB8), -1.0);
        assert!(e4m3_to_f32(0x7F).is_nan());
        assert!(e4m3_to_f32(0xFF).is_nan());
    }

    #[test]
    fn every_finite_code_round_trips() {
        for code in 0u8..=255 {
            let v = e4m3_to_f32(code);
            if v.is_nan() {
                continue;
            }
            let back = f32_to_e4m3(v);
            // +0 and -0 are distinct codes with equal value.
            assert_eq!(e4m3_to_f32(back), v, "code {code:#04x}");
            if v != 0.0 {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn rounds_to_nearest_even_and_saturates() {
        // between 1.0 (0x38) and 1.125 (0x39): midpoint ties to the even code 0x38
        assert_eq!(f32_to_e4m3(1.0625), 0x38);
        assert_eq!(f32_to_e4m3(1.07), 0x39);
        // between 1.125 (0x39) and 1.25 (0x3A): tie goes to 0x3A
        assert_eq!(f32_to_e4m3(1.1875), 0x3A);
        assert_eq!(f32_to_e4m3(1e6), 0x7E);
        assert_eq!(f32_to_e4m3(-1e6), 0xFE);
        assert_eq!(f32_to_e4m3(1e-12), 0x00);
    }

    #[test]
    fn rounding_error_is_within_half_an_ulp() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let r = round_to_e4m3(x);
            // relative spacing of e4m3 normals is 2^-3, so half an ulp is <= 2^-4 relative
            assert!(
                (r - x).abs() <= x.abs() / 16.0 + 2f32.powi(-10),
                "{x} -> {r}"
            );
            x += 0.0137;
        }
    }
}
