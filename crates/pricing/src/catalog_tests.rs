use super::*;
use crate::offer::KNOWN_GPU_MODELS;

const ONE_ROW: &str = r#"
[[instance]]
provider = "aws"
instance_type = "g4dn.xlarge"
gpu_model = "t4"
gpu_count = 1
gpu_memory_gb = 16
usd_per_hour = 0.40
"#;

fn parse_toml(text: &str) -> Result<PriceCatalog> {
    PriceCatalog::parse(text, PriceFormat::Toml, "user.toml")
}

#[test]
fn builtin_catalog_is_valid_and_documented() {
    let catalog = PriceCatalog::builtin().expect("built-in catalog must parse");
    assert!(catalog.offers().len() >= 20, "catalog shrank");
    for offer in catalog.offers() {
        let key = offer.key();
        assert!(
            KNOWN_GPU_MODELS.contains(&offer.gpu_model.as_str()),
            "{key}: gpu_model {} is not a gpu-probe key",
            offer.gpu_model
        );
        let source = offer.source.as_deref().unwrap_or("");
        assert!(source.starts_with("https://"), "{key}: no https source");
        assert!(offer.price_date.is_some(), "{key}: no price_date");
        assert!(offer.note.is_some(), "{key}: no note on provenance");
        // Per-GPU memory must be one of the real sizes of these parts.
        let per_gpu = offer.gpu_memory_gb / f64::from(offer.gpu_count);
        assert!(
            [16.0, 24.0, 40.0, 48.0, 80.0, 141.0, 180.0].contains(&per_gpu),
            "{key}: {per_gpu} GB per GPU"
        );
        // An hourly price per GPU outside $0.10..$20 is a typo (e.g. per-GPU vs per-node).
        let per_gpu_price = offer.price_per_gpu().unwrap().value();
        assert!(
            (0.1..20.0).contains(&per_gpu_price),
            "{key}: ${per_gpu_price}/GPU-h"
        );
    }
}

#[test]
fn builtin_catalog_has_the_seed_rows_and_the_big_offers() {
    let catalog = PriceCatalog::builtin().unwrap();
    for (name, gpu, count) in [
        ("g4dn.xlarge", "t4", 1),
        ("g6.2xlarge", "l4", 1),
        ("g5.xlarge", "a10g", 1),
        ("p3.2xlarge", "v100-sxm2-16gb", 1),
        ("p4d.24xlarge", "a100-sxm-40gb", 8),
        ("p5.48xlarge", "h100-sxm", 8),
        ("p5en.48xlarge", "h200", 8),
        ("g6e.xlarge", "l40s", 1),
        ("p4de.24xlarge", "a100-sxm-80gb", 8),
        ("a3-highgpu-8g", "h100-sxm", 8),
        ("a2-ultragpu-1g", "a100-sxm-80gb", 1),
        ("Standard_ND96isr_H100_v5", "h100-sxm", 8),
        ("Standard_NC24ads_A100_v4", "a100-pcie-80gb", 1),
    ] {
        let offer = catalog.find(name).unwrap();
        assert_eq!(offer.gpu_model, gpu, "{name}");
        assert_eq!(offer.gpu_count, count, "{name}");
    }
    // The seed's figures for the three rows whose price has not moved.
    assert_eq!(catalog.find("g4dn.xlarge").unwrap().usd_per_hour, 0.526);
    assert_eq!(catalog.find("g5.xlarge").unwrap().usd_per_hour, 1.006);
    assert_eq!(catalog.find("p3.2xlarge").unwrap().usd_per_hour, 3.06);
    for provider in ["lambda", "runpod", "coreweave"] {
        assert!(
            catalog.offers().iter().any(|o| o.provider == provider),
            "no {provider} rows"
        );
    }
}

#[test]
fn builtin_is_parsed_once_and_identical_each_time() {
    assert_eq!(
        PriceCatalog::builtin().unwrap(),
        PriceCatalog::builtin().unwrap()
    );
}

#[test]
fn user_row_overrides_same_provider_and_type_and_new_rows_are_added() {
    let mut catalog = PriceCatalog::builtin().unwrap();
    let before = catalog.offers().len();
    let user = parse_toml(&format!(
        "{ONE_ROW}\n[[instance]]\nprovider = \"acme\"\ninstance_type = \"box-1\"\n\
         gpu_model = \"l4\"\ngpu_count = 1\ngpu_memory_gb = 24\nusd_per_hour = 0.5\n"
    ))
    .unwrap();
    let summary = catalog.merge(user);
    assert_eq!(summary.overridden, vec!["aws/g4dn.xlarge".to_string()]);
    assert_eq!(summary.added, vec!["acme/box-1".to_string()]);
    assert_eq!(catalog.offers().len(), before + 1);
    assert_eq!(catalog.find("g4dn.xlarge").unwrap().usd_per_hour, 0.40);
    assert_eq!(catalog.find("acme/box-1").unwrap().gpu_model, "l4");
    // Override keeps the row's position.
    assert_eq!(catalog.offers()[0].instance_type, "g4dn.xlarge");
}

#[test]
fn override_key_ignores_case() {
    let mut catalog = parse_toml(ONE_ROW).unwrap();
    let user = parse_toml(
        &ONE_ROW
            .replace("\"aws\"", "\"AWS\"")
            .replace("0.40", "0.30"),
    )
    .unwrap();
    let summary = catalog.merge(user);
    assert_eq!(summary.overridden.len(), 1);
    assert_eq!(catalog.offers().len(), 1);
}

#[test]
fn negative_or_zero_price_is_an_error_naming_the_row() {
    for price in ["-0.5", "0", "0.0"] {
        let err = parse_toml(&ONE_ROW.replace("0.40", price))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws/g4dn.xlarge"), "{err}");
        assert!(err.contains("usd_per_hour"), "{err}");
    }
}

#[test]
fn unknown_field_is_an_error_with_line_and_column() {
    let text = ONE_ROW.replace("usd_per_hour", "price_per_hour");
    let err = parse_toml(&text).unwrap_err();
    match &err {
        PricingError::PriceFileSyntax { line, message, .. } => {
            assert!(message.contains("unknown field"), "{message}");
            assert!(message.contains("price_per_hour"), "{message}");
            assert!(*line >= 2, "line {line}");
        }
        other => panic!("wrong error {other:?}"),
    }
}

#[test]
fn wrong_type_is_an_error_with_the_parser_position() {
    let text = ONE_ROW.replace("gpu_count = 1", "gpu_count = \"one\"");
    let err = parse_toml(&text).unwrap_err();
    let PricingError::PriceFileSyntax { line, column, .. } = err else {
        panic!("wrong error {err:?}");
    };
    // `gpu_count` is on line 6 of ONE_ROW (line 1 is the blank after r#").
    assert_eq!(line, 6);
    assert!(column > 1);
    assert!(err_string(ONE_ROW.replace("gpu_count = 1", "gpu_count = -2")).contains(":6:"));
}

fn err_string(text: String) -> String {
    parse_toml(&text).unwrap_err().to_string()
}

#[test]
fn empty_files_are_errors() {
    for text in ["", "   \n\n", "# only a comment\n"] {
        let err = parse_toml(text).unwrap_err();
        assert!(
            matches!(err, PricingError::EmptyPriceFile { .. }),
            "{text:?}: {err:?}"
        );
    }
    let err = PriceCatalog::parse("{\"instance\": []}", PriceFormat::Json, "p.json").unwrap_err();
    assert!(matches!(err, PricingError::EmptyPriceFile { .. }));
}

#[test]
fn duplicate_row_in_one_file_is_an_error() {
    let err = err_string(format!("{ONE_ROW}{ONE_ROW}"));
    assert!(err.contains("appears twice"), "{err}");
}

#[test]
fn json_files_use_the_same_schema() {
    let json = r#"{"instance": [{"provider": "aws", "instance_type": "g4dn.xlarge",
        "gpu_model": "t4", "gpu_count": 1, "gpu_memory_gb": 16, "usd_per_hour": 0.41}]}"#;
    let catalog = PriceCatalog::parse(json, PriceFormat::Json, "p.json").unwrap();
    assert_eq!(catalog.offers()[0].usd_per_hour, 0.41);

    let bad_type = json.replace("0.41", "\"cheap\"");
    let err = PriceCatalog::parse(&bad_type, PriceFormat::Json, "p.json").unwrap_err();
    let PricingError::PriceFileSyntax {
        line, ref message, ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(line, 2);
    assert!(message.contains("invalid type"), "{message}");
    assert!(
        !message.contains(" at line "),
        "position repeated: {message}"
    );

    let unknown = json.replace("\"gpu_count\"", "\"gpus\"");
    let err = PriceCatalog::parse(&unknown, PriceFormat::Json, "p.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `gpus`"), "{err}");
    assert!(err.starts_with("p.json:2:"), "{err}");
}

#[test]
fn format_detection() {
    assert_eq!(
        PriceFormat::detect(Path::new("a.json"), "x"),
        PriceFormat::Json
    );
    assert_eq!(
        PriceFormat::detect(Path::new("a.TOML"), "{"),
        PriceFormat::Toml
    );
    assert_eq!(
        PriceFormat::detect(Path::new("prices"), "  {\"instance\": []}"),
        PriceFormat::Json
    );
    assert_eq!(
        PriceFormat::detect(Path::new("prices"), "[[instance]]"),
        PriceFormat::Toml
    );
}

#[test]
fn load_file_reports_missing_files() {
    let err = PriceCatalog::load_file(Path::new("/nonexistent/prices.toml")).unwrap_err();
    assert!(matches!(err, PricingError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/prices.toml"));
}

#[test]
fn load_file_reads_toml_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, ONE_ROW).unwrap();
    let catalog = PriceCatalog::load_file(&path).unwrap();
    assert_eq!(catalog.offers().len(), 1);
}

#[test]
fn unknown_instance_suggests_close_names() {
    let catalog = PriceCatalog::builtin().unwrap();
    let err = catalog.find("g4dn.xlarg").unwrap_err();
    let PricingError::UnknownInstance { suggestions, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(suggestions[0], "g4dn.xlarge");
    assert!(err.to_string().contains("did you mean g4dn.xlarge"));
}

#[test]
fn ambiguous_instance_names_the_providers() {
    let mut catalog = parse_toml(ONE_ROW).unwrap();
    catalog.merge(parse_toml(&ONE_ROW.replace("\"aws\"", "\"other\"")).unwrap());
    let err = catalog.find("g4dn.xlarge").unwrap_err().to_string();
    assert!(err.contains("aws/g4dn.xlarge") && err.contains("other/g4dn.xlarge"));
    assert!(catalog.find("other/g4dn.xlarge").is_ok());
}

#[test]
fn line_column_counts_from_one() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("ab", 99), (1, 3));
}

#[test]
fn gpu_model_keys_are_gpu_probe_architecture_keys() {
    let probe_keys: Vec<&str> = gpu_probe::arch_table().iter().map(|a| a.key).collect();
    let mut ours: Vec<&str> = KNOWN_GPU_MODELS.to_vec();
    let mut theirs = probe_keys.clone();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(
        ours, theirs,
        "KNOWN_GPU_MODELS drifted from gpu-probe's table"
    );
    for offer in PriceCatalog::builtin().unwrap().offers() {
        assert!(
            probe_keys.contains(&offer.gpu_model.as_str()),
            "{}: {}",
            offer.key(),
            offer.gpu_model
        );
    }
}
