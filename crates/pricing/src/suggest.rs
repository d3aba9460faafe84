//! "Did you mean" suggestions for mistyped instance names (Levenshtein similarity via `strsim`).

/// Up to `limit` candidates closest to `query`, best first. A candidate qualifies when it
/// contains the query (or the query contains it) or when its normalised Levenshtein
/// similarity is at least 0.5; comparison ignores ASCII case.
#[must_use]
pub fn closest_names<'a, I>(query: &str, candidates: I, limit: usize) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let query = query.trim().to_ascii_lowercase();
    if query.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            let mut score = strsim::normalized_levenshtein(&query, &lower);
            if lower.contains(&query) || query.contains(&lower) {
                score += 1.0;
            }
            (score >= 0.5).then_some((score, candidate))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut names: Vec<String> = Vec::new();
    for (_, name) in scored {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        if names.len() == limit {
            break;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["g4dn.xlarge", "g5.xlarge", "g6.2xlarge", "p4d.24xlarge"];

    #[test]
    fn typo_suggests_the_intended_name_first() {
        let got = closest_names("g4dn.xlarg", NAMES.iter().copied(), 3);
        assert_eq!(got.first().map(String::as_str), Some("g4dn.xlarge"));
    }

    #[test]
    fn substring_matches_count() {
        let got = closest_names("p4d", NAMES.iter().copied(), 3);
        assert_eq!(got, vec!["p4d.24xlarge".to_string()]);
    }

    #[test]
    fn nonsense_suggests_nothing_and_limit_is_respected() {
        assert!(closest_names("zzzzzzzzzzzzzz", NAMES.iter().copied(), 3).is_empty());
        assert!(closest_names("", NAMES.iter().copied(), 3).is_empty());
        assert!(closest_names("xlarge", NAMES.iter().copied(), 2).len() <= 2);
    }
}
