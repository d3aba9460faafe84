use super::*;

fn h100() -> GpuInfo {
    GpuInfo {
        index: 0,
        name: "NVIDIA H100 80GB HBM3".to_string(),
        compute_capability: Some((9, 0)),
        sm_count: Some(132),
        sm_count_source: Some(SmCountSource::CudaDriver),
        memory_total_bytes: Some(81559 * 1024 * 1024),
        power_limit_w: Some(700.0),
        arch_key: Some("h100-sxm".to_string()),
        throttle_reasons: vec!["gpu_idle".to_string()],
        ..GpuInfo::default()
    }
}

fn available(devices: Vec<GpuInfo>) -> GpuProbe {
    GpuProbe::Available {
        driver_version: "580.95.05".to_string(),
        cuda_driver_version: Some("13.0".to_string()),
        nvml_version: Some("13.580.95.05".to_string()),
        devices,
    }
}

#[test]
fn gpu_info_helpers() {
    let g = h100();
    assert_eq!(g.arch().map(|a| a.key), Some("h100-sxm"));
    assert_eq!(g.compute_capability_string().as_deref(), Some("9.0"));
    assert_eq!(g.cuda_cores(), Some(16896));
    let gb = g.memory_total_gb().expect("memory");
    assert!((gb - 85.52).abs() < 0.01, "{gb}");
    let unknown = GpuInfo {
        arch_key: None,
        ..h100()
    };
    assert!(unknown.arch().is_none());
    assert_eq!(unknown.cuda_cores(), None);
}

#[test]
fn probe_accessors() {
    let p = available(vec![h100()]);
    assert_eq!(p.devices().len(), 1);
    assert_eq!(p.driver_version(), Some("580.95.05"));
    assert_eq!(p.cuda_driver_version(), Some("13.0"));
    assert_eq!(p.unavailable_reason(), None);
    assert_eq!(p.device(0).map(|d| d.index).ok(), Some(0));
    assert!(matches!(
        p.device(1),
        Err(ProbeError::DeviceIndexOutOfRange { index: 1, count: 1 })
    ));

    let none = GpuProbe::Unavailable {
        reason: "no NVIDIA GPU: test".to_string(),
    };
    assert!(none.devices().is_empty());
    assert_eq!(none.driver_version(), None);
    assert_eq!(none.cuda_driver_version(), None);
    assert_eq!(none.unavailable_reason(), Some("no NVIDIA GPU: test"));
    assert!(matches!(
        none.device(0),
        Err(ProbeError::DeviceIndexOutOfRange { index: 0, count: 0 })
    ));
}

#[test]
fn probe_round_trips_through_json_with_a_status_tag() {
    for p in [
        available(vec![h100()]),
        GpuProbe::Unavailable {
            reason: "no NVIDIA GPU: x".to_string(),
        },
    ] {
        let v = serde_json::to_value(&p).expect("serialize");
        assert!(v["status"] == "available" || v["status"] == "unavailable");
        let back: GpuProbe = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, p);
    }
    let v = serde_json::to_value(available(vec![h100()])).expect("serialize");
    assert_eq!(
        v["devices"][0]["compute_capability"],
        serde_json::json!([9, 0])
    );
    assert_eq!(v["devices"][0]["sm_count_source"], "cuda_driver");
}

#[test]
fn gpu_info_reads_older_json_with_missing_fields() {
    let info: GpuInfo =
        serde_json::from_str(r#"{"index": 2, "name": "Tesla T4"}"#).expect("deserialize");
    assert_eq!(info.index, 2);
    assert_eq!(info.uuid, None);
    assert!(info.throttle_reasons.is_empty());
}
