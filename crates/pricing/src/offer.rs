//! One priced cloud instance ([`InstanceOffer`]) and its validation.

use serde::{Deserialize, Serialize};

use crate::error::{PricingError, Result};
use crate::units::UsdPerHour;

/// GPU model keys, the same as gpu-probe's architecture table keys
/// (`gpu_probe::arch_table()`; a test keeps the two in step). Catalog rows use one of these;
/// user price files may use others (they are only compared as strings).
pub const KNOWN_GPU_MODELS: &[&str] = &[
    "v100-sxm2-16gb",
    "v100-sxm2-32gb",
    "t4",
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "a100-pcie-40gb",
    "a100-pcie-80gb",
    "a10",
    "a10g",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "l4",
    "l40s",
    "h200",
    "b200",
];

/// One on-demand cloud offer: an instance type of a provider, its GPUs and its hourly price.
///
/// This is the schema of one `[[instance]]` row, both in the built-in catalog and in a user
/// `--prices` file (TOML or JSON). Unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceOffer {
    /// Cloud or GPU host, lower case ("aws", "gcp", "azure", "lambda", ...).
    pub provider: String,
    /// The provider's name for the instance ("g4dn.xlarge"); unique per provider.
    pub instance_type: String,
    /// GPU model key, see [`KNOWN_GPU_MODELS`].
    pub gpu_model: String,
    /// Number of GPUs in one instance (>= 1).
    pub gpu_count: u32,
    /// GPU memory of the whole instance in GB (all GPUs together).
    pub gpu_memory_gb: f64,
    /// Host vCPUs, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// Host RAM in GB, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_gb: Option<f64>,
    /// On-demand price of the whole instance, US dollars per hour (> 0).
    pub usd_per_hour: f64,
    /// Region the price is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Date the price was read from `source`, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_date: Option<String>,
    /// URL the price was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Caveats (how sure the figure is, what it includes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl InstanceOffer {
    /// `provider/instance_type`, the key under which rows override each other.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}/{}", self.provider, self.instance_type)
    }

    /// Whether `name` names this offer: its instance type, or `provider/instance_type`
    /// (or `provider:instance_type`), compared case-insensitively.
    #[must_use]
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.trim();
        if name.eq_ignore_ascii_case(&self.instance_type) {
            return true;
        }
        match name.split_once(['/', ':']) {
            Some((provider, instance)) => {
                provider.eq_ignore_ascii_case(&self.provider)
                    && instance.eq_ignore_ascii_case(&self.instance_type)
            }
            None => false,
        }
    }

    /// The whole instance's price.
    ///
    /// # Errors
    /// [`PricingError::InvalidInput`] if the row was built by hand with a non-positive price
    /// (rows loaded through [`crate::PriceCatalog`] are already validated).
    pub fn price(&self) -> Result<UsdPerHour> {
        UsdPerHour::new(self.usd_per_hour)
    }

    /// Price of one GPU-hour: `usd_per_hour / gpu_count`.
    ///
    /// # Errors
    /// As [`InstanceOffer::price`], and [`PricingError::InvalidInput`] if `gpu_count` is 0.
    pub fn price_per_gpu(&self) -> Result<UsdPerHour> {
        if self.gpu_count == 0 {
            return Err(PricingError::InvalidInput {
                what: "gpu_count",
                reason: format!("{} has no GPUs", self.key()),
            });
        }
        UsdPerHour::new(self.usd_per_hour / f64::from(self.gpu_count))
    }

    /// Checks every value of the row; `origin` and `index` (0-based) only label the error.
    ///
    /// # Errors
    /// [`PricingError::InvalidOffer`] naming the row and the first bad field.
    pub fn validate(&self, origin: &str, index: usize) -> Result<()> {
        let fail = |reason: String| {
            let row = if self.provider.trim().is_empty() || self.instance_type.trim().is_empty() {
                format!("#{}", index + 1)
            } else {
                self.key()
            };
            Err(PricingError::InvalidOffer {
                origin: origin.to_string(),
                row,
                reason,
            })
        };
        for (field, value) in [
            ("provider", &self.provider),
            ("instance_type", &self.instance_type),
            ("gpu_model", &self.gpu_model),
        ] {
            if value.trim().is_empty() {
                return fail(format!("`{field}` is empty"));
            }
        }
        if !(self.usd_per_hour.is_finite() && self.usd_per_hour > 0.0) {
            return fail(format!(
                "`usd_per_hour` must be > 0, got {}",
                self.usd_per_hour
            ));
        }
        if self.gpu_count == 0 {
            return fail("`gpu_count` must be >= 1".to_string());
        }
        if !(self.gpu_memory_gb.is_finite() && self.gpu_memory_gb > 0.0) {
            return fail(format!(
                "`gpu_memory_gb` must be > 0, got {}",
                self.gpu_memory_gb
            ));
        }
        if self.vcpus == Some(0) {
            return fail("`vcpus` must be >= 1 when given".to_string());
        }
        if let Some(ram) = self.ram_gb {
            if !(ram.is_finite() && ram > 0.0) {
                return fail(format!("`ram_gb` must be > 0 when given, got {ram}"));
            }
        }
        if let Some(date) = &self.price_date {
            if !is_iso_date(date) {
                return fail(format!("`price_date` must be YYYY-MM-DD, got {date:?}"));
            }
        }
        if let Some(source) = &self.source {
            if source.trim().is_empty() {
                return fail("`source` is empty (leave it out instead)".to_string());
            }
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` with a month 01-12 and a day 01-31 (no calendar check beyond that).
fn is_iso_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let all_digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(year, 4) && all_digits(month, 2) && all_digits(day, 2)) {
        return false;
    }
    let month: u32 = month.parse().unwrap_or(0);
    let day: u32 = day.parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn offer() -> InstanceOffer {
        InstanceOffer {
            provider: "aws".into(),
            instance_type: "p4d.24xlarge".into(),
            gpu_model: "a100-sxm-40gb".into(),
            gpu_count: 8,
            gpu_memory_gb: 320.0,
            vcpus: Some(96),
            ram_gb: Some(1152.0),
            usd_per_hour: 32.0,
            region: None,
            price_date: Some("2026-11-27".into()),
            source: Some("https://example.com".into()),
            note: None,
        }
    }

    #[test]
    fn per_gpu_price_divides_by_gpu_count() {
        assert_eq!(offer().price_per_gpu().unwrap().value(), 4.0);
    }

    #[test]
    fn names_match_case_insensitively_with_or_without_provider() {
        let o = offer();
        assert!(o.is_named("p4d.24xlarge"));
        assert!(o.is_named("P4D.24XLARGE"));
        assert!(o.is_named("aws/p4d.24xlarge"));
        assert!(o.is_named("aws:p4d.24xlarge"));
        assert!(!o.is_named("gcp/p4d.24xlarge"));
        assert!(!o.is_named("p4d"));
    }

    #[test]
    fn validation_rejects_bad_values_and_names_the_row() {
        type Mutation = fn(&mut InstanceOffer);
        let cases: Vec<(Mutation, &str)> = vec![
            (|o| o.usd_per_hour = 0.0, "usd_per_hour"),
            (|o| o.usd_per_hour = -1.5, "got -1.5"),
            (|o| o.gpu_count = 0, "gpu_count"),
            (|o| o.gpu_memory_gb = 0.0, "gpu_memory_gb"),
            (|o| o.vcpus = Some(0), "vcpus"),
            (|o| o.ram_gb = Some(-1.0), "ram_gb"),
            (|o| o.price_date = Some("27/11/2026".into()), "price_date"),
            (|o| o.price_date = Some("2026-13-01".into()), "price_date"),
            (|o| o.gpu_model = " ".into(), "gpu_model"),
            (|o| o.source = Some(String::new()), "source"),
        ];
        for (mutate, expected) in cases {
            let mut o = offer();
            mutate(&mut o);
            let err = o.validate("prices.toml", 0).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} lacks {expected}");
            assert!(err.contains("aws/p4d.24xlarge"), "{err}");
            assert!(err.starts_with("prices.toml"), "{err}");
        }
        assert!(offer().validate("x", 0).is_ok());
    }

    #[test]
    fn unnamed_row_is_labelled_by_position() {
        let mut o = offer();
        o.provider = String::new();
        let err = o.validate("p.json", 2).unwrap_err().to_string();
        assert!(err.contains("row #3"), "{err}");
    }
}
