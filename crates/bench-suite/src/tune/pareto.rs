//! The Pareto front of throughput (higher is better) against latency (lower is better).
//!
//! A point is on the front when no other point is at least as good in both and strictly
//! better in one: no `q` with `q.throughput ≥ p.throughput`, `q.latency ≤ p.latency` and
//! one of the two strict. Equal points are all on the front. Cost: `O(n log n)` (a sort,
//! then one pass keeping the best throughput seen so far).

use serde::{Deserialize, Serialize};

/// A point to place: its throughput and latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradeOff {
    /// Higher is better (tokens per second).
    pub throughput: f64,
    /// Lower is better (ms).
    pub latency: f64,
}

/// Whether `q` dominates `p`: at least as good in both, strictly better in one.
pub fn dominates(q: TradeOff, p: TradeOff) -> bool {
    q.throughput >= p.throughput
        && q.latency <= p.latency
        && (q.throughput > p.throughput || q.latency < p.latency)
}

/// Indices of the points on the front, by increasing latency (then decreasing throughput,
/// then index). Points with a non-finite coordinate are never on it.
pub fn pareto_front(points: &[TradeOff]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].throughput.is_finite() && points[i].latency.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (points[a], points[b]);
        pa.latency
            .total_cmp(&pb.latency)
            .then(pb.throughput.total_cmp(&pa.throughput))
            .then(a.cmp(&b))
    });
    let mut front = Vec::new();
    // Walking by latency, a point is dominated iff an earlier point (latency ≤) has a
    // throughput ≥ its own with one strict. Track the best throughput seen and the latency it
    // was seen at, to tell exact duplicates (kept) from dominated points.
    let mut best: Option<TradeOff> = None;
    for i in order {
        let p = points[i];
        let keep = match best {
            None => true,
            Some(b) => p.throughput > b.throughput || (p == b),
        };
        if keep {
            front.push(i);
        }
        if best.is_none_or(|b| p.throughput > b.throughput) {
            best = Some(p);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(throughput: f64, latency: f64) -> TradeOff {
        TradeOff {
            throughput,
            latency,
        }
    }

    #[test]
    fn small_front() {
        let pts = [
            t(100.0, 10.0), // on
            t(90.0, 12.0),  // dominated by 0
            t(200.0, 20.0), // on
            t(200.0, 25.0), // dominated by 2 (same throughput, worse latency)
            t(150.0, 10.0), // on, dominates 0
            t(150.0, 10.0), // duplicate of 4: on
            t(f64::NAN, 1.0),
        ];
        assert_eq!(pareto_front(&pts), vec![4, 5, 2]);
        assert!(pareto_front(&[]).is_empty());
    }

    fn naive(points: &[TradeOff]) -> Vec<usize> {
        (0..points.len())
            .filter(|&i| {
                points[i].throughput.is_finite()
                    && points[i].latency.is_finite()
                    && !points.iter().any(|&q| dominates(q, points[i]))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn front_matches_the_definition(
            raw in proptest::collection::vec((0u8..20, 0u8..20), 0..40)
        ) {
            // Small integer grids make ties and duplicates common.
            let pts: Vec<TradeOff> = raw.iter().map(|&(a, b)| t(f64::from(a), f64::from(b))).collect();
            let mut got = pareto_front(&pts);
            got.sort_unstable();
            prop_assert_eq!(got, naive(&pts));
        }
    }
}
