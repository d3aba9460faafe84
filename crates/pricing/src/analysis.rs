//! Cost analysis of benchmark records over catalog offers: one [`CostRow`] per
//! (model, instance), sorted by cost or throughput.
//!
//! Every row applies the *measured* throughput to the instance's price: the question it
//! answers is "what would this throughput cost on that instance". Only rows whose GPU is
//! the one the benchmark ran on are measurements; the others are what-ifs.

use serde::Serialize;

use crate::cost::{CostReport, GpusUsed};
use crate::error::{PricingError, Result};
use crate::offer::InstanceOffer;
use crate::results::BenchmarkRecord;

/// How to order the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Cheapest cost per 1M tokens first (ties: higher throughput first).
    #[default]
    Cost,
    /// Highest throughput first (ties: cheaper first).
    Throughput,
}

/// One model on one instance, with every cost figure. Flat, so it serialises to one CSV row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostRow {
    /// Model name from the results file.
    pub model: String,
    /// Offer provider.
    pub provider: String,
    /// Offer instance type.
    pub instance_type: String,
    /// GPU model key of the offer.
    pub gpu_model: String,
    /// GPUs in the instance.
    pub gpu_count: u32,
    /// GPUs billed (see [`GpusUsed`]).
    pub gpus_used: u32,
    /// On-demand list price of the whole instance, $/hour.
    pub usd_per_hour: f64,
    /// Price billed for the GPUs used, $/hour.
    pub billed_usd_per_hour: f64,
    /// Measured throughput, tokens/s.
    pub throughput_tokens_per_sec: f64,
    /// Tokens per hour at that throughput.
    pub tokens_per_hour: f64,
    /// US dollars per one million tokens.
    pub cost_per_1m_tokens: f64,
    /// Tokens per US dollar.
    pub tokens_per_dollar: f64,
    /// Tokens/s per GPU divided by $/GPU-hour.
    pub tokens_per_sec_per_gpu_dollar: f64,
    /// Tokens per joule of the benchmark run (a property of the run, not of the offer).
    pub tokens_per_joule: Option<f64>,
    /// kWh per one million tokens of the benchmark run.
    pub kwh_per_1m_tokens: Option<f64>,
    /// GPU the benchmark ran on, if the results file says.
    pub measured_on_gpu: Option<String>,
    /// Whether this offer has the GPU model the benchmark ran on (its architecture key
    /// equals the offer's `gpu_model`): the row's throughput is then a measurement for that
    /// GPU, not a what-if.
    pub measured_gpu_model: bool,
    /// Date of the offer's price.
    pub price_date: Option<String>,
    /// Source URL of the offer's price.
    pub price_source: Option<String>,
}

impl CostRow {
    /// The figures of `record` on `offer` with `gpus` billed.
    ///
    /// # Errors
    /// As [`CostReport::compute`].
    pub fn new(record: &BenchmarkRecord, offer: &InstanceOffer, gpus: GpusUsed) -> Result<Self> {
        let report = CostReport::compute(offer, record.throughput, gpus)?;
        let efficiency = record.tokens_per_joule();
        Ok(Self {
            model: record.model.clone(),
            provider: offer.provider.clone(),
            instance_type: offer.instance_type.clone(),
            gpu_model: offer.gpu_model.clone(),
            gpu_count: offer.gpu_count,
            gpus_used: report.gpus_used,
            usd_per_hour: offer.usd_per_hour,
            billed_usd_per_hour: report.billed_usd_per_hour.value(),
            throughput_tokens_per_sec: report.throughput.value(),
            tokens_per_hour: report.tokens_per_hour.0,
            cost_per_1m_tokens: report.cost_per_1m_tokens.0,
            tokens_per_dollar: report.tokens_per_dollar.0,
            tokens_per_sec_per_gpu_dollar: report.tokens_per_sec_per_gpu_dollar,
            tokens_per_joule: efficiency.map(|e| e.0),
            kwh_per_1m_tokens: efficiency.map(|e| e.kwh_per_1m_tokens()),
            measured_on_gpu: record.gpu.clone(),
            measured_gpu_model: record.gpu_arch.as_deref() == Some(offer.gpu_model.as_str()),
            price_date: offer.price_date.clone(),
            price_source: offer.source.clone(),
        })
    }
}

/// The rows of an analysis, plus the offers that could not take part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostTable {
    /// One row per (record, offer), sorted.
    pub rows: Vec<CostRow>,
    /// `provider/instance_type` of offers left out because they have fewer GPUs than
    /// [`GpusUsed::Count`] asks for.
    pub skipped_offers: Vec<String>,
}

impl CostTable {
    /// Costs every record on every offer and sorts the rows. With [`GpusUsed::Count`]`(n)`,
    /// offers with fewer than `n` GPUs are skipped (listed in `skipped_offers`).
    ///
    /// # Errors
    /// [`PricingError::InvalidInput`] if there are no records, no offers, or no offer with
    /// enough GPUs; otherwise as [`CostRow::new`].
    pub fn build(
        records: &[BenchmarkRecord],
        offers: &[InstanceOffer],
        gpus: GpusUsed,
        sort: SortKey,
    ) -> Result<Self> {
        if records.is_empty() || offers.is_empty() {
            return Err(PricingError::InvalidInput {
                what: "analysis",
                reason: "needs at least one benchmark record and one instance".to_string(),
            });
        }
        let (usable, too_small): (Vec<&InstanceOffer>, Vec<&InstanceOffer>) =
            offers.iter().partition(|o| gpus.resolve(o).is_ok());
        if usable.is_empty() {
            let reason = match gpus {
                GpusUsed::Count(n) => format!("no selected instance has {n} or more GPUs"),
                GpusUsed::All => "no selected instance has a GPU".to_string(),
            };
            return Err(PricingError::InvalidInput {
                what: "GPUs used",
                reason,
            });
        }
        let mut rows = Vec::with_capacity(records.len() * usable.len());
        for record in records {
            for offer in &usable {
                rows.push(CostRow::new(record, offer, gpus)?);
            }
        }
        sort_rows(&mut rows, sort);
        Ok(Self {
            rows,
            skipped_offers: too_small.iter().map(|o| o.key()).collect(),
        })
    }
}

/// Sorts rows in place (stable: equal rows keep catalog order).
pub fn sort_rows(rows: &mut [CostRow], key: SortKey) {
    match key {
        SortKey::Cost => rows.sort_by(|a, b| {
            a.cost_per_1m_tokens.total_cmp(&b.cost_per_1m_tokens).then(
                b.throughput_tokens_per_sec
                    .total_cmp(&a.throughput_tokens_per_sec),
            )
        }),
        SortKey::Throughput => rows.sort_by(|a, b| {
            b.throughput_tokens_per_sec
                .total_cmp(&a.throughput_tokens_per_sec)
                .then(a.cost_per_1m_tokens.total_cmp(&b.cost_per_1m_tokens))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::TokensPerSecond;
    use approx::assert_relative_eq;

    fn offer(name: &str, gpus: u32, price: f64) -> InstanceOffer {
        InstanceOffer {
            provider: "p".into(),
            instance_type: name.into(),
            gpu_model: "t4".into(),
            gpu_count: gpus,
            gpu_memory_gb: 16.0 * f64::from(gpus),
            vcpus: None,
            ram_gb: None,
            usd_per_hour: price,
            region: None,
            price_date: Some("2026-11-27".into()),
            source: Some("https://example.com".into()),
            note: None,
        }
    }

    fn record(model: &str, tps: f64) -> BenchmarkRecord {
        BenchmarkRecord {
            model: model.into(),
            throughput: TokensPerSecond::new(tps).unwrap(),
            output_throughput: None,
            total_tokens: None,
            inference_time_s: None,
            avg_power: None,
            energy: None,
            gpu: None,
            gpu_arch: None,
            device: None,
        }
    }

    #[test]
    fn one_row_per_record_and_offer_sorted_by_cost() {
        let offers = [offer("dear", 1, 2.0), offer("cheap", 1, 0.5)];
        let records = [record("a", 100.0), record("b", 1000.0)];
        let table = CostTable::build(&records, &offers, GpusUsed::All, SortKey::Cost).unwrap();
        assert_eq!(table.rows.len(), 4);
        let order: Vec<(&str, &str)> = table
            .rows
            .iter()
            .map(|r| (r.model.as_str(), r.instance_type.as_str()))
            .collect();
        // $/1M: b/cheap 0.1389, b/dear 0.5556, a/cheap 1.3889, a/dear 5.5556.
        assert_eq!(
            order,
            [("b", "cheap"), ("b", "dear"), ("a", "cheap"), ("a", "dear")]
        );
        assert_relative_eq!(
            table.rows[0].cost_per_1m_tokens,
            0.5 / 3.6,
            max_relative = 1e-12
        );
    }

    #[test]
    fn throughput_sort_puts_fastest_model_first_then_cheapest() {
        let offers = [offer("dear", 1, 2.0), offer("cheap", 1, 0.5)];
        let records = [record("slow", 10.0), record("fast", 20.0)];
        let table =
            CostTable::build(&records, &offers, GpusUsed::All, SortKey::Throughput).unwrap();
        assert_eq!(table.rows[0].model, "fast");
        assert_eq!(table.rows[0].instance_type, "cheap");
        assert_eq!(table.rows[3].model, "slow");
    }

    #[test]
    fn gpus_used_skips_instances_that_are_too_small() {
        let offers = [offer("one", 1, 1.0), offer("eight", 8, 32.0)];
        let table = CostTable::build(
            &[record("m", 1000.0)],
            &offers,
            GpusUsed::Count(2),
            SortKey::Cost,
        )
        .unwrap();
        assert_eq!(table.skipped_offers, vec!["p/one".to_string()]);
        assert_eq!(table.rows.len(), 1);
        // 2 of 8 GPUs at $32/h -> billed $8/h.
        assert_relative_eq!(table.rows[0].billed_usd_per_hour, 8.0);
        let err = CostTable::build(
            &[record("m", 1.0)],
            &offers[..1],
            GpusUsed::Count(2),
            SortKey::Cost,
        )
        .unwrap_err();
        assert!(err.to_string().contains("2 or more GPUs"), "{err}");
    }

    #[test]
    fn energy_columns_come_from_the_record() {
        let mut r = record("m", 600.0);
        r.avg_power = Some(crate::units::Watts::new(200.0).unwrap());
        let row = CostRow::new(&r, &offer("x", 1, 1.0), GpusUsed::All).unwrap();
        assert_relative_eq!(row.tokens_per_joule.unwrap(), 3.0);
        // 1e6 tokens / 3 tokens/J = 333,333 J = 0.0925926 kWh.
        assert_relative_eq!(
            row.kwh_per_1m_tokens.unwrap(),
            1.0e6 / 3.0 / 3.6e6,
            max_relative = 1e-12
        );
    }

    #[test]
    fn rows_on_the_benchmarked_gpu_model_are_flagged() {
        let mut r = record("m", 100.0);
        r.gpu_arch = Some("t4".into());
        let mut l4 = offer("l4-box", 1, 1.0);
        l4.gpu_model = "l4".into();
        let table = CostTable::build(
            &[r],
            &[offer("t4-box", 1, 1.0), l4],
            GpusUsed::All,
            SortKey::Cost,
        )
        .unwrap();
        let flagged: Vec<(&str, bool)> = table
            .rows
            .iter()
            .map(|r| (r.instance_type.as_str(), r.measured_gpu_model))
            .collect();
        assert_eq!(flagged, [("t4-box", true), ("l4-box", false)]);
    }

    #[test]
    fn empty_inputs_are_errors() {
        assert!(
            CostTable::build(&[], &[offer("x", 1, 1.0)], GpusUsed::All, SortKey::Cost).is_err()
        );
        assert!(CostTable::build(&[record("m", 1.0)], &[], GpusUsed::All, SortKey::Cost).is_err());
    }
}
