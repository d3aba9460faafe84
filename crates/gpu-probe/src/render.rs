//! Human-readable text of a [`SystemReport`] and of the architecture table (what
//! `gpu-specs` prints without `--json`).

use std::fmt::{Display, Write};

use crate::arch::{arch_table, ArchSpec};
use crate::gpu::{GpuInfo, GpuProbe, SmCountSource};
use crate::host::HostInfo;
use crate::precision::Precision;
use crate::report::SystemReport;

/// Printed for a field that could not be read.
const NA: &str = "n/a";
/// Width of the label column.
const LABEL: usize = 24;

fn or_na<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| NA.to_string(), |v| v.to_string())
}

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

fn line(out: &mut String, label: &str, value: impl Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "  {label:<LABEL$}: {value}");
}

/// The report as text: a host section, then every field of each GPU (or the "no NVIDIA
/// GPU: ..." line), each followed by its matched architecture row. With `only_gpu`, only
/// the GPU with that NVML index is shown.
pub fn render_report(report: &SystemReport, only_gpu: Option<u32>) -> String {
    let mut out = String::new();
    render_host(&mut out, &report.host);
    out.push('\n');
    match &report.gpus {
        GpuProbe::Unavailable { reason } => {
            let _ = writeln!(out, "GPUs\n  {reason}");
        }
        GpuProbe::Available {
            driver_version,
            cuda_driver_version,
            nvml_version,
            devices,
        } => {
            let _ = writeln!(
                out,
                "GPUs: {} (driver {driver_version}, CUDA {}, NVML {})",
                devices.len(),
                or_na(cuda_driver_version.as_deref()),
                or_na(nvml_version.as_deref()),
            );
            for gpu in devices
                .iter()
                .filter(|d| only_gpu.is_none_or(|i| d.index == i))
            {
                out.push('\n');
                render_gpu(&mut out, gpu);
            }
        }
    }
    out
}

fn render_host(out: &mut String, h: &HostInfo) {
    out.push_str("Host\n");
    line(out, "hostname", &h.hostname);
    line(out, "cpu", format!("{} ({})", h.cpu_model, h.cpu_arch));
    line(
        out,
        "cores",
        format!(
            "{} physical, {} logical",
            or_na(h.physical_cores),
            h.logical_cores
        ),
    );
    line(
        out,
        "memory",
        format!(
            "{} total, {} available",
            gb(h.memory_total_bytes),
            gb(h.memory_available_bytes)
        ),
    );
    line(out, "os", format!("{} {}", h.os_name, h.os_version));
    line(out, "os_long_version", &h.os_long_version);
    line(out, "kernel", &h.kernel_version);
}

fn current_max(current: Option<u32>, max: Option<u32>, unit: &str) -> String {
    format!("{} / {} {unit} (current / max)", or_na(current), or_na(max))
}

fn on_off(v: Option<bool>) -> String {
    or_na(v.map(|b| if b { "on" } else { "off" }))
}

fn render_gpu(out: &mut String, g: &GpuInfo) {
    let _ = writeln!(out, "GPU {}: {}", g.index, g.name);
    line(out, "uuid", or_na(g.uuid.as_deref()));
    line(out, "pci_bus_id", or_na(g.pci_bus_id.as_deref()));
    line(out, "cuda_ordinal", or_na(g.cuda_ordinal));
    line(out, "architecture", or_na(g.nvml_architecture.as_deref()));
    line(
        out,
        "compute_capability",
        or_na(g.compute_capability_string()),
    );
    let sm_source = match g.sm_count_source {
        Some(SmCountSource::CudaDriver) => " (CUDA driver)",
        Some(SmCountSource::Nvml) => " (NVML)",
        Some(SmCountSource::ArchTable) => " (architecture table, not measured)",
        None => "",
    };
    line(out, "sm_count", format!("{}{sm_source}", or_na(g.sm_count)));
    line(out, "cuda_cores", or_na(g.cuda_cores()));
    line(
        out,
        "memory",
        format!(
            "{} total, {} used, {} free",
            or_na(g.memory_total_bytes.map(gb)),
            or_na(g.memory_used_bytes.map(gb)),
            or_na(g.memory_free_bytes.map(gb)),
        ),
    );
    line(
        out,
        "memory_bus_width",
        or_na(g.memory_bus_width_bits.map(|b| format!("{b} bits"))),
    );
    line(
        out,
        "memory_clock",
        current_max(g.memory_clock_mhz, g.memory_clock_max_mhz, "MHz"),
    );
    line(
        out,
        "theoretical_bandwidth",
        or_na(
            g.theoretical_bandwidth_gb_s
                .map(|b| format!("{b:.1} GB/s (bus width x max memory clock x 2 / 8)")),
        ),
    );
    line(
        out,
        "sm_clock",
        current_max(g.sm_clock_mhz, g.sm_clock_max_mhz, "MHz"),
    );
    line(
        out,
        "power",
        format!(
            "{} draw, {} limit",
            or_na(g.power_draw_w.map(|w| format!("{w:.1} W"))),
            or_na(g.power_limit_w.map(|w| format!("{w:.1} W"))),
        ),
    );
    line(
        out,
        "temperature",
        or_na(g.temperature_c.map(|t| format!("{t} C"))),
    );
    line(
        out,
        "performance_state",
        or_na(g.performance_state.as_deref()),
    );
    line(
        out,
        "pcie_link",
        format!(
            "gen {} x{} (max gen {} x{})",
            or_na(g.pcie_link_gen_current),
            or_na(g.pcie_link_width_current),
            or_na(g.pcie_link_gen_max),
            or_na(g.pcie_link_width_max),
        ),
    );
    line(out, "ecc", on_off(g.ecc_enabled));
    line(out, "mig", on_off(g.mig_enabled));
    let throttle = if g.throttle_reasons.is_empty() {
        "none".to_string()
    } else {
        g.throttle_reasons.join(", ")
    };
    line(out, "throttle_reasons", throttle);
    if !g.unavailable_fields.is_empty() {
        line(out, "unavailable", g.unavailable_fields.join("; "));
    }
    match g.arch() {
        Some(arch) => {
            let _ = writeln!(out, "  matched architecture row:");
            render_arch(out, arch, Some(g));
        }
        None => line(
            out,
            "matched architecture",
            "none (not in the built-in table; see --arch-table)",
        ),
    }
}

fn peak_text(arch: &ArchSpec, p: Precision) -> String {
    match arch.peak_tflops(p) {
        Some(v) => format!("{v} {}", p.unit()),
        None => "no tensor-core support".to_string(),
    }
}

/// One architecture-table row as text: counts, memory, dense peaks per precision, source.
pub fn render_arch_spec(arch: &ArchSpec) -> String {
    let mut out = String::new();
    render_arch(&mut out, arch, None);
    out
}

fn render_arch(out: &mut String, a: &ArchSpec, probed: Option<&GpuInfo>) {
    let pad = if probed.is_some() { "    " } else { "" };
    let _ = writeln!(
        out,
        "{pad}{} ({}): {}, {}, cc {}, {} SMs, {} CUDA cores, {} tensor cores",
        a.name,
        a.key,
        a.architecture,
        a.year,
        a.compute_capability_string(),
        a.sm_count,
        a.cuda_cores,
        a.tensor_cores
    );
    let _ = writeln!(
        out,
        "{pad}{} GB {}, {} GB/s, {} W TDP",
        a.memory_gb, a.memory_type, a.bandwidth_gb_s, a.tdp_w
    );
    if let Some(bw) = probed.and_then(|g| g.theoretical_bandwidth_gb_s) {
        let _ = writeln!(
            out,
            "{pad}probed theoretical bandwidth is {:.1}% of the datasheet's",
            a.percent_of_bandwidth(bw)
        );
    }
    let _ = writeln!(out, "{pad}dense peaks (no sparsity):");
    for p in Precision::ALL {
        let mut text = peak_text(a, p);
        if p == Precision::Fp64 && a.peaks.fp64_tensor.is_some() {
            text = format!("{text} on tensor cores, {} on CUDA cores", a.peaks.fp64);
        }
        let _ = writeln!(out, "{pad}  {:<6}{text}", p.as_str());
    }
    let _ = writeln!(out, "{pad}source: {}", a.source);
    if !a.notes.is_empty() {
        let _ = writeln!(out, "{pad}notes: {}", a.notes);
    }
}

/// The whole built-in architecture table as aligned text: one row per GPU with its dense
/// peaks, then each row's source and notes.
pub fn render_arch_table() -> String {
    let header: Vec<String> = [
        "key", "name", "arch", "year", "cc", "SMs", "cores", "tensor", "mem GB", "mem", "GB/s",
        "TDP W", "fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let peak = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = arch_table()
        .iter()
        .map(|a| {
            let mut r = vec![
                a.key.to_string(),
                a.name.to_string(),
                a.architecture.to_string(),
                a.year.to_string(),
                a.compute_capability_string(),
                a.sm_count.to_string(),
                a.cuda_cores.to_string(),
                a.tensor_cores.to_string(),
                a.memory_gb.to_string(),
                a.memory_type.to_string(),
                a.bandwidth_gb_s.to_string(),
                a.tdp_w.to_string(),
            ];
            r.extend(Precision::ALL.iter().map(|p| peak(a.peak_tflops(*p))));
            r
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut push_row = |cells: &[String]| {
        let joined: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", joined.join("  ").trim_end());
    };
    push_row(&header);
    for r in &rows {
        push_row(r);
    }
    out.push_str(
        "\nPeaks are dense (no structured sparsity), TFLOPS (int8: TOPS); fp64 is the \
tensor-core figure where there is one; '-' = no tensor-core support.\n\nSources\n",
    );
    for a in arch_table() {
        let _ = writeln!(out, "  {}: {}", a.key, a.source);
        if !a.notes.is_empty() {
            let _ = writeln!(out, "  {:width$}  {}", "", a.notes, width = a.key.len());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostInfo {
        HostInfo {
            hostname: "box".into(),
            cpu_model: "Test CPU".into(),
            cpu_arch: "x86_64".into(),
            physical_cores: Some(8),
            logical_cores: 16,
            memory_total_bytes: 64_000_000_000,
            memory_available_bytes: 32_000_000_000,
            os_name: "Ubuntu".into(),
            os_version: "22.04".into(),
            os_long_version: "Linux (Ubuntu 22.04)".into(),
            kernel_version: "6.8.0".into(),
        }
    }

    fn h100(index: u32) -> GpuInfo {
        GpuInfo {
            index,
            name: "NVIDIA H100 80GB HBM3".into(),
            compute_capability: Some((9, 0)),
            sm_count: Some(132),
            sm_count_source: Some(SmCountSource::CudaDriver),
            memory_bus_width_bits: Some(5120),
            memory_clock_max_mhz: Some(2619),
            theoretical_bandwidth_gb_s: Some(3352.32),
            throttle_reasons: vec!["gpu_idle".into()],
            arch_key: Some("h100-sxm".into()),
            unavailable_fields: vec!["power_draw_w: not supported on this device".into()],
            ..GpuInfo::default()
        }
    }

    #[test]
    fn no_gpu_report_says_why() {
        let r = SystemReport {
            host: host(),
            gpus: GpuProbe::Unavailable {
                reason: "no NVIDIA GPU: NVML could not be loaded (x)".into(),
            },
        };
        let text = render_report(&r, None);
        assert!(text.starts_with("Host\n"));
        assert!(text.contains("Test CPU (x86_64)"));
        assert!(text.contains("8 physical, 16 logical"));
        assert!(text.contains("64.00 GB total"));
        assert!(text.contains("no NVIDIA GPU: NVML could not be loaded (x)"));
    }

    #[test]
    fn gpu_report_shows_fields_and_matched_row() {
        let r = SystemReport {
            host: host(),
            gpus: GpuProbe::Available {
                driver_version: "580.95.05".into(),
                cuda_driver_version: Some("13.0".into()),
                nvml_version: None,
                devices: vec![h100(0), h100(1)],
            },
        };
        let text = render_report(&r, None);
        assert!(text.contains("GPUs: 2 (driver 580.95.05, CUDA 13.0, NVML n/a)"));
        assert!(text.contains("GPU 0: NVIDIA H100 80GB HBM3"));
        assert!(text.contains("GPU 1: "));
        assert!(text.contains("132 (CUDA driver)"));
        assert!(text.contains("16896"));
        assert!(text.contains("3352.3 GB/s"));
        assert!(text.contains(": gpu_idle\n"));
        assert!(text.contains("power_draw_w: not supported"));
        assert!(text.contains("H100 SXM (h100-sxm)"));
        assert!(text.contains("bf16  989.4 TFLOPS"));
        assert!(text.contains("int8  1978.9 TOPS"));
        assert!(text.contains("source: NVIDIA H100"));
        assert!(text.contains("100.1% of the datasheet"));

        let one = render_report(&r, Some(1));
        assert!(one.contains("GPU 1: ") && !one.contains("GPU 0: "));
    }

    #[test]
    fn arch_table_lists_every_row_and_source() {
        let text = render_arch_table();
        for a in arch_table() {
            assert!(text.contains(a.key), "{}", a.key);
            assert!(text.contains(a.source), "{}", a.key);
        }
        assert!(text.lines().next().is_some_and(|l| l.starts_with("key")));
        assert!(text.contains("989.4"));
    }

    #[test]
    fn one_row_as_text() {
        let a = crate::find_arch("v100-sxm2-16gb").expect("row");
        let text = render_arch_spec(a);
        assert!(text.starts_with("V100 SXM2 16GB (v100-sxm2-16gb): Volta, 2017, cc 7.0"));
        assert!(text.contains("fp16  125 TFLOPS"));
        assert!(text.contains("bf16  no tensor-core support"));
        assert!(!text.contains("% of the datasheet"));
    }
}
