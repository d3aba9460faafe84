//! [`run_sweep`]: run the points a store does not have yet, record each as it finishes.

use std::collections::HashSet;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::sweep::record::{is_out_of_memory, PointRecord, PointStatus};
use crate::sweep::store::{SweepPoint, SweepStore};

/// Runs `measure` on every point of `points` that `store` has not finished yet, writing each
/// point's record to the store as soon as it is done, and returns the records of all
/// `points` in order (finished ones loaded from the store).
///
/// A point whose `measure` fails is recorded, not fatal: `out_of_memory` when
/// [`is_out_of_memory`] says so, else `error`; the sweep goes on. `on_point(record,
/// resumed)` is called for every point in order, `resumed` telling whether it came from the
/// store (for progress bars and logs). Without a store nothing is written.
///
/// # Errors
/// [`BenchError::InvalidArgument`] if two points share a key; store read and write errors
/// (a point that cannot be recorded stops the sweep: its work would be lost on resume).
pub fn run_sweep<P, R, M, F>(
    store: Option<&SweepStore>,
    points: &[P],
    mut measure: M,
    mut on_point: F,
) -> Result<Vec<PointRecord<P, R>>>
where
    P: SweepPoint,
    R: Serialize + DeserializeOwned + Clone,
    M: FnMut(&P) -> Result<R>,
    F: FnMut(&PointRecord<P, R>, bool),
{
    let mut seen = HashSet::new();
    for p in points {
        if !seen.insert(p.key()) {
            return Err(BenchError::InvalidArgument(format!(
                "sweep point {} is listed twice",
                p.key()
            )));
        }
    }
    let mut finished = match store {
        Some(s) => s.load::<P, R>()?,
        None => Default::default(),
    };
    let mut out = Vec::with_capacity(points.len());
    for point in points {
        let key = point.key();
        if let Some(done) = finished.remove(&key).filter(|r| r.status.is_final()) {
            tracing::info!(point = %key, status = %done.status, "kept from the earlier run");
            on_point(&done, true);
            out.push(done);
            continue;
        }
        let start = Instant::now();
        let outcome = measure(point);
        let wall_time_s = start.elapsed().as_secs_f64();
        let (status, error, result) = match outcome {
            Ok(r) => (PointStatus::Ok, None, Some(r)),
            Err(e) if is_out_of_memory(&e) => (PointStatus::OutOfMemory, Some(e.to_string()), None),
            Err(e) => (PointStatus::Error, Some(e.to_string()), None),
        };
        match (&error, status) {
            (Some(e), PointStatus::OutOfMemory) => {
                tracing::info!(point = %key, error = %e, "out of memory; the sweep goes on")
            }
            (Some(e), _) => {
                tracing::warn!(point = %key, error = %e, "point failed; the sweep goes on")
            }
            (None, _) => {}
        }
        let record = PointRecord {
            key,
            point: point.clone(),
            status,
            error,
            result,
            wall_time_s,
            finished_at: metrics::manifest::now_rfc3339_utc(),
        };
        if let Some(s) = store {
            s.record(&record)?;
        }
        on_point(&record, false);
        out.push(record);
    }
    Ok(out)
}
