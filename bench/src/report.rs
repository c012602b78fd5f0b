//! Medians over repeats, ratios, and the markdown and JSON outputs.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::Stack;

/// Every value measured, by (scenario, metric) and stack.
#[derive(Default)]
pub(crate) struct Results {
    rows: Vec<(String, String)>,
    values: BTreeMap<(String, String), BTreeMap<Stack, Vec<f64>>>,
    /// Scenarios that could not run, and why (shown in the table).
    skipped: Vec<(String, String)>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

fn number(value: Option<f64>) -> String {
    match value {
        None => "null".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

impl Results {
    pub(crate) fn record(&mut self, scenario: &str, metric: &str, stack: Stack, value: f64) {
        let key = (scenario.to_owned(), metric.to_owned());
        if !self.values.contains_key(&key) {
            self.rows.push(key.clone());
        }
        self.values
            .entry(key)
            .or_default()
            .entry(stack)
            .or_default()
            .push(value);
    }

    /// Records that `scenario` was not run, and why; the markdown table
    /// shows it as a row, the JSON (numbers only) leaves it out.
    pub(crate) fn skip(&mut self, scenario: &str, why: &str) {
        self.skipped.push((scenario.to_owned(), why.to_owned()));
    }

    fn medians(&self, key: &(String, String)) -> Medians {
        let get = |stack| {
            self.values
                .get(key)
                .and_then(|m| m.get(&stack))
                .and_then(|v| median(v))
        };
        let ratio = |value: Option<f64>, to: Option<f64>| match (value, to) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        };
        let (h3, h3_h2) = (get(Stack::GrpcH3), get(Stack::GrpcH3H2));
        let (tonic, tonic_h3) = (get(Stack::Tonic), get(Stack::TonicH3));
        Medians {
            h3,
            tonic,
            ratio: ratio(h3, tonic),
            tonic_h3,
            ratio_tonic_h3: ratio(h3, tonic_h3),
            h3_h2,
            h2_ratio: ratio(h3_h2, tonic),
            h2c: get(Stack::TonicH2c),
        }
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "| scenario | metric | grpc-h3 | tonic (h2+TLS) | ratio | tonic-h3 | grpc-h3 / tonic-h3 | grpc-h3 over h2+TLS | ratio | tonic h2c |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let ratio = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("{r:.2}"));
        for key in &self.rows {
            let m = self.medians(key);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                key.0,
                key.1,
                number(m.h3),
                number(m.tonic),
                ratio(m.ratio),
                number(m.tonic_h3),
                ratio(m.ratio_tonic_h3),
                number(m.h3_h2),
                ratio(m.h2_ratio),
                number(m.h2c)
            );
        }
        for (scenario, why) in &self.skipped {
            let _ = writeln!(out, "| {scenario} | **SKIPPED**: {why} | | | | | | | | |");
        }
        out
    }

    pub(crate) fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|key| {
                let m = self.medians(key);
                let ratio = |r: Option<f64>| r.map_or("null".into(), |r| format!("{r:.4}"));
                format!(
                    "{{\"scenario\":\"{}\",\"metric\":\"{}\",\"grpc_h3\":{},\"tonic\":{},\"ratio\":{},\"grpc_h3_h2\":{},\"h2_ratio\":{},\"tonic_h2c\":{},\"tonic_h3\":{},\"ratio_tonic_h3\":{}}}",
                    key.0,
                    key.1,
                    number(m.h3),
                    number(m.tonic),
                    ratio(m.ratio),
                    number(m.h3_h2),
                    ratio(m.h2_ratio),
                    number(m.h2c),
                    number(m.tonic_h3),
                    ratio(m.ratio_tonic_h3)
                )
            })
            .collect();
        format!("[\n  {}\n]\n", rows.join(",\n  "))
    }
}

/// One row's medians, each grpc-h3 stack's ratio to tonic, and grpc-h3's
/// ratio to tonic-h3.
struct Medians {
    h3: Option<f64>,
    tonic: Option<f64>,
    ratio: Option<f64>,
    tonic_h3: Option<f64>,
    ratio_tonic_h3: Option<f64>,
    h3_h2: Option<f64>,
    h2_ratio: Option<f64>,
    h2c: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_scenarios_are_rows_of_the_table_and_not_of_the_json() {
        let mut r = Results::default();
        r.record("S1", "p50_us", Stack::Tonic, 1.0);
        r.skip("S7", "the loss scenarios need `nft`");
        let table = r.markdown();
        assert!(
            table.contains("| S7 | **SKIPPED**: the loss scenarios need `nft` |"),
            "{table}"
        );
        assert!(!r.json().contains("S7"));
    }

    #[test]
    fn medians_and_ratios() {
        let mut r = Results::default();
        for v in [3.0, 1.0, 2.0] {
            r.record("S1", "p50_us", Stack::GrpcH3, v);
        }
        for v in [4.0, 4.0] {
            r.record("S1", "p50_us", Stack::Tonic, v);
        }
        for v in [8.0, 1.0, 9.0] {
            r.record("S1", "p50_us", Stack::TonicH3, v);
        }
        let json = r.json();
        assert!(json.contains("\"grpc_h3\":2.000"), "{json}");
        assert!(json.contains("\"tonic\":4.000"), "{json}");
        assert!(json.contains("\"ratio\":0.5000"), "{json}");
        assert!(json.contains("\"tonic_h2c\":null"), "{json}");
        assert!(json.contains("\"tonic_h3\":8.000"), "{json}");
        assert!(json.contains("\"ratio_tonic_h3\":0.2500"), "{json}");
        assert!(r
            .markdown()
            .contains("| S1 | p50_us | 2.000 | 4.000 | 0.50 | 8.000 | 0.25 | null | n/a | null |"));
    }
}
