//! Matching a probed device (NVML name, compute capability, memory, power limit) to its row.
//!
//! NVML names are matched by whole tokens (split on anything that is not a letter or digit),
//! so `"NVIDIA GB200"` is not a B200 and `"NVIDIA GH200"` is not an H200. Variants that share
//! a chip are split by what NVML tells apart:
//!
//! | chip  | split by                                                                    |
//! |-------|-----------------------------------------------------------------------------|
//! | H100  | `NVL` / `PCIe` / `HBM3` or `SXM` in the name, else power limit (> 400 W: SXM) |
//! | A100  | `PCIe` / `SXM4` in the name, else power limit (> 300 W: SXM); `40GB`/`80GB` in the name, else memory size |
//! | V100  | `SXM2` rows only; `16GB`/`32GB` in the name, else memory size                |
//!
//! A device whose variant cannot be decided gets `None` rather than a guess, and so does a
//! device whose compute capability contradicts the row.

use super::{arch_table, ArchSpec};

/// Decides where a memory size lies between the small and large variant of a chip, in bytes
/// as NVML reports them (an "80GB" A100 reports 81,920 MiB, a "40GB" one 40,960 MiB).
const A100_LARGE_ABOVE_BYTES: u64 = 60_000_000_000;
const V100_LARGE_ABOVE_BYTES: u64 = 24_000_000_000;

/// Power limit above which an H100 without a form-factor word in its name is the SXM part
/// (SXM: 700 W; PCIe: 300-350 W; NVL: 350-400 W).
const H100_SXM_ABOVE_W: f64 = 400.0;
/// Power limit above which an A100 without a form-factor word in its name is the SXM part
/// (SXM: 400 W; PCIe: 250-300 W).
const A100_SXM_ABOVE_W: f64 = 300.0;

/// The table row for a probed device, or `None` when the device is not in the table or its
/// variant cannot be decided from what is known.
///
/// `gpu_name` is NVML's device name (`"NVIDIA H100 80GB HBM3"`, `"Tesla T4"`, ...);
/// `compute_capability`, when known, must agree with the row; `memory_total_bytes` splits
/// 40/80 GB A100s and 16/32 GB V100s whose names do not say. Use
/// [`match_arch_with_power_limit`] when the power limit is known too.
///
/// ```
/// use gpu_probe::match_arch;
/// let row = match_arch("NVIDIA H100 80GB HBM3", Some((9, 0)), None);
/// assert_eq!(row.map(|a| a.key), Some("h100-sxm"));
/// assert!(match_arch("NVIDIA GeForce RTX 4090", None, None).is_none());
/// ```
pub fn match_arch(
    gpu_name: &str,
    compute_capability: Option<(u32, u32)>,
    memory_total_bytes: Option<u64>,
) -> Option<&'static ArchSpec> {
    match_arch_with_power_limit(gpu_name, compute_capability, memory_total_bytes, None)
}

/// [`match_arch`] that also uses the enforced power limit (watts) to split SXM from PCIe
/// parts whose NVML name does not say which they are.
pub fn match_arch_with_power_limit(
    gpu_name: &str,
    compute_capability: Option<(u32, u32)>,
    memory_total_bytes: Option<u64>,
    power_limit_w: Option<f64>,
) -> Option<&'static ArchSpec> {
    let name = NameTokens::new(gpu_name);
    let key = row_key(&name, memory_total_bytes, power_limit_w)?;
    let row = arch_table().iter().find(|a| a.key == key)?;
    match compute_capability {
        Some(cc) if cc != row.compute_capability => None,
        _ => Some(row),
    }
}

/// The lowercase alphanumeric words of a device name.
struct NameTokens(Vec<String>);

impl NameTokens {
    fn new(name: &str) -> Self {
        NameTokens(
            name.split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|t| !t.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        )
    }

    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|t| t == word)
    }

    fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.has(w))
    }

    /// A memory size written in the name (`"80gb"` → 80).
    fn memory_gb(&self) -> Option<u32> {
        self.0
            .iter()
            .find_map(|t| t.strip_suffix("gb").and_then(|n| n.parse().ok()))
    }
}

/// Which of two memory variants a device is: by the name's `NNgb` word, else by its size.
fn is_large_variant(
    name: &NameTokens,
    small_gb: u32,
    large_gb: u32,
    memory_total_bytes: Option<u64>,
    large_above_bytes: u64,
) -> Option<bool> {
    match name.memory_gb() {
        Some(gb) if gb == large_gb => Some(true),
        Some(gb) if gb == small_gb => Some(false),
        _ => memory_total_bytes.map(|b| b > large_above_bytes),
    }
}

fn row_key(
    name: &NameTokens,
    memory_total_bytes: Option<u64>,
    power_limit_w: Option<f64>,
) -> Option<&'static str> {
    if name.has("b200") {
        return Some("b200");
    }
    if name.has("h200") {
        // The H200 NVL (PCIe, 600 W) has no row of its own.
        return (!name.has("nvl")).then_some("h200");
    }
    if name.has("h100") {
        return if name.has("nvl") {
            Some("h100-nvl")
        } else if name.has("pcie") {
            Some("h100-pcie")
        } else if name.has_any(&["hbm3", "sxm", "sxm5"]) {
            Some("h100-sxm")
        } else {
            power_limit_w.map(|w| {
                if w > H100_SXM_ABOVE_W {
                    "h100-sxm"
                } else {
                    "h100-pcie"
                }
            })
        };
    }
    if name.has("a100") {
        let pcie = if name.has("pcie") {
            true
        } else if name.has_any(&["sxm", "sxm4"]) {
            false
        } else {
            power_limit_w? <= A100_SXM_ABOVE_W
        };
        let large = is_large_variant(name, 40, 80, memory_total_bytes, A100_LARGE_ABOVE_BYTES)?;
        return Some(match (pcie, large) {
            (false, false) => "a100-sxm-40gb",
            (false, true) => "a100-sxm-80gb",
            (true, false) => "a100-pcie-40gb",
            (true, true) => "a100-pcie-80gb",
        });
    }
    if name.has("v100") {
        // Only the SXM2 board is in the table; the PCIe and SXM3 boards clock differently.
        if name.has_any(&["pcie", "sxm3"]) {
            return None;
        }
        let large = is_large_variant(name, 16, 32, memory_total_bytes, V100_LARGE_ABOVE_BYTES)?;
        return Some(if large {
            "v100-sxm2-32gb"
        } else {
            "v100-sxm2-16gb"
        });
    }
    const SINGLE_VARIANT: [&str; 5] = ["t4", "l4", "l40s", "a10g", "a10"];
    SINGLE_VARIANT.into_iter().find(|k| name.has(k))
}
