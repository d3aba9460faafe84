use std::time::Duration;

use metrics::manifest::RunManifest;
use metrics::sampler::GpuSampler;
use metrics::writers::write_json_atomic;
use serde::Serialize;

#[derive(Serialize)]
struct ResultFile<'a> {
    manifest: &'a RunManifest,
    gpu_trace: &'a metrics::GpuTrace,
}

#[test]
fn a_result_carries_manifest_and_trace() {
    let sampler = GpuSampler::start(0, Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(60));
    let trace = sampler.stop();
    let manifest = RunManifest::capture();
    assert!(!manifest.command_line.is_empty());
    assert_eq!(
        manifest.gpus.is_empty(),
        manifest.gpu_unavailable_reason.is_some()
    );
    match &trace.unavailable {
        // No GPU here: nothing recorded, and the manifest agrees there is no GPU.
        Some(reason) => {
            assert!(
                trace.samples.is_empty() && trace.summary.is_none(),
                "{reason}"
            );
            assert!(manifest.gpu_unavailable_reason.is_some());
        }
        // A GPU: at least the start and stop samples, with a summary.
        None => {
            assert!(trace.samples.len() >= 2);
            let s = trace.summary.as_ref().unwrap();
            assert!(s.duration_s > 0.0);
            if let Some(p) = s.max_power_w {
                assert!(p > 0.0 && p < 2000.0, "power {p} W");
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    write_json_atomic(
        &path,
        &ResultFile {
            manifest: &manifest,
            gpu_trace: &trace,
        },
    )
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["manifest"]["gpubench_version"], env!("CARGO_PKG_VERSION"));
    assert!(v["manifest"]["timestamp_utc"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}
