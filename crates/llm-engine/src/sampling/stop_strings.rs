//! Stop strings: finds the first stop string in generated text, looking only at the part that
//! could contain a new match (the new text plus the longest stop string's length − 1 before it),
//! so checking costs O(new text × stop strings) per step, not O(whole text).

/// Looks for a request's stop strings in its growing output text.
#[derive(Debug, Clone, Default)]
pub struct StopStringChecker {
    stops: Vec<String>,
    max_len: usize,
    /// Bytes of text already checked.
    checked: usize,
}

impl StopStringChecker {
    /// A checker for these stop strings (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let max_len = stops.iter().map(String::len).max().unwrap_or(0);
        StopStringChecker {
            stops,
            max_len,
            checked: 0,
        }
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// How much of `text` (the whole output text so far, already [`check`](Self::check)ed) no
    /// later match can cut: a match found later ends in text still to come, so it starts at
    /// most `longest stop string - 1` bytes before the current end. The whole text when there
    /// are no stop strings. Streaming outputs send only this much.
    pub fn settled_len(&self, text: &str) -> usize {
        let mut n = text.len().saturating_sub(self.max_len.saturating_sub(1));
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        n
    }

    /// Checks `text` (the whole output text so far; it only grows between calls) for a stop
    /// string that ends in the part not checked yet. Returns the byte length the text must be
    /// cut to (the stop string and what follows are left out), or `None`.
    pub fn check(&mut self, text: &str) -> Option<usize> {
        if self.stops.is_empty() || text.len() <= self.checked {
            self.checked = self.checked.min(text.len());
            return None;
        }
        let mut from = self.checked.saturating_sub(self.max_len.saturating_sub(1));
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        self.checked = text.len();
        let window = &text[from..];
        self.stops
            .iter()
            .filter_map(|s| window.find(s.as_str()))
            .min()
            .map(|i| from + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_text_is_never_cut_later() {
        let none = StopStringChecker::new(&[]);
        assert_eq!(none.settled_len("abc"), 3);
        let mut c = StopStringChecker::new(&["END".to_string()]);
        assert_eq!(c.check("hello E"), None);
        // "E" and the space before it could still begin "END".
        assert_eq!(c.settled_len("hello E"), 5);
        assert_eq!(c.check("hello EN"), None);
        assert_eq!(c.settled_len("hello EN"), 6);
        assert_eq!(c.check("hello END"), Some(6));
        // Multi-byte characters: never split one.
        let c = StopStringChecker::new(&["xyz".to_string()]);
        assert_eq!(c.settled_len("aé"), 1);
        assert_eq!(c.settled_len("é"), 0);
    }

    #[test]
    fn finds_stop_strings_across_chunks() {
        let mut c = StopStringChecker::new(&["END".to_string(), "\n\n".to_string()]);
        assert_eq!(c.check("hello E"), None);
        assert_eq!(c.check("hello EN"), None);
        assert_eq!(c.check("hello ENDing"), Some(6));
        let mut c = StopStringChecker::new(&["b\n\n".to_string(), "\n\n".to_string()]);
        assert_eq!(c.check("ab\n\nc"), Some(1), "earliest match wins");
    }

    #[test]
    fn handles_multibyte_text_and_no_stops() {
        let mut c = StopStringChecker::new(&["ß!".to_string()]);
        assert_eq!(c.check("grüß"), None);
        assert_eq!(c.check("grüß!"), Some("grü".len()));
        let mut none = StopStringChecker::new(&[]);
        assert!(none.is_empty());
        assert_eq!(none.check("anything"), None);
    }
}
