//! compare: merge several machines' bench-all results folders (the seed tutorial's
//! Challenge 1) into one table and charts. All logic lives in `bench_suite::results::compare`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bench_suite::results::compare::{
    comparison_rows, comparison_table, load_folders, write_comparison,
};
use clap::Parser;

/// Compare machines: throughput, cost per 1M tokens and tokens per joule per model, from the
/// results folders bench-all wrote on each (e.g. copied back from a T4, an L4 and an A10G).
///
/// Folders must share one results_version. Prints the table (Markdown) and writes
/// comparison.csv, comparison.md, compare_throughput.svg, compare_cost.svg and
/// compare_tokens_per_joule.svg into --out-dir. Cost is quoted on each machine's primary
/// instance (bench-all --instance, or the catalog instance with its GPU).
#[derive(Debug, Parser)]
#[command(name = "compare", version, about, long_about)]
struct Args {
    /// Results folders written by bench-all, one per machine.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,

    /// Where the merged table and charts go.
    #[arg(long, short = 'o', default_value = "comparison", value_name = "DIR")]
    out_dir: PathBuf,

    /// Print the rows as JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    gpubench::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpubench::fail(&err),
    }
}

fn run(args: Args) -> Result<()> {
    let machines = load_folders(&args.dirs)?;
    let rows = comparison_rows(&machines);
    if rows.is_empty() {
        anyhow::bail!("none of the folders has an LLM run to compare");
    }
    write_comparison(&args.out_dir, &rows)?;
    let table = comparison_table(&rows);
    if args.json {
        let records: Vec<serde_json::Map<String, serde_json::Value>> = table
            .rows
            .iter()
            .map(|r| {
                table
                    .headers
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", table.markdown());
    }
    eprintln!(
        "wrote {}/comparison.csv, comparison.md and 3 charts",
        args.out_dir.display()
    );
    Ok(())
}
