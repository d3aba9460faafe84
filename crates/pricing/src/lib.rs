//! `pricing`: what a GPU cloud instance costs and what that means per token.
#![deny(missing_docs)]

pub mod catalog;
pub mod error;
pub mod offer;
pub mod suggest;
pub mod units;

pub use catalog::{PriceCatalog, PriceFormat};
pub use error::{PricingError, Result};
pub use offer::{InstanceOffer, KNOWN_GPU_MODELS};
pub mod cost;
pub mod energy;
pub mod results;
