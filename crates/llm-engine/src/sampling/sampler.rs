//! Picks the next token from one row of f32 logits on the host.
//!
//! Greedy is an argmax (lowest index wins a tie, like `torch.argmax`). Random sampling seeds a
//! fresh `StdRng` from (request seed, output position), so a request's tokens depend only on
//! its own seed and logits: not on the batch it ran in, nor on preemption and recompute.
//! Cost per token: O(vocab) for greedy, temperature, min-p and top-p (its nucleus is found by
//! selection on probability mass, and the draw walks the kept tokens in token order); top-k
//! adds an O(vocab) selection and an O(k log k) sort of its candidates, which are then walked
//! best first (the order the device's top-k hands over).

use rand::{Rng, SeedableRng};

use crate::sampling::SamplingParams;

/// Index of the largest logit (the first one on a tie); `None` for an empty row.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.and_then(|(i, _)| u32::try_from(i).ok())
}

/// Mixes a request seed and an output position into one 64-bit seed (splitmix64).
pub fn token_seed(request_seed: u64, output_position: usize) -> u64 {
    let mut z = request_seed
        .wrapping_add((output_position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Samples one token from `logits` under `params`, drawing from an RNG seeded with
/// `token_seed(request_seed, output_position)`. Returns `None` only for an empty row or a row
/// with no finite logit.
pub fn sample_token(
    logits: &[f32],
    params: &SamplingParams,
    request_seed: u64,
    output_position: usize,
) -> Option<u32> {
    if params.is_greedy() {
        return argmax(logits);
    }
    let inv_t = 1.0 / params.temperature;
    if params.top_k == 0 {
        return sample_without_top_k(logits, inv_t, params, request_seed, output_position);
    }
    // Candidates: (token, scaled logit), finite only.
    let mut cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| (i as u32, v * inv_t))
        .collect();
    if params.top_k < cands.len() {
        cands.select_nth_unstable_by(params.top_k - 1, by_logit_desc);
        cands.truncate(params.top_k);
    }
    // One order for the draw whenever top-k picked the candidates, so that the device's
    // top-k ([`crate::cuda::topk_rows`], sorted) draws the same token.
    cands.sort_unstable_by(by_logit_desc);
    sample_from_candidates(&cands, params, request_seed, output_position)
}

/// Temperature, top-p and min-p over the whole row, with no per-candidate list or sort: the
/// probabilities live in one array indexed by token, top-p's nucleus is found by selection on
/// probability mass (O(vocab) expected, not a sort of the row), and the draw walks the kept
/// tokens in token order.
fn sample_without_top_k(
    logits: &[f32],
    inv_t: f32,
    params: &SamplingParams,
    request_seed: u64,
    output_position: usize,
) -> Option<u32> {
    let mut probs = row_probabilities(logits, inv_t)?;
    if params.top_p < 1.0 {
        keep_nucleus(logits, inv_t, &mut probs, f64::from(params.top_p));
    }
    apply_min_p(&mut probs, params.min_p);
    let total: f64 = probs.iter().sum();
    let weights = probs.iter().enumerate().map(|(i, &p)| (i as u32, p));
    draw(weights, total, request_seed, output_position)
}

/// min-p: zeroes the probabilities below `min_p` × the top token's (which is 1 here).
fn apply_min_p(probs: &mut [f64], min_p: f32) {
    if min_p > 0.0 {
        let floor = f64::from(min_p);
        for p in probs.iter_mut().filter(|p| **p < floor) {
            *p = 0.0;
        }
    }
}

/// Draws one token from `weights` ((token, unnormalised probability) in walk order; zeros
/// skipped) summing to `total`, with the RNG of (request seed, output position).
fn draw(
    weights: impl Iterator<Item = (u32, f64)>,
    total: f64,
    request_seed: u64,
    output_position: usize,
) -> Option<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(token_seed(request_seed, output_position));
    let mut u = rng.random::<f64>() * total;
    let mut last_kept = None;
    for (t, p) in weights {
        if p <= 0.0 {
            continue;
        }
        last_kept = Some(t);
        if u < p {
            return Some(t);
        }
        u -= p;
    }
    // Rounding left u just above the last probability.
    last_kept
}

/// Unnormalised probabilities of a row at `inv_t`, in f64, by token: exp(scaled logit − the
/// largest), so the top token's is 1; 0 for a non-finite logit. `None` if none is finite.
fn row_probabilities(logits: &[f32], inv_t: f32) -> Option<Vec<f64>> {
    let max = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| v * inv_t)
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let probs = logits
        .iter()
        .map(|&v| {
            if v.is_finite() {
                f64::from(v * inv_t - max).exp()
            } else {
                0.0
            }
        })
        .collect();
    Some(probs)
}

/// Zeroes the probabilities outside top-p's nucleus: the smallest set of most likely tokens
/// (by scaled logit, the lower id first on a tie) whose mass reaches `top_p` of the total.
/// Quickselect on mass: split the undecided tokens at their median, keep the better half whole
/// if its mass falls short, else look inside it; a short range is sorted and walked.
fn keep_nucleus(logits: &[f32], inv_t: f32, probs: &mut [f64], top_p: f64) {
    let total: f64 = probs.iter().sum();
    let target = top_p * total;
    let better = |a: &u32, b: &u32| {
        let (va, vb) = (logits[*a as usize] * inv_t, logits[*b as usize] * inv_t);
        vb.total_cmp(&va).then(a.cmp(b))
    };
    let mut order: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| probs[i as usize] > 0.0)
        .collect();
    // order[..lo] is in the nucleus with mass `acc` < target; its end lies in order[lo..hi].
    let (mut lo, mut hi, mut acc) = (0usize, order.len(), 0.0f64);
    let keep = loop {
        if hi - lo <= 64 {
            order[lo..hi].sort_unstable_by(better);
            let mut keep = hi;
            for (i, &t) in order[lo..hi].iter().enumerate() {
                acc += probs[t as usize];
                if acc >= target {
                    keep = lo + i + 1;
                    break;
                }
            }
            break keep;
        }
        let mid = lo + (hi - lo) / 2;
        order[lo..hi].select_nth_unstable_by(mid - lo, better);
        let mass: f64 = order[lo..=mid].iter().map(|&t| probs[t as usize]).sum();
        if acc + mass >= target {
            hi = mid + 1;
        } else {
            acc += mass;
            lo = mid + 1;
        }
    };
    for &t in &order[keep..] {
        probs[t as usize] = 0.0;
    }
}

/// Largest scaled logit first, the lower token id first on a tie (`total_cmp`: -0 < +0).
fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The rest of [`sample_token`] once the candidates are chosen: `cands` are the row's finite
/// logits scaled by 1 / temperature as `(token, value)`, cut to the `top_k` largest and sorted
/// by value (descending, lower token id first on a tie) when `top_k` or `top_p` apply, in
/// token order otherwise. Applies top-p and min-p and draws. `None` for no candidate.
pub fn sample_from_candidates(
    cands: &[(u32, f32)],
    params: &SamplingParams,
    request_seed: u64,
    output_position: usize,
) -> Option<u32> {
    if cands.is_empty() {
        return None;
    }
    let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    // Unnormalised probabilities, in f64 for the sums.
    let mut probs: Vec<f64> = cands.iter().map(|c| f64::from(c.1 - max).exp()).collect();
    let mut total: f64 = probs.iter().sum();
    if params.top_p < 1.0 {
        let target = f64::from(params.top_p) * total;
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cum += p;
            if cum >= target {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        total = probs.iter().sum();
    }
    if params.min_p > 0.0 {
        // The top token has unnormalised probability exp(0) = 1.
        apply_min_p(&mut probs, params.min_p);
        total = probs.iter().sum();
    }
    let weights = cands.iter().zip(&probs).map(|(c, &p)| (c.0, p));
    draw(weights, total, request_seed, output_position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32) -> SamplingParams {
        SamplingParams {
            temperature: t,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn argmax_picks_first_max_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.1]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(sample_token(&[0.0, 2.0, 1.0], &params(0.0), 1, 0), Some(1));
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_varies_with_position() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = params(1.0);
        let a: Vec<_> = (0..50).map(|i| sample_token(&logits, &p, 42, i)).collect();
        let b: Vec<_> = (0..50).map(|i| sample_token(&logits, &p, 42, i)).collect();
        let c: Vec<_> = (0..50).map(|i| sample_token(&logits, &p, 43, i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(
            distinct.len() > 10,
            "temperature 1 over flat logits should vary"
        );
    }

    #[test]
    fn top_k_one_is_greedy_and_top_k_limits_the_support() {
        let logits = [0.1f32, 0.5, 0.3, 0.9, 0.2];
        let p = SamplingParams {
            top_k: 1,
            ..params(1.0)
        };
        for pos in 0..20 {
            assert_eq!(sample_token(&logits, &p, 7, pos), Some(3));
        }
        let p = SamplingParams {
            top_k: 2,
            ..params(5.0)
        };
        for pos in 0..200 {
            let t = sample_token(&logits, &p, 7, pos);
            assert!(t == Some(3) || t == Some(1), "{t:?}");
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // Probabilities ~ [0.6, 0.3, 0.1] after softmax of their logs.
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let p = SamplingParams {
            top_p: 0.5,
            ..params(1.0)
        };
        for pos in 0..100 {
            assert_eq!(sample_token(&logits, &p, 3, pos), Some(0));
        }
        let p = SamplingParams {
            top_p: 0.85,
            ..params(1.0)
        };
        let mut seen = [0usize; 3];
        for pos in 0..2000 {
            seen[sample_token(&logits, &p, 3, pos).unwrap_or(9) as usize] += 1;
        }
        assert_eq!(seen[2], 0, "token 2 is outside the 0.85 nucleus");
        // 0.6 / 0.9 = 2/3 of draws are token 0.
        let frac = seen[0] as f64 / 2000.0;
        assert!((frac - 2.0 / 3.0).abs() < 0.05, "{frac}");
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let logits = [0.0f32, -0.1, -5.0];
        let p = SamplingParams {
            min_p: 0.5,
            ..params(1.0)
        };
        for pos in 0..300 {
            assert_ne!(sample_token(&logits, &p, 11, pos), Some(2));
        }
    }

    #[test]
    fn temperature_sampling_matches_softmax_frequencies() {
        let logits = [1.0f32, 0.0, -1.0];
        let p = params(1.0);
        let n = 20_000;
        let mut seen = [0usize; 3];
        for pos in 0..n {
            seen[sample_token(&logits, &p, 5, pos).unwrap_or(0) as usize] += 1;
        }
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let expect = f64::from(l).exp() / z;
            let got = seen[i] as f64 / n as f64;
            assert!((expect - got).abs() < 0.02, "token {i}: {got} vs {expect}");
        }
    }

    /// `keep_nucleus` keeps a prefix of the row sorted best first, the shortest whose mass
    /// reaches top_p of the total (up to rounding in the last place), whatever the row.
    #[test]
    fn the_nucleus_is_the_shortest_best_first_prefix_reaching_top_p() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for case in 0..300 {
            let vocab = rng.random_range(1..3000usize);
            let spread = [0.1f32, 1.0, 4.0, 20.0][case % 4];
            let mut row: Vec<f32> = (0..vocab)
                .map(|_| rng.random_range(-spread..spread))
                .collect();
            for _ in 0..vocab / 8 {
                let (a, b) = (rng.random_range(0..vocab), rng.random_range(0..vocab));
                row[a] = row[b];
            }
            if vocab > 2 {
                row[1] = f32::NAN;
                row[2] = f32::NEG_INFINITY;
            }
            let inv_t = 1.0 / [0.5f32, 1.0, 1.7][case % 3];
            let top_p = rng.random_range(0.01f64..1.0);
            let Some(probs) = row_probabilities(&row, inv_t) else {
                continue;
            };
            let mut kept = probs.clone();
            keep_nucleus(&row, inv_t, &mut kept, top_p);
            let mut sorted: Vec<(u32, f32)> = row
                .iter()
                .enumerate()
                .filter(|(i, _)| probs[*i] > 0.0)
                .map(|(i, &v)| (i as u32, v * inv_t))
                .collect();
            sorted.sort_by(by_logit_desc);
            let k = sorted
                .iter()
                .take_while(|c| kept[c.0 as usize] > 0.0)
                .count();
            assert!(k >= 1, "case {case}: the top token is always kept");
            assert!(
                sorted[k..].iter().all(|c| kept[c.0 as usize] == 0.0),
                "case {case}: the nucleus is a best-first prefix"
            );
            let target = top_p * probs.iter().sum::<f64>();
            let mass = |n: usize| sorted[..n].iter().map(|c| probs[c.0 as usize]).sum::<f64>();
            let eps = 1e-9 * target;
            assert!(mass(k) >= target - eps, "case {case}: short of top_p");
            assert!(
                mass(k - 1) < target + eps,
                "case {case}: longer than needed"
            );
        }
    }

    #[test]
    fn top_p_over_a_wide_row_draws_nucleus_tokens_at_their_frequencies() {
        // 1,000 tokens: 10 likely ones (97% of the mass together), the rest rare. Half the
        // mass (800.5 of 1,601) takes the 6 best likely ones, logits 5.09 down to 5.04: the
        // best 5 hold 795.9.
        let logits: Vec<f32> = (0..1000)
            .map(|i| {
                if i % 100 == 0 {
                    5.0 + (i / 100) as f32 * 0.01
                } else {
                    -3.0
                }
            })
            .collect();
        let p = SamplingParams {
            top_p: 0.5,
            ..params(1.0)
        };
        let n = 20_000;
        let mut seen = std::collections::HashMap::new();
        for pos in 0..n {
            *seen
                .entry(sample_token(&logits, &p, 8, pos).unwrap_or(1))
                .or_insert(0usize) += 1;
        }
        // The nucleus: the best likely tokens until half the mass; none of the rare ones.
        assert!(seen.keys().all(|t| t % 100 == 0), "{seen:?}");
        let kept = seen.len();
        assert_eq!(kept, 6, "{seen:?}");
        assert!(seen.keys().all(|&t| t >= 400), "{seen:?}");
        for (&t, &c) in &seen {
            let want = 1.0 / kept as f64;
            let got = c as f64 / n as f64;
            assert!(
                (got - want).abs() < 0.3 * want,
                "token {t}: {got} vs ~{want}"
            );
        }
    }

    /// The device's top-k path hands `sample_from_candidates` the `k` largest scaled logits,
    /// sorted: it must draw what `sample_token` draws from the whole row.
    #[test]
    fn sorted_top_k_candidates_draw_what_the_whole_row_draws() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for case in 0..400 {
            let vocab = rng.random_range(1..300usize);
            let mut row: Vec<f32> = (0..vocab).map(|_| rng.random_range(-4.0f32..4.0)).collect();
            // Ties, non-finite values and signed zeros.
            for _ in 0..vocab / 10 {
                let (a, b) = (rng.random_range(0..vocab), rng.random_range(0..vocab));
                row[a] = row[b];
            }
            if vocab > 3 {
                row[0] = f32::NAN;
                row[1] = f32::NEG_INFINITY;
                row[2] = -0.0;
                row[3] = 0.0;
            }
            let p = SamplingParams {
                temperature: [0.3f32, 0.7, 1.0, 1.9][case % 4],
                top_k: rng.random_range(1..=vocab + 2),
                top_p: if case % 3 == 0 {
                    1.0
                } else {
                    rng.random_range(0.05f32..1.0)
                },
                min_p: if case % 5 == 0 { 0.2 } else { 0.0 },
                ..SamplingParams::default()
            };
            let inv_t = 1.0 / p.temperature;
            let mut cands: Vec<(u32, f32)> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as u32, v * inv_t))
                .collect();
            cands.sort_by(by_logit_desc);
            cands.truncate(p.top_k);
            for pos in 0..5 {
                assert_eq!(
                    sample_from_candidates(&cands, &p, case as u64, pos),
                    sample_token(&row, &p, case as u64, pos),
                    "case {case}, position {pos}"
                );
            }
        }
    }
}
