//! Energy efficiency: tokens per joule (= tokens/s per watt) from an average power or from
//! the energy of a whole run.

use crate::units::{Joules, TokensPerJoule, TokensPerSecond, Watts};

/// Tokens per joule from throughput and average power: `(tok/s) / W`.
///
/// One watt is one joule per second, so this is also "tokens per second per watt".
#[must_use]
pub fn tokens_per_joule_from_power(throughput: TokensPerSecond, power: Watts) -> TokensPerJoule {
    TokensPerJoule(throughput.value() / power.value())
}

/// Tokens per joule from a token count and the energy spent producing it: `tokens / J`.
#[must_use]
pub fn tokens_per_joule_from_energy(tokens: f64, energy: Joules) -> TokensPerJoule {
    TokensPerJoule(tokens / energy.value())
}

/// Tokens per second per watt; numerically the same as [`tokens_per_joule_from_power`],
/// kept under this name because both terms are in use.
#[must_use]
pub fn tokens_per_second_per_watt(throughput: TokensPerSecond, power: Watts) -> f64 {
    tokens_per_joule_from_power(throughput, power).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn from_power() {
        // 1500 tok/s at 300 W -> 5 tokens/J.
        let t = TokensPerSecond::new(1500.0).unwrap();
        let w = Watts::new(300.0).unwrap();
        assert_relative_eq!(tokens_per_joule_from_power(t, w).0, 5.0);
        assert_relative_eq!(tokens_per_second_per_watt(t, w), 5.0);
    }

    #[test]
    fn from_energy_agrees_with_power() {
        // 6400 tokens in 10 s at 70 W = 700 J -> 9.142857 tokens/J; power route: 640 / 70.
        let by_energy = tokens_per_joule_from_energy(6400.0, Joules::new(700.0).unwrap());
        let by_power = tokens_per_joule_from_power(
            TokensPerSecond::new(640.0).unwrap(),
            Watts::new(70.0).unwrap(),
        );
        assert_relative_eq!(by_energy.0, 9.142_857_142_857_142, max_relative = 1e-12);
        assert_relative_eq!(by_energy.0, by_power.0, max_relative = 1e-12);
    }
}
