//! The price catalog: the built-in offers (`data/instances.toml`, compiled in and parsed at
//! first use) plus optional user files that add or override rows.
//!
//! Override rule: a user row with the same `provider` + `instance_type` (case-insensitive)
//! as an existing row replaces it; any other row is appended. Rows keep catalog order.

use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{PricingError, Result};
use crate::offer::InstanceOffer;
use crate::suggest::closest_names;

/// The built-in catalog's text (TOML).
pub const BUILTIN_CATALOG_TOML: &str = include_str!("../data/instances.toml");

/// Label used for errors in the built-in catalog.
const BUILTIN_ORIGIN: &str = "built-in catalog";

/// A price file on disk or in memory: `instance` rows (TOML `[[instance]]`, JSON
/// `{"instance": [...]}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    instance: Vec<InstanceOffer>,
}

/// The format of a price file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceFormat {
    /// TOML with `[[instance]]` tables.
    Toml,
    /// JSON object `{"instance": [ {...}, ... ]}`.
    Json,
}

impl PriceFormat {
    /// Picks the format from the file extension (`.json` / `.toml`); without one, from the
    /// first non-blank character (`{` means JSON).
    #[must_use]
    pub fn detect(path: &Path, text: &str) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Self::Json,
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Self::Toml,
            _ if text.trim_start().starts_with('{') => Self::Json,
            _ => Self::Toml,
        }
    }
}

/// What [`PriceCatalog::merge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Keys (`provider/instance_type`) of rows that replaced existing ones.
    pub overridden: Vec<String>,
    /// Keys of rows that were new.
    pub added: Vec<String>,
}

/// An ordered, validated list of [`InstanceOffer`]s with unique `provider/instance_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceCatalog {
    offers: Vec<InstanceOffer>,
}

impl PriceCatalog {
    /// The built-in catalog, parsed once on first use.
    ///
    /// # Errors
    /// [`PricingError::BuiltinCatalog`] if the compiled-in data is invalid (a unit test
    /// guards against this).
    pub fn builtin() -> Result<Self> {
        static BUILTIN: OnceLock<std::result::Result<PriceCatalog, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Self::parse(BUILTIN_CATALOG_TOML, PriceFormat::Toml, BUILTIN_ORIGIN)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|message| PricingError::BuiltinCatalog { message })
    }

    /// Parses and validates price rows from text. `origin` labels errors (e.g. the path).
    ///
    /// # Errors
    /// [`PricingError::EmptyPriceFile`] when there are no rows,
    /// [`PricingError::PriceFileSyntax`] (with line and column) for syntax errors, unknown
    /// fields, wrong field types and missing fields, and [`PricingError::InvalidOffer`] for a
    /// row with bad values or a duplicate `provider/instance_type`.
    pub fn parse(text: &str, format: PriceFormat, origin: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(PricingError::EmptyPriceFile {
                origin: origin.to_string(),
            });
        }
        let file: PriceFile = match format {
            PriceFormat::Toml => toml::from_str(text).map_err(|e| toml_error(&e, text, origin))?,
            PriceFormat::Json => serde_json::from_str(text).map_err(|e| json_error(&e, origin))?,
        };
        if file.instance.is_empty() {
            return Err(PricingError::EmptyPriceFile {
                origin: origin.to_string(),
            });
        }
        for (index, offer) in file.instance.iter().enumerate() {
            offer.validate(origin, index)?;
            let duplicate = file.instance[..index]
                .iter()
                .any(|earlier| same_key(earlier, offer));
            if duplicate {
                return Err(PricingError::InvalidOffer {
                    origin: origin.to_string(),
                    row: offer.key(),
                    reason: "appears twice in the same file".to_string(),
                });
            }
        }
        Ok(Self {
            offers: file.instance,
        })
    }

    /// Reads a TOML or JSON price file (format from [`PriceFormat::detect`]).
    ///
    /// # Errors
    /// [`PricingError::Io`] if the file can't be read, otherwise as [`PriceCatalog::parse`].
    pub fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| PricingError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let format = PriceFormat::detect(path, &text);
        Self::parse(&text, format, &path.display().to_string())
    }

    /// Adds `other`'s rows: same `provider/instance_type` replaces in place, new rows are
    /// appended in `other`'s order.
    pub fn merge(&mut self, other: PriceCatalog) -> MergeSummary {
        let mut summary = MergeSummary::default();
        for offer in other.offers {
            let key = offer.key();
            match self.offers.iter_mut().find(|o| same_key(o, &offer)) {
                Some(existing) => {
                    *existing = offer;
                    summary.overridden.push(key);
                }
                None => {
                    self.offers.push(offer);
                    summary.added.push(key);
                }
            }
        }
        summary
    }

    /// All offers, in catalog order.
    #[must_use]
    pub fn offers(&self) -> &[InstanceOffer] {
        &self.offers
    }

    /// The offer called `name` (instance type, or `provider/instance_type`; any case).
    ///
    /// # Errors
    /// [`PricingError::UnknownInstance`] with the closest names when nothing matches, and
    /// [`PricingError::AmbiguousInstance`] when several providers use that instance name.
    pub fn find(&self, name: &str) -> Result<&InstanceOffer> {
        let matches: Vec<&InstanceOffer> =
            self.offers.iter().filter(|o| o.is_named(name)).collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(PricingError::UnknownInstance {
                name: name.to_string(),
                suggestions: self.suggest(name, 3),
            }),
            many => Err(PricingError::AmbiguousInstance {
                name: name.to_string(),
                candidates: many.iter().map(|o| o.key()).collect(),
            }),
        }
    }

    /// Up to `limit` instance names close to `name`, best first.
    #[must_use]
    pub fn suggest(&self, name: &str, limit: usize) -> Vec<String> {
        closest_names(
            name,
            self.offers.iter().map(|o| o.instance_type.as_str()),
            limit,
        )
    }
}

fn same_key(a: &InstanceOffer, b: &InstanceOffer) -> bool {
    a.provider.eq_ignore_ascii_case(&b.provider)
        && a.instance_type.eq_ignore_ascii_case(&b.instance_type)
}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn toml_error(err: &toml::de::Error, text: &str, origin: &str) -> PricingError {
    let (line, column) = err
        .span()
        .map_or((0, 0), |span| line_column(text, span.start));
    PricingError::PriceFileSyntax {
        origin: origin.to_string(),
        line,
        column,
        message: err.message().trim().to_string(),
    }
}

fn json_error(err: &serde_json::Error, origin: &str) -> PricingError {
    let rendered = err.to_string();
    let message = rendered
        .rfind(" at line ")
        .map_or(rendered.as_str(), |cut| &rendered[..cut])
        .to_string();
    PricingError::PriceFileSyntax {
        origin: origin.to_string(),
        line: err.line(),
        column: err.column(),
        message,
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
