//! cost-analysis: what the throughput in a benchmark results file costs on GPU cloud
//! instances (replaces the seed tutorial's `cost_analysis.py`).
//!
//! For every model in the results file and every selected catalog instance it prints the
//! throughput, tokens per hour, cost per 1M tokens, tokens per dollar and throughput per
//! GPU-dollar, plus tokens per joule where the results carry power or energy. All the logic
//! lives in the `pricing` crate; this file parses arguments and writes output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use pricing::analysis::{CostRow, CostTable, SortKey};
use pricing::cost::GpusUsed;
use pricing::render;
use pricing::results::BenchmarkResults;
use pricing::{InstanceOffer, PriceCatalog};
use serde::Serialize;
use tracing::{info, warn};

/// Price a benchmark's measured throughput on GPU cloud instances.
///
/// Reads a results JSON file (the seed's benchmark_results.json or gpubench output: one
/// record or a list, each with "model" and "throughput_tokens_per_sec") and prints, per
/// model and instance: tokens/hour, cost per 1M tokens, tokens per dollar, throughput per
/// GPU-dollar, and tokens per joule when the results include avg_power_w or energy_j.
#[derive(Debug, Parser)]
#[command(name = "cost-analysis", version, about, long_about)]
struct Args {
    /// Benchmark results JSON file (one record object, or an array of records).
    #[arg(
        value_name = "RESULTS.json",
        required_unless_present = "list_instances"
    )]
    results: Option<PathBuf>,

    /// Price only this instance: an instance type ("g4dn.xlarge") or provider/instance type
    /// ("aws/p5.48xlarge"). Repeat for several. Default: every catalog instance.
    #[arg(long, short = 'i', value_name = "NAME")]
    instance: Vec<String>,

    /// Your own prices, TOML or JSON, same schema as the built-in catalog (see
    /// examples/prices/). A row with the same provider + instance_type replaces the
    /// built-in one; other rows are added.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,

    /// Write JSON instead of the human table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,

    /// Write CSV (one line per model and instance) instead of the human table.
    #[arg(long)]
    csv: bool,

    /// Write to FILE (atomically: a temporary file renamed into place) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// The benchmark used N of the instance's GPUs: bill price x N / gpu_count. Default:
    /// bill the whole instance (as the seed does). Instances with fewer than N GPUs are
    /// skipped, or rejected when named with --instance.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    gpus_used: Option<u32>,

    /// Row order: cheapest cost per 1M tokens first, or highest throughput first.
    #[arg(long, value_enum, default_value_t = SortArg::Cost)]
    sort: SortArg,

    /// Print the price catalog (with each price's date, source and caveats) and exit.
    #[arg(long)]
    list_instances: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SortArg {
    /// Cheapest cost per 1M tokens first.
    Cost,
    /// Highest throughput first.
    Throughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
    Csv,
}

/// The JSON document written by `--json`.
#[derive(Serialize)]
struct CostAnalysisJson<'a> {
    results_file: &'a Path,
    prices_file: Option<&'a Path>,
    gpus_used: Option<u32>,
    rows: &'a [CostRow],
    skipped_instances: &'a [String],
    skipped_records: Vec<SkippedRecordJson<'a>>,
}

#[derive(Serialize)]
struct SkippedRecordJson<'a> {
    index: usize,
    model: &'a str,
    reason: &'a str,
}

fn main() -> ExitCode {
    gpubench::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without repeating a cause whose text an outer
/// message already includes (library errors often render their source inline).
fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.retain(|p| !text.contains(p.as_str()));
        parts.push(text);
    }
    parts.join(": ")
}

fn run(args: Args) -> Result<()> {
    let format = if args.json {
        OutputFormat::Json
    } else if args.csv {
        OutputFormat::Csv
    } else {
        OutputFormat::Text
    };
    let catalog = load_catalog(args.prices.as_deref())?;

    if args.list_instances {
        let offers = select_offers(&catalog, &args.instance, None)?;
        return emit_catalog(&offers, format, args.output.as_deref());
    }
    let Some(results_path) = args.results.as_deref() else {
        anyhow::bail!("a RESULTS.json file is required (or use --list-instances)");
    };
    let results = BenchmarkResults::load(results_path)?;
    for skipped in &results.skipped {
        warn!(
            index = skipped.index,
            model = %skipped.model,
            "skipping record: {}",
            skipped.reason
        );
    }
    info!(records = results.records.len(), path = %results_path.display(), "loaded results");

    let gpus = args.gpus_used.map_or(GpusUsed::All, GpusUsed::Count);
    let offers = select_offers(&catalog, &args.instance, args.gpus_used)?;
    let sort = match args.sort {
        SortArg::Cost => SortKey::Cost,
        SortArg::Throughput => SortKey::Throughput,
    };
    let table = CostTable::build(&results.records, &offers, gpus, sort)?;
    if !table.skipped_offers.is_empty() {
        info!(
            "skipped {} instance(s) with fewer than {} GPUs: {}",
            table.skipped_offers.len(),
            args.gpus_used.unwrap_or(0),
            table.skipped_offers.join(", ")
        );
    }

    match format {
        OutputFormat::Text => emit_text(
            &render::cost_table_text(&table.rows),
            args.output.as_deref(),
        ),
        OutputFormat::Csv => match args.output.as_deref() {
            Some(path) => {
                write_atomic(path, |p| metrics::writers::write_csv_atomic(p, &table.rows))
            }
            None => Ok(render::cost_rows_csv(
                &table.rows,
                std::io::stdout().lock(),
            )?),
        },
        OutputFormat::Json => {
            let doc = CostAnalysisJson {
                results_file: results_path,
                prices_file: args.prices.as_deref(),
                gpus_used: args.gpus_used,
                rows: &table.rows,
                skipped_instances: &table.skipped_offers,
                skipped_records: results
                    .skipped
                    .iter()
                    .map(|s| SkippedRecordJson {
                        index: s.index,
                        model: &s.model,
                        reason: &s.reason,
                    })
                    .collect(),
            };
            emit_json(&doc, args.output.as_deref())
        }
    }
}

/// The built-in catalog, with the user's price file merged in.
fn load_catalog(prices: Option<&Path>) -> Result<PriceCatalog> {
    let mut catalog = PriceCatalog::builtin()?;
    if let Some(path) = prices {
        let user = PriceCatalog::load_file(path)?;
        let summary = catalog.merge(user);
        info!(
            overridden = summary.overridden.len(),
            added = summary.added.len(),
            "merged {}",
            path.display()
        );
    }
    Ok(catalog)
}

/// The offers named with --instance (each must exist and, with --gpus-used, be big enough),
/// or the whole catalog.
fn select_offers(
    catalog: &PriceCatalog,
    names: &[String],
    gpus_used: Option<u32>,
) -> Result<Vec<InstanceOffer>> {
    if names.is_empty() {
        return Ok(catalog.offers().to_vec());
    }
    let mut offers: Vec<InstanceOffer> = Vec::new();
    for name in names {
        let offer = catalog.find(name)?;
        if let Some(n) = gpus_used {
            GpusUsed::Count(n).resolve(offer)?;
        }
        if !offers.iter().any(|o| o.key() == offer.key()) {
            offers.push(offer.clone());
        }
    }
    Ok(offers)
}

fn emit_catalog(
    offers: &[InstanceOffer],
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<()> {
    match format {
        OutputFormat::Text => emit_text(&render::catalog_text(offers), output),
        OutputFormat::Json => emit_json(&offers, output),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            render::catalog_csv(offers, &mut buf)?;
            let text = String::from_utf8(buf).context("CSV output is not UTF-8")?;
            emit_text(&text, output)
        }
    }
}

fn emit_text(text: &str, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => write_atomic(path, |p| metrics::writers::write_text_atomic(p, text)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn emit_json<T: Serialize + ?Sized>(value: &T, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => write_atomic(path, |p| metrics::writers::write_json_atomic(p, value)),
        None => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(())
        }
    }
}

fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> metrics::Result<()>) -> Result<()> {
    write(path).with_context(|| format!("cannot write {}", path.display()))?;
    info!(path = %path.display(), "wrote output");
    Ok(())
}
