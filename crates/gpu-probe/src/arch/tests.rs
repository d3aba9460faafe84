use std::collections::HashSet;

use super::*;

const GIB: u64 = 1024 * 1024 * 1024;

/// (NVML name, compute capability, memory bytes, expected row key).
type NvmlCase = (&'static str, Option<(u32, u32)>, Option<u64>, &'static str);

#[test]
fn keys_are_unique_lowercase_and_names_unique() {
    let mut keys = HashSet::new();
    let mut names = HashSet::new();
    for a in arch_table() {
        assert!(keys.insert(a.key), "duplicate key {}", a.key);
        assert!(names.insert(a.name), "duplicate name {}", a.name);
        assert_eq!(
            a.key,
            a.key.to_ascii_lowercase(),
            "key {} not lowercase",
            a.key
        );
        assert!(!a.key.contains(' '), "key {} has a space", a.key);
    }
}

#[test]
fn every_row_names_its_source() {
    for a in arch_table() {
        assert!(a.source.contains("http"), "{}: source without URL", a.key);
        assert!(
            a.source.contains("NVIDIA") || a.source.contains("AWS"),
            "{}: source does not name a datasheet",
            a.key
        );
    }
}

#[test]
fn the_required_gpus_are_present() {
    for key in [
        "t4",
        "l4",
        "a10g",
        "v100-sxm2-16gb",
        "v100-sxm2-32gb",
        "a100-sxm-40gb",
        "a100-sxm-80gb",
        "h100-sxm",
        "h100-pcie",
        "h200",
        "l40s",
        "b200",
    ] {
        assert!(arch_table().iter().any(|a| a.key == key), "missing {key}");
    }
}

#[test]
fn peaks_are_ordered_and_positive() {
    for a in arch_table() {
        let p = &a.peaks;
        assert!(p.fp64 > 0.0 && p.fp32 > 0.0, "{}", a.key);
        assert!(p.fp32 >= p.fp64, "{}: fp32 < fp64", a.key);
        if let Some(t) = p.fp64_tensor {
            assert!(t >= p.fp64, "{}: fp64 tensor < fp64", a.key);
        }
        let fp16 = p.fp16.unwrap_or(0.0);
        assert!(fp16 >= p.fp32, "{}: fp16 < fp32", a.key);
        if let Some(tf32) = p.tf32 {
            assert!(
                tf32 >= p.fp32 && tf32 <= fp16,
                "{}: tf32 out of order",
                a.key
            );
        }
        if let Some(bf16) = p.bf16 {
            assert!((bf16 - fp16).abs() < 1e-9, "{}: bf16 != fp16", a.key);
        }
        if let Some(fp8) = p.fp8 {
            assert!(fp8 >= fp16, "{}: fp8 < fp16", a.key);
        }
        if let Some(int8) = p.int8 {
            assert!(int8 >= fp16, "{}: int8 < fp16", a.key);
        }
        // Dense tensor throughput: at most 32x the FP32 CUDA-core rate on any card here;
        // a sparse figure stored by mistake on a datacenter part would break this bound
        // (H100 SXM dense fp16 / fp32 = 14.8).
        assert!(fp16 / p.fp32 <= 32.0, "{}: fp16 looks sparse", a.key);
    }
}

#[test]
fn fp8_only_from_ada_and_hopper_on() {
    for a in arch_table() {
        let has_fp8_hw = a.compute_capability >= (8, 9);
        assert_eq!(a.peaks.fp8.is_some(), has_fp8_hw, "{}", a.key);
        let has_bf16_hw = a.compute_capability >= (8, 0);
        assert_eq!(a.peaks.bf16.is_some(), has_bf16_hw, "{}", a.key);
        assert_eq!(a.peaks.tf32.is_some(), has_bf16_hw, "{}", a.key);
    }
}

#[test]
fn cores_agree_with_sm_counts() {
    for a in arch_table() {
        let per_sm = a.cuda_cores / a.sm_count;
        assert_eq!(per_sm * a.sm_count, a.cuda_cores, "{}", a.key);
        assert!([64, 128].contains(&per_sm), "{}: {per_sm} cores/SM", a.key);
        let tc_per_sm = a.tensor_cores / a.sm_count;
        assert_eq!(tc_per_sm * a.sm_count, a.tensor_cores, "{}", a.key);
    }
}

#[test]
fn h100_sxm_row_is_the_dense_datasheet() {
    let h = find_arch("h100-sxm").expect("h100-sxm row");
    assert_eq!(h.compute_capability, (9, 0));
    assert_eq!(h.sm_count, 132);
    assert_eq!(h.bandwidth_gb_s, 3350.0);
    assert_eq!(h.tdp_w, 700.0);
    assert_eq!(h.peak_tflops(Precision::Bf16), Some(989.4));
    assert_eq!(h.peak_tflops(Precision::Fp16), Some(989.4));
    assert_eq!(h.peak_tflops(Precision::Tf32), Some(494.7));
    assert_eq!(h.peak_tflops(Precision::Fp8), Some(1978.9));
    assert_eq!(h.peak_tflops(Precision::Int8), Some(1978.9));
    assert_eq!(h.peak_tflops(Precision::Fp32), Some(67.0));
    assert_eq!(h.peak_tflops(Precision::Fp64), Some(67.0));
    assert_eq!(h.peaks.fp64, 34.0);
}

#[test]
fn seed_tutorial_figures_are_kept() {
    let t4 = find_arch("t4").expect("t4");
    assert_eq!(
        (t4.cuda_cores, t4.tensor_cores, t4.memory_gb, t4.tdp_w),
        (2560, 320, 16.0, 70.0)
    );
    let l4 = find_arch("l4").expect("l4");
    assert_eq!(
        (l4.cuda_cores, l4.tensor_cores, l4.memory_gb, l4.tdp_w),
        (7424, 232, 24.0, 72.0)
    );
    let v100 = find_arch("v100-sxm2-16gb").expect("v100");
    assert_eq!(
        (
            v100.cuda_cores,
            v100.tensor_cores,
            v100.memory_gb,
            v100.tdp_w
        ),
        (5120, 640, 16.0, 300.0)
    );
    let a100 = find_arch("a100-sxm-40gb").expect("a100");
    assert_eq!(
        (
            a100.cuda_cores,
            a100.tensor_cores,
            a100.memory_gb,
            a100.tdp_w
        ),
        (6912, 432, 40.0, 400.0)
    );
    // The A10G is where the tutorial quotes the A10's datasheet; the row says so.
    let a10g = find_arch("a10g").expect("a10g");
    assert_eq!(a10g.memory_gb, 24.0);
    assert!(a10g.notes.contains("9,216"));
}

#[test]
fn no_tensor_support_is_none() {
    let v100 = find_arch("v100-sxm2-16gb").expect("v100");
    assert_eq!(v100.peak_tflops(Precision::Bf16), None);
    assert_eq!(v100.peak_tflops(Precision::Fp8), None);
    assert_eq!(v100.peak_tflops(Precision::Fp16), Some(125.0));
    let a100 = find_arch("a100-sxm-80gb").expect("a100");
    assert_eq!(a100.peak_tflops(Precision::Fp8), None);
    assert_eq!(a100.peak_tflops(Precision::Fp16), Some(312.0));
}

#[test]
fn percent_of_peak_and_bandwidth() {
    let h = find_arch("h100-sxm").expect("h100");
    let pct = h
        .percent_of_peak(494.7, Precision::Bf16)
        .expect("bf16 peak");
    assert!((pct - 50.0).abs() < 1e-9);
    assert_eq!(
        find_arch("t4").and_then(|t| t.percent_of_peak(1.0, Precision::Fp8)),
        None
    );
    assert!((h.percent_of_bandwidth(1675.0) - 50.0).abs() < 1e-9);
}

#[test]
fn find_arch_by_key_name_or_nvml_name() {
    let cases = [
        ("h100-sxm", "h100-sxm"),
        ("H100 SXM", "h100-sxm"),
        ("h100_sxm", "h100-sxm"),
        ("A10G", "a10g"),
        ("a10", "a10"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("Tesla T4", "t4"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb"),
    ];
    for (query, key) in cases {
        assert_eq!(find_arch(query).map(|a| a.key), Some(key), "{query}");
    }
    assert!(find_arch("").is_none());
    assert!(find_arch("rtx 4090").is_none());
    assert!(matches!(
        arch_by_key("tpu-v5"),
        Err(ProbeError::UnknownArch(_))
    ));
}

#[test]
fn match_arch_realistic_nvml_names() {
    let cases: [NvmlCase; 13] = [
        ("Tesla T4", Some((7, 5)), Some(15360 * 1024 * 1024), "t4"),
        ("NVIDIA L4", Some((8, 9)), Some(23034 * 1024 * 1024), "l4"),
        (
            "NVIDIA A10G",
            Some((8, 6)),
            Some(23028 * 1024 * 1024),
            "a10g",
        ),
        ("NVIDIA A10", Some((8, 6)), None, "a10"),
        (
            "Tesla V100-SXM2-16GB",
            Some((7, 0)),
            Some(16 * GIB),
            "v100-sxm2-16gb",
        ),
        (
            "Tesla V100-SXM2-32GB",
            Some((7, 0)),
            Some(32 * GIB),
            "v100-sxm2-32gb",
        ),
        (
            "NVIDIA A100-SXM4-40GB",
            Some((8, 0)),
            Some(40 * GIB),
            "a100-sxm-40gb",
        ),
        (
            "NVIDIA A100-SXM4-80GB",
            Some((8, 0)),
            Some(80 * GIB),
            "a100-sxm-80gb",
        ),
        (
            "NVIDIA A100 80GB PCIe",
            Some((8, 0)),
            Some(80 * GIB),
            "a100-pcie-80gb",
        ),
        (
            "NVIDIA H100 80GB HBM3",
            Some((9, 0)),
            Some(81559 * 1024 * 1024),
            "h100-sxm",
        ),
        (
            "NVIDIA H100 PCIe",
            Some((9, 0)),
            Some(81559 * 1024 * 1024),
            "h100-pcie",
        ),
        (
            "NVIDIA H200",
            Some((9, 0)),
            Some(143771 * 1024 * 1024),
            "h200",
        ),
        (
            "NVIDIA L40S",
            Some((8, 9)),
            Some(46068 * 1024 * 1024),
            "l40s",
        ),
    ];
    for (name, cc, mem, key) in cases {
        assert_eq!(
            match_arch(name, cc, mem).map(|a| a.key),
            Some(key),
            "{name}"
        );
        // Without the optional facts the name alone is enough for these.
        assert_eq!(
            match_arch(name, None, None).map(|a| a.key),
            Some(key),
            "{name} by name"
        );
    }
    assert_eq!(
        match_arch("NVIDIA B200", Some((10, 0)), Some(183359 * 1024 * 1024)).map(|a| a.key),
        Some("b200")
    );
    assert_eq!(
        match_arch("NVIDIA H100 NVL", Some((9, 0)), None).map(|a| a.key),
        Some("h100-nvl")
    );
    assert_eq!(
        match_arch("NVIDIA A100-PCIE-40GB", None, None).map(|a| a.key),
        Some("a100-pcie-40gb")
    );
}

#[test]
fn unknown_or_lookalike_names_do_not_match() {
    for name in [
        "NVIDIA GeForce RTX 4090",
        "NVIDIA GB200",
        "NVIDIA GH200 480GB",
        "NVIDIA L40",
        "NVIDIA H200 NVL",
        "Tesla V100-PCIE-16GB",
        "Tesla P100-PCIE-16GB",
        "",
        "NVIDIA",
    ] {
        assert!(
            match_arch(name, None, None).is_none(),
            "{name} should not match"
        );
    }
}

#[test]
fn contradicting_compute_capability_does_not_match() {
    assert!(match_arch("NVIDIA H100 80GB HBM3", Some((8, 0)), None).is_none());
    assert!(match_arch("Tesla T4", Some((8, 6)), None).is_none());
}

#[test]
fn memory_splits_variants_whose_name_does_not() {
    assert_eq!(
        match_arch_with_power_limit("NVIDIA A100", None, Some(40 * GIB), Some(400.0))
            .map(|a| a.key),
        Some("a100-sxm-40gb")
    );
    assert_eq!(
        match_arch_with_power_limit("NVIDIA A100", None, Some(80 * GIB), Some(300.0))
            .map(|a| a.key),
        Some("a100-pcie-80gb")
    );
    // Neither name nor memory says which A100 it is.
    assert!(match_arch_with_power_limit("NVIDIA A100", None, None, Some(400.0)).is_none());
    assert_eq!(
        match_arch("Tesla V100-SXM2", None, Some(32 * GIB)).map(|a| a.key),
        Some("v100-sxm2-32gb")
    );
}

#[test]
fn power_limit_splits_an_unlabelled_h100() {
    assert!(match_arch("NVIDIA H100", Some((9, 0)), None).is_none());
    let sxm = match_arch_with_power_limit("NVIDIA H100", Some((9, 0)), None, Some(700.0));
    assert_eq!(sxm.map(|a| a.key), Some("h100-sxm"));
    let pcie = match_arch_with_power_limit("NVIDIA H100", Some((9, 0)), None, Some(350.0));
    assert_eq!(pcie.map(|a| a.key), Some("h100-pcie"));
    // A name that says HBM3 wins over an odd (capped) power limit.
    let capped =
        match_arch_with_power_limit("NVIDIA H100 80GB HBM3", Some((9, 0)), None, Some(300.0));
    assert_eq!(capped.map(|a| a.key), Some("h100-sxm"));
}

#[test]
fn arch_spec_serializes_to_json() {
    let h = find_arch("h100-sxm").expect("h100");
    let v = serde_json::to_value(h).expect("serialize");
    assert_eq!(v["key"], "h100-sxm");
    assert_eq!(v["compute_capability"][0], 9);
    assert_eq!(v["peaks"]["bf16"], 989.4);
    assert!(v["peaks"]["fp8"].is_number());
    let v100 = serde_json::to_value(find_arch("v100-sxm2-16gb").expect("v100")).expect("ser");
    assert!(v100["peaks"]["fp8"].is_null());
}
