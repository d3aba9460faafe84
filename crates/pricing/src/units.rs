//! Quantities with units in their names, so a price can't be passed where a throughput is
//! expected. Every constructor that takes user numbers checks them (finite and > 0).

use serde::{Deserialize, Serialize};

use crate::error::{PricingError, Result};

/// Seconds in one hour.
pub const SECONDS_PER_HOUR: f64 = 3600.0;

/// Joules in one kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

fn check_positive(what: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PricingError::InvalidInput {
            what,
            reason: format!("must be a finite number > 0, got {value}"),
        })
    }
}

macro_rules! positive_quantity {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            #[doc = concat!("A ", $what, "; errors unless `value` is finite and > 0.")]
            ///
            /// # Errors
            /// [`PricingError::InvalidInput`] for zero, negative, NaN or infinite values.
            pub fn new(value: f64) -> Result<Self> {
                check_positive($what, value).map(Self)
            }

            /// The plain number.
            #[must_use]
            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_quantity!(
    /// An hourly price in US dollars (`$/hour`), for a whole instance or one GPU.
    UsdPerHour,
    "price in USD per hour"
);
positive_quantity!(
    /// Generation throughput in tokens per second.
    TokensPerSecond,
    "throughput in tokens per second"
);
positive_quantity!(
    /// Average electrical power in watts.
    Watts,
    "power in watts"
);
positive_quantity!(
    /// Energy in joules.
    Joules,
    "energy in joules"
);

/// Tokens produced in one hour at a given throughput.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokensPerHour(pub f64);

/// US dollars to produce one million tokens.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CostPer1MTokens(pub f64);

/// Tokens produced per US dollar spent.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokensPerDollar(pub f64);

/// Tokens per joule of energy (numerically equal to tokens/s per watt).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokensPerJoule(pub f64);

impl TokensPerSecond {
    /// Tokens in one hour: `tok/s × 3600`.
    #[must_use]
    pub fn per_hour(self) -> TokensPerHour {
        TokensPerHour(self.0 * SECONDS_PER_HOUR)
    }
}

impl TokensPerJoule {
    /// Kilowatt-hours of energy for one million tokens: `1e6 / (tokens/J) / 3.6e6`.
    #[must_use]
    pub fn kwh_per_1m_tokens(self) -> f64 {
        1.0e6 / self.0 / JOULES_PER_KWH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_positive_and_non_finite() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(UsdPerHour::new(bad).is_err(), "{bad} accepted");
            assert!(TokensPerSecond::new(bad).is_err(), "{bad} accepted");
        }
        assert!(Watts::new(1e-9).is_ok());
    }

    #[test]
    fn error_names_the_quantity() {
        let err = Watts::new(-3.0).unwrap_err().to_string();
        assert!(err.contains("power in watts"), "{err}");
        assert!(err.contains("-3"), "{err}");
    }

    #[test]
    fn per_hour_is_times_3600() {
        let tps = TokensPerSecond::new(200.0).unwrap();
        assert_eq!(tps.per_hour(), TokensPerHour(720_000.0));
    }

    #[test]
    fn kwh_per_million_tokens() {
        // 10 tokens/J -> 1e5 J per 1M tokens -> 1e5 / 3.6e6 kWh = 0.027777...
        let kwh = TokensPerJoule(10.0).kwh_per_1m_tokens();
        approx::assert_relative_eq!(kwh, 1.0e5 / 3.6e6, max_relative = 1e-12);
    }
}
