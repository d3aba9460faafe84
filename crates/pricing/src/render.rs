//! Output of cost tables and of the catalog: a human table, CSV and JSON.

use std::io::Write;

use serde::Serialize;

use crate::analysis::CostRow;
use crate::error::Result;
use crate::offer::InstanceOffer;
use crate::table::{render_table, thousands, Align};

/// The human-readable cost report: one section per model (in row order), each a table over
/// instances, then a footnote on what the numbers assume.
#[must_use]
pub fn cost_table_text(rows: &[CostRow]) -> String {
    let mut models: Vec<&str> = Vec::new();
    for row in rows {
        if !models.contains(&row.model.as_str()) {
            models.push(&row.model);
        }
    }
    let headers = [
        "",
        "provider",
        "instance",
        "GPU",
        "GPUs",
        "$/hour",
        "tokens/hour",
        "$/1M tokens",
        "tokens/$",
        "tok/s per GPU-$",
    ];
    let aligns = [
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    let rule = "=".repeat(78);
    let mut out = String::new();
    for model in models {
        let group: Vec<&CostRow> = rows.iter().filter(|r| r.model == model).collect();
        let Some(first) = group.first() else { continue };
        out.push_str(&format!("{rule}\nModel: {model}\n"));
        out.push_str(&format!(
            "  Throughput: {} tokens/sec{}\n",
            thousands(first.throughput_tokens_per_sec, 2),
            first
                .measured_on_gpu
                .as_deref()
                .map(|g| format!(" (measured on {g})"))
                .unwrap_or_default()
        ));
        if let (Some(tpj), Some(kwh)) = (first.tokens_per_joule, first.kwh_per_1m_tokens) {
            out.push_str(&format!(
                "  Energy: {} tokens/J ({} kWh per 1M tokens)\n",
                thousands(tpj, 3),
                thousands(kwh, 4)
            ));
        }
        out.push('\n');
        let cells: Vec<Vec<String>> = group
            .iter()
            .map(|r| {
                vec![
                    if r.measured_gpu_model { "*" } else { "" }.to_string(),
                    r.provider.clone(),
                    r.instance_type.clone(),
                    r.gpu_model.clone(),
                    format!("{}/{}", r.gpus_used, r.gpu_count),
                    format!("{:.4}", r.billed_usd_per_hour),
                    thousands(r.tokens_per_hour, 0),
                    format!("${:.4}", r.cost_per_1m_tokens),
                    thousands(r.tokens_per_dollar, 0),
                    thousands(r.tokens_per_sec_per_gpu_dollar, 2),
                ]
            })
            .collect();
        out.push_str(&render_table(&headers, &aligns, &cells, "  "));
    }
    out.push_str(&format!("{rule}\n"));
    out.push_str(
        "Every row applies the measured throughput to that instance's on-demand price; only\n\
         rows with the GPU model the benchmark ran on (marked *) are measurements, the others\n\
         are what-ifs. GPUs = billed/in instance ($/hour is scaled by that share).\n\
         Price dates, sources and caveats: cost-analysis --list-instances\n",
    );
    out
}

/// Writes cost rows as CSV with a header line.
///
/// # Errors
/// [`crate::PricingError::Csv`] if writing fails.
pub fn cost_rows_csv<W: Write>(rows: &[CostRow], writer: W) -> Result<()> {
    write_csv(rows, writer)
}

/// The catalog as a human table (with per-GPU price), followed by each row's note.
#[must_use]
pub fn catalog_text(offers: &[InstanceOffer]) -> String {
    let headers = [
        "provider",
        "instance",
        "GPU",
        "GPUs",
        "GPU mem GB",
        "vCPUs",
        "RAM GB",
        "$/hour",
        "$/GPU-hour",
        "region",
        "price date",
        "source",
    ];
    let mut aligns = vec![Align::Left; headers.len()];
    for i in [3, 4, 5, 6, 7, 8] {
        aligns[i] = Align::Right;
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let cells: Vec<Vec<String>> = offers
        .iter()
        .map(|o| {
            vec![
                o.provider.clone(),
                o.instance_type.clone(),
                o.gpu_model.clone(),
                o.gpu_count.to_string(),
                thousands(o.gpu_memory_gb, 0),
                opt(o.vcpus.map(|v| v.to_string())),
                opt(o.ram_gb.map(|v| thousands(v, 0))),
                format!("{:.4}", o.usd_per_hour),
                format!("{:.4}", o.usd_per_hour / f64::from(o.gpu_count.max(1))),
                opt(o.region.clone()),
                opt(o.price_date.clone()),
                opt(o.source.clone()),
            ]
        })
        .collect();
    let mut out = render_table(&headers, &aligns, &cells, "");
    let notes: Vec<String> = offers
        .iter()
        .filter_map(|o| o.note.as_ref().map(|n| format!("  {}: {n}", o.key())))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

/// Writes the catalog as CSV (one line per offer, empty cells for unknown values).
///
/// # Errors
/// [`crate::PricingError::Csv`] if writing fails.
pub fn catalog_csv<W: Write>(offers: &[InstanceOffer], writer: W) -> Result<()> {
    let rows: Vec<CatalogCsvRow<'_>> = offers.iter().map(CatalogCsvRow::from).collect();
    write_csv(&rows, writer)
}

/// An [`InstanceOffer`] with every column present (CSV needs the same columns on every
/// line; the offer's serde form leaves unknown values out) plus the per-GPU price.
#[derive(Serialize)]
struct CatalogCsvRow<'a> {
    provider: &'a str,
    instance_type: &'a str,
    gpu_model: &'a str,
    gpu_count: u32,
    gpu_memory_gb: f64,
    vcpus: Option<u32>,
    ram_gb: Option<f64>,
    usd_per_hour: f64,
    usd_per_gpu_hour: f64,
    region: Option<&'a str>,
    price_date: Option<&'a str>,
    source: Option<&'a str>,
    note: Option<&'a str>,
}

impl<'a> From<&'a InstanceOffer> for CatalogCsvRow<'a> {
    fn from(o: &'a InstanceOffer) -> Self {
        Self {
            provider: &o.provider,
            instance_type: &o.instance_type,
            gpu_model: &o.gpu_model,
            gpu_count: o.gpu_count,
            gpu_memory_gb: o.gpu_memory_gb,
            vcpus: o.vcpus,
            ram_gb: o.ram_gb,
            usd_per_hour: o.usd_per_hour,
            usd_per_gpu_hour: o.usd_per_hour / f64::from(o.gpu_count.max(1)),
            region: o.region.as_deref(),
            price_date: o.price_date.as_deref(),
            source: o.source.as_deref(),
            note: o.note.as_deref(),
        }
    }
}

fn write_csv<T: Serialize, W: Write>(items: &[T], writer: W) -> Result<()> {
    let mut csv = csv::Writer::from_writer(writer);
    for item in items {
        csv.serialize(item)?;
    }
    csv.flush().map_err(csv::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{CostTable, SortKey};
    use crate::cost::GpusUsed;
    use crate::results::BenchmarkResults;
    use crate::PriceCatalog;
    use std::path::Path;

    fn rows() -> Vec<CostRow> {
        let results = BenchmarkResults::parse(
            r#"[{"model": "gpt2", "throughput_tokens_per_sec": 200, "avg_power_w": 50,
                 "gpu": "Tesla T4"}]"#,
            Path::new("r.json"),
        )
        .unwrap();
        let catalog = PriceCatalog::builtin().unwrap();
        let offer = catalog.find("g4dn.xlarge").unwrap().clone();
        CostTable::build(&results.records, &[offer], GpusUsed::All, SortKey::Cost)
            .unwrap()
            .rows
    }

    #[test]
    fn text_report_has_the_seed_figures() {
        let text = cost_table_text(&rows());
        assert!(text.contains("Model: gpt2"), "{text}");
        assert!(
            text.contains("200.00 tokens/sec (measured on Tesla T4)"),
            "{text}"
        );
        assert!(text.contains("4.000 tokens/J"), "{text}");
        assert!(text.contains("720,000"), "{text}");
        // Seed: $0.7306 per 1M tokens, 1,368,821 tokens per dollar.
        assert!(text.contains("$0.7306"), "{text}");
        assert!(text.contains("1,368,821"), "{text}");
        let row = text.lines().find(|l| l.contains("g4dn.xlarge")).unwrap();
        assert!(
            row.starts_with("  *  aws "),
            "benchmarked GPU not marked: {row}"
        );
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let mut buf = Vec::new();
        cost_rows_csv(&rows(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("model,provider,instance_type"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("cost_per_1m_tokens"));
        assert!(
            lines[1].starts_with("gpt2,aws,g4dn.xlarge,t4,1,1,0.526,"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn catalog_outputs_list_every_offer_with_its_source() {
        let catalog = PriceCatalog::builtin().unwrap();
        let text = catalog_text(catalog.offers());
        for offer in catalog.offers() {
            assert!(text.contains(&offer.instance_type), "{}", offer.key());
        }
        assert!(text.contains("Notes:"));
        assert!(text.contains("price date"));
        let mut buf = Vec::new();
        catalog_csv(catalog.offers(), &mut buf).unwrap();
        let csv_text = String::from_utf8(buf).unwrap();
        assert_eq!(csv_text.lines().count(), catalog.offers().len() + 1);
        assert!(csv_text.lines().next().unwrap().contains("usd_per_hour"));
    }
}
