//! Cost per 1M tokens of each LLM run on the chosen instances (pricing crate).

use pricing::analysis::CostRow;
use pricing::cost::GpusUsed;
use pricing::results::BenchmarkResults;
use pricing::{InstanceOffer, PriceCatalog};
use serde_json::json;

use super::bench_all::{BenchAllConfig, SEED_INSTANCES};
use super::report::{CostEntry, LlmEntry, MachineFacts};
use crate::error::Result;

/// The instances to price: `--instance` names, else the catalog instances with this GPU,
/// else the seed's AWS instances (as what-ifs).
///
/// # Errors
/// [`crate::BenchError::Pricing`] for an unknown `--instance`.
pub fn chosen_offers(
    catalog: &PriceCatalog,
    config: &BenchAllConfig,
    machine: &MachineFacts,
) -> Result<Vec<InstanceOffer>> {
    if !config.instances.is_empty() {
        return config
            .instances
            .iter()
            .map(|n| Ok(catalog.find(n)?.clone()))
            .collect();
    }
    let same_gpu: Vec<InstanceOffer> = machine
        .gpu_arch
        .as_deref()
        .map(|arch| {
            catalog
                .offers()
                .iter()
                .filter(|o| o.gpu_model == arch)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !same_gpu.is_empty() {
        return Ok(same_gpu);
    }
    Ok(SEED_INSTANCES
        .iter()
        .filter_map(|n| catalog.find(n).ok().cloned())
        .collect())
}

/// Prices every run on the chosen instances, billing one GPU's share of a multi-GPU
/// instance (the runs use one GPU). Returns the primary instance (the first `--instance`,
/// else the first instance with this GPU) and the rows.
///
/// # Errors
/// [`crate::BenchError::Pricing`] for an unknown `--instance` or an unusable record.
pub fn price(
    catalog: &PriceCatalog,
    config: &BenchAllConfig,
    machine: &MachineFacts,
    runs: &[LlmEntry],
) -> Result<(Option<String>, Vec<CostEntry>)> {
    let offers = chosen_offers(catalog, config, machine)?;
    let primary = if !config.instances.is_empty() || machine.gpu_arch.is_some() {
        offers
            .iter()
            .find(|o| {
                !config.instances.is_empty()
                    || Some(o.gpu_model.as_str()) == machine.gpu_arch.as_deref()
            })
            .map(|o| o.instance_type.clone())
    } else {
        None
    };
    let mut rows = Vec::new();
    for run in runs.iter().filter(|r| r.throughput_tokens_per_sec > 0.0) {
        let record_json = json!({
            "model": run.model,
            "throughput_tokens_per_sec": run.throughput_tokens_per_sec,
            "total_tokens": run.total_tokens,
            "inference_time_s": run.inference_time_s,
            "avg_power_w": run.avg_power_w,
            "gpu": machine.gpu_name,
        });
        let parsed = BenchmarkResults::parse(
            &record_json.to_string(),
            std::path::Path::new("benchmark_results.json"),
        )?;
        for record in &parsed.records {
            for offer in &offers {
                let row = CostRow::new(record, offer, GpusUsed::Count(1))?;
                rows.push(CostEntry {
                    model: row.model,
                    provider: row.provider,
                    instance_type: row.instance_type,
                    gpu_model: row.gpu_model,
                    gpu_count: row.gpu_count,
                    usd_per_hour: row.billed_usd_per_hour,
                    throughput_tokens_per_sec: row.throughput_tokens_per_sec,
                    cost_per_1m_tokens: row.cost_per_1m_tokens,
                    tokens_per_dollar: row.tokens_per_dollar,
                    measured_gpu_model: row.measured_gpu_model,
                    price_date: row.price_date,
                });
            }
        }
    }
    Ok((primary, rows))
}
