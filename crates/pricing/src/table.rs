//! Plain-text tables for terminals, and number formatting for them.

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right (text).
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// Renders `rows` under `headers` with columns padded to their widest cell and separated by
/// two spaces; a dashed rule follows the header. `aligns` has one entry per column (missing
/// entries mean [`Align::Left`]). Every line starts with `indent`.
#[must_use]
pub fn render_table(
    headers: &[&str],
    aligns: &[Align],
    rows: &[Vec<String>],
    indent: &str,
) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let align = aligns.get(i).copied().unwrap_or(Align::Left);
            if i > 0 {
                out.push_str("  ");
            }
            match align {
                Align::Left => {
                    out.push_str(cell);
                    if i + 1 < cells.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                Align::Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        let mut cells: Vec<&str> = row.iter().map(String::as_str).take(columns).collect();
        cells.resize(columns, "");
        out.push_str(&line(cells));
    }
    out
}

/// `value` with `decimals` decimals and `,` between thousands: `1234567.891, 2` →
/// `"1,234,567.89"`.
#[must_use]
pub fn thousands(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let rendered = format!("{:.*}", decimals, value.abs());
    let (int_part, frac_part) = match rendered.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rendered.as_str(), None),
    };
    let mut grouped = String::new();
    for (i, ch) in int_part.chars().enumerate() {
        if i > 0 && (int_part.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if value < 0.0 && rendered.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac_part {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(1000.0, 0), "1,000");
        assert_eq!(thousands(-12345.5, 1), "-12,345.5");
        assert_eq!(thousands(0.0457, 4), "0.0457");
        assert_eq!(thousands(-0.00001, 2), "0.00");
    }

    #[test]
    fn table_pads_columns() {
        let out = render_table(
            &["name", "price"],
            &[Align::Left, Align::Right],
            &[
                vec!["g4dn.xlarge".into(), "0.526".into()],
                vec!["p5".into(), "55.04".into()],
            ],
            "  ",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "  name         price");
        assert_eq!(lines[1], "  -----------  -----");
        assert_eq!(lines[2], "  g4dn.xlarge  0.526");
        assert_eq!(lines[3], "  p5           55.04");
    }
}
