//! Cost math: from a measured throughput and an hourly price to cost per 1M tokens, tokens
//! per dollar and throughput per GPU-dollar.
//!
//! # Partial use of a multi-GPU instance
//! A benchmark may use only `N` of an instance's `G` GPUs (say 1 GPU of an 8×H100
//! `p5.48xlarge`). [`GpusUsed`] then scales the hourly price by `N / G` — the share of the
//! instance the benchmark occupied, as if the other GPUs did other paying work:
//!
//! ```text
//! billed $/h          = usd_per_hour × N / G
//! tokens/hour         = tok/s × 3600
//! cost per 1M tokens  = billed $/h ÷ tokens/hour × 1e6
//! tokens per dollar   = tokens/hour ÷ billed $/h
//! tok/s per GPU-$     = (tok/s ÷ N) ÷ (usd_per_hour ÷ G)   (= tok/s ÷ billed $/h)
//! ```
//!
//! With `N = G` (the default, and what the seed tutorial does) the whole instance is billed.

use serde::{Deserialize, Serialize};

use crate::error::{PricingError, Result};
use crate::offer::InstanceOffer;
use crate::units::{CostPer1MTokens, TokensPerDollar, TokensPerHour, TokensPerSecond, UsdPerHour};

/// How many of an instance's GPUs the benchmark used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpusUsed {
    /// All of them: bill the whole instance (the default).
    #[default]
    All,
    /// This many (1..=gpu_count): bill `usd_per_hour × n / gpu_count`.
    Count(u32),
}

impl GpusUsed {
    /// The number of GPUs this means for `offer`.
    ///
    /// # Errors
    /// [`PricingError::InvalidInput`] if the count is 0 or more than the instance has.
    pub fn resolve(self, offer: &InstanceOffer) -> Result<u32> {
        match self {
            Self::All => Ok(offer.gpu_count),
            Self::Count(n) if n >= 1 && n <= offer.gpu_count => Ok(n),
            Self::Count(n) => Err(PricingError::InvalidInput {
                what: "GPUs used",
                reason: format!(
                    "{} has {} GPU(s), cannot bill {n} of them",
                    offer.key(),
                    offer.gpu_count
                ),
            }),
        }
    }
}

/// The price actually charged to the benchmark: the instance price scaled by the GPUs used.
///
/// # Errors
/// As [`GpusUsed::resolve`] and [`InstanceOffer::price`].
pub fn billed_price(offer: &InstanceOffer, gpus: GpusUsed) -> Result<UsdPerHour> {
    let used = gpus.resolve(offer)?;
    UsdPerHour::new(offer.price()?.value() * f64::from(used) / f64::from(offer.gpu_count))
}

/// US dollars per million tokens at `price` and `throughput`.
#[must_use]
pub fn cost_per_1m_tokens(price: UsdPerHour, throughput: TokensPerSecond) -> CostPer1MTokens {
    CostPer1MTokens(price.value() / throughput.per_hour().0 * 1.0e6)
}

/// Tokens per US dollar at `price` and `throughput`.
#[must_use]
pub fn tokens_per_dollar(price: UsdPerHour, throughput: TokensPerSecond) -> TokensPerDollar {
    TokensPerDollar(throughput.per_hour().0 / price.value())
}

/// The cost figures of one throughput on one offer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// GPUs of the instance that were billed.
    pub gpus_used: u32,
    /// Price charged for those GPUs, $/hour.
    pub billed_usd_per_hour: UsdPerHour,
    /// The measured throughput, tokens/s.
    pub throughput: TokensPerSecond,
    /// Tokens per hour at that throughput.
    pub tokens_per_hour: TokensPerHour,
    /// US dollars per one million tokens.
    pub cost_per_1m_tokens: CostPer1MTokens,
    /// Tokens per US dollar.
    pub tokens_per_dollar: TokensPerDollar,
    /// Throughput per GPU-dollar: tokens/s per GPU divided by $/GPU-hour.
    pub tokens_per_sec_per_gpu_dollar: f64,
}

impl CostReport {
    /// Computes every figure for `throughput` on `offer` with `gpus` of its GPUs billed.
    ///
    /// # Errors
    /// As [`billed_price`].
    pub fn compute(
        offer: &InstanceOffer,
        throughput: TokensPerSecond,
        gpus: GpusUsed,
    ) -> Result<Self> {
        let gpus_used = gpus.resolve(offer)?;
        let billed = billed_price(offer, gpus)?;
        let per_gpu_throughput = throughput.value() / f64::from(gpus_used);
        let per_gpu_price = offer.price_per_gpu()?.value();
        Ok(Self {
            gpus_used,
            billed_usd_per_hour: billed,
            throughput,
            tokens_per_hour: throughput.per_hour(),
            cost_per_1m_tokens: cost_per_1m_tokens(billed, throughput),
            tokens_per_dollar: tokens_per_dollar(billed, throughput),
            tokens_per_sec_per_gpu_dollar: per_gpu_throughput / per_gpu_price,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn offer(gpus: u32, price: f64) -> InstanceOffer {
        InstanceOffer {
            provider: "aws".into(),
            instance_type: "test".into(),
            gpu_model: "t4".into(),
            gpu_count: gpus,
            gpu_memory_gb: 16.0 * f64::from(gpus),
            vcpus: None,
            ram_gb: None,
            usd_per_hour: price,
            region: None,
            price_date: None,
            source: None,
            note: None,
        }
    }

    fn tps(v: f64) -> TokensPerSecond {
        TokensPerSecond::new(v).unwrap()
    }

    #[test]
    fn seed_t4_gpt2_row() {
        // Seed baseline table: T4 (g4dn.xlarge, $0.526/h), GPT-2 ~200 tok/s -> $0.73 per 1M.
        // 200 tok/s * 3600 = 720,000 tok/h; 0.526 / 720,000 * 1e6 = 0.730555...
        let r = CostReport::compute(&offer(1, 0.526), tps(200.0), GpusUsed::All).unwrap();
        assert_relative_eq!(r.tokens_per_hour.0, 720_000.0);
        assert_relative_eq!(
            r.cost_per_1m_tokens.0,
            0.730_555_555_555_555_6,
            max_relative = 1e-12
        );
        // 720,000 / 0.526 = 1,368,821.29...
        assert_relative_eq!(
            r.tokens_per_dollar.0,
            1_368_821.292_775_665,
            max_relative = 1e-12
        );
        // 1 GPU: 200 / 0.526 = 380.228...
        assert_relative_eq!(
            r.tokens_per_sec_per_gpu_dollar,
            380.228_136_882_129_3,
            max_relative = 1e-12
        );
    }

    #[test]
    fn seed_l4_llama7b_row() {
        // Seed: L4 at $1.10/h, Llama-2-7B ~120 tok/s -> $2.54 per 1M.
        // 1.10 / 432,000 * 1e6 = 2.546296...
        let c = cost_per_1m_tokens(UsdPerHour::new(1.10).unwrap(), tps(120.0));
        assert_relative_eq!(c.0, 2.546_296_296_296_296, max_relative = 1e-12);
    }

    #[test]
    fn whole_eight_gpu_instance() {
        // 8 GPUs at $32/h, 1000 tok/s on all 8:
        // tok/h 3.6e6; $/1M = 32/3.6e6*1e6 = 8.888...; tok/$ = 112,500;
        // per GPU-$: (1000/8) / (32/8) = 125/4 = 31.25.
        let r = CostReport::compute(&offer(8, 32.0), tps(1000.0), GpusUsed::All).unwrap();
        assert_eq!(r.gpus_used, 8);
        assert_relative_eq!(r.billed_usd_per_hour.value(), 32.0);
        assert_relative_eq!(r.cost_per_1m_tokens.0, 80.0 / 9.0, max_relative = 1e-12);
        assert_relative_eq!(r.tokens_per_dollar.0, 112_500.0, max_relative = 1e-12);
        assert_relative_eq!(r.tokens_per_sec_per_gpu_dollar, 31.25, max_relative = 1e-12);
    }

    #[test]
    fn one_gpu_of_eight_bills_an_eighth() {
        // Same instance, benchmark on 1 GPU at 1000 tok/s: billed $4/h;
        // $/1M = 4/3.6e6*1e6 = 1.111...; tok/$ = 900,000; per GPU-$: 1000 / 4 = 250.
        let r = CostReport::compute(&offer(8, 32.0), tps(1000.0), GpusUsed::Count(1)).unwrap();
        assert_eq!(r.gpus_used, 1);
        assert_relative_eq!(r.billed_usd_per_hour.value(), 4.0);
        assert_relative_eq!(
            r.cost_per_1m_tokens.0,
            1.111_111_111_111_111,
            max_relative = 1e-12
        );
        assert_relative_eq!(r.tokens_per_dollar.0, 900_000.0, max_relative = 1e-12);
        assert_relative_eq!(r.tokens_per_sec_per_gpu_dollar, 250.0, max_relative = 1e-12);
    }

    #[test]
    fn per_gpu_dollar_identity_holds() {
        let r = CostReport::compute(&offer(4, 10.0), tps(321.0), GpusUsed::Count(3)).unwrap();
        assert_relative_eq!(
            r.tokens_per_sec_per_gpu_dollar,
            321.0 / r.billed_usd_per_hour.value(),
            max_relative = 1e-12
        );
    }

    #[test]
    fn gpus_used_out_of_range_is_an_error() {
        for n in [0, 9] {
            let err = CostReport::compute(&offer(8, 32.0), tps(1.0), GpusUsed::Count(n))
                .unwrap_err()
                .to_string();
            assert!(err.contains("has 8 GPU(s)"), "{err}");
        }
    }
}
