//! `pricing`: what a GPU cloud instance costs, and what that means per token.
//!
//! It holds a catalog of on-demand GPU instances (AWS, Google Cloud, Azure, Lambda, RunPod,
//! CoreWeave; each row with its source URL and date), lets users add or override prices
//! from their own TOML/JSON file, reads benchmark result files (the seed tutorial's
//! `benchmark_results.json` and richer gpubench output), and turns a measured throughput
//! into cost per 1M tokens, tokens per dollar, throughput per GPU-dollar and tokens per
//! joule. It is plain Rust: no GPU, no network.
//!
//! | concept | type / function | what it is |
//! |---|---|---|
//! | offer | [`InstanceOffer`] | one instance type of one provider, its GPUs and `$/hour` |
//! | catalog | [`PriceCatalog`] | built-in offers ([`catalog::BUILTIN_CATALOG_TOML`]) + user overrides |
//! | results | [`results::BenchmarkResults`] | the usable records of a results JSON file |
//! | cost math | [`cost::CostReport`] | tokens/hour, `$`/1M tokens, tokens/`$`, tok/s per GPU-`$` |
//! | partial use | [`cost::GpusUsed`] | bill `N` of an instance's `G` GPUs: price × `N/G` |
//! | energy | [`energy`] | tokens per joule from average watts or total joules |
//! | analysis | [`analysis::CostTable`] | every record × every offer, sorted by cost or throughput |
//! | output | [`render`] | human table, CSV, catalog listing |
//! | units | [`units`] | `UsdPerHour`, `TokensPerSecond`, `CostPer1MTokens`, `Watts`, ... |
//!
//! # Example
//! ```
//! use pricing::cost::{CostReport, GpusUsed};
//! use pricing::units::TokensPerSecond;
//! use pricing::PriceCatalog;
//!
//! # fn main() -> pricing::Result<()> {
//! let mut catalog = PriceCatalog::builtin()?;
//! // A user price: same provider + instance type overrides the built-in row.
//! let mine = PriceCatalog::parse(
//!     r#"
//!     [[instance]]
//!     provider = "aws"
//!     instance_type = "g4dn.xlarge"
//!     gpu_model = "t4"
//!     gpu_count = 1
//!     gpu_memory_gb = 16
//!     usd_per_hour = 0.40
//!     "#,
//!     pricing::PriceFormat::Toml,
//!     "my-prices.toml",
//! )?;
//! catalog.merge(mine);
//!
//! let t4 = catalog.find("g4dn.xlarge")?;
//! let report = CostReport::compute(t4, TokensPerSecond::new(200.0)?, GpusUsed::All)?;
//! // 200 tok/s = 720,000 tok/h; $0.40 / 720,000 × 1e6 = $0.5556 per 1M tokens.
//! assert!((report.cost_per_1m_tokens.0 - 0.5556).abs() < 1e-4);
//!
//! // One GPU of an 8-GPU p5.48xlarge is billed at 1/8 of the instance price.
//! let p5 = catalog.find("p5.48xlarge")?;
//! let one_gpu = CostReport::compute(p5, TokensPerSecond::new(1000.0)?, GpusUsed::Count(1))?;
//! assert!((one_gpu.billed_usd_per_hour.value() - p5.usd_per_hour / 8.0).abs() < 1e-9);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod analysis;
pub mod catalog;
pub mod cost;
pub mod energy;
pub mod error;
pub mod offer;
pub mod render;
pub mod results;
pub mod suggest;
pub mod table;
pub mod units;

pub use catalog::{MergeSummary, PriceCatalog, PriceFormat};
pub use error::{PricingError, Result};
pub use offer::{InstanceOffer, KNOWN_GPU_MODELS};
