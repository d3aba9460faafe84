//! `probe()` on whatever machine runs the tests: GPU-less (expects the typed "no NVIDIA GPU"
//! outcome) or with NVIDIA GPUs (expects filled devices).

use std::path::Path;

use gpu_probe::{nvml, probe, GpuProbe, ProbeError, SystemReport};

/// The NVIDIA kernel driver exposes this directory; without it NVML cannot work.
fn nvidia_driver_present() -> bool {
    Path::new("/proc/driver/nvidia").exists()
}

#[test]
fn probe_never_fails_and_fills_the_host() {
    let report = probe();
    assert!(report.host.logical_cores >= 1);
    assert!(report.host.memory_total_bytes > 0);
    assert!(!report.host.hostname.is_empty());
    match &report.gpus {
        GpuProbe::Unavailable { reason } => {
            assert!(reason.starts_with("no NVIDIA GPU: "), "{reason}");
            assert!(reason.len() > "no NVIDIA GPU: ".len(), "reason is empty");
        }
        GpuProbe::Available {
            driver_version,
            devices,
            ..
        } => {
            assert!(!driver_version.is_empty());
            assert!(!devices.is_empty());
            for (i, d) in devices.iter().enumerate() {
                assert_eq!(d.index as usize, i);
                assert!(!d.name.is_empty());
                assert!(d.memory_total_bytes.unwrap_or(1) > 0);
            }
        }
    }
}

#[test]
fn without_a_driver_the_probe_says_why() {
    if nvidia_driver_present() {
        eprintln!("skipped: this machine has the NVIDIA driver");
        return;
    }
    let report = probe();
    let reason = report.gpus.unavailable_reason().unwrap_or_default();
    assert!(
        reason.starts_with("no NVIDIA GPU: "),
        "got {:?}",
        report.gpus
    );
    assert!(report.gpus.devices().is_empty());
    assert!(report.gpus.driver_version().is_none());
    match nvml() {
        Err(e @ ProbeError::NvmlUnavailable { .. }) => {
            assert!(e.to_string().starts_with("no NVIDIA GPU: "));
        }
        Err(other) => panic!("unexpected error type: {other}"),
        Ok(_) => panic!("NVML initialised without a driver"),
    }
}

#[test]
fn with_a_driver_known_gpus_are_matched() {
    if !nvidia_driver_present() {
        eprintln!("skipped: no NVIDIA driver here");
        return;
    }
    let report = probe();
    for d in report.gpus.devices() {
        eprintln!("{}: {:?} {:?}", d.name, d.arch_key, d.unavailable_fields);
        if d.name.contains("H100 80GB HBM3") {
            assert_eq!(d.arch_key.as_deref(), Some("h100-sxm"));
            assert_eq!(d.compute_capability, Some((9, 0)));
            assert_eq!(d.sm_count, Some(132));
        }
    }
}

#[test]
fn report_round_trips_through_json() {
    let report = probe();
    let json = serde_json::to_string_pretty(&report).expect("serialize");
    let back: SystemReport = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, report);
}

#[test]
fn cuda_devices_is_a_typed_outcome() {
    let compiled_with_cuda = cfg!(feature = "cuda");
    match gpu_probe::cuda_devices() {
        Ok(list) => {
            assert!(compiled_with_cuda, "CUDA answered without the cuda feature");
            for d in list {
                assert!(d.uuid.starts_with("GPU-") && d.sm_count > 0);
            }
        }
        Err(ProbeError::NotCompiledWithCuda) => {
            assert!(
                !compiled_with_cuda,
                "NotCompiledWithCuda with the cuda feature"
            );
        }
        Err(ProbeError::Cuda(msg)) => {
            assert!(
                compiled_with_cuda,
                "CUDA error without the cuda feature: {msg}"
            );
            assert!(
                !nvidia_driver_present(),
                "driver present but CUDA failed: {msg}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}
