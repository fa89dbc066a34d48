//! The admin API's statistics in the Prometheus text exposition format
//! (version 0.0.4), pure logic: `# HELP` and `# TYPE` lines, one sample
//! per metric labelled with the zone name.

use core::fmt::Write;

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing count (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// One metric: name (without the `phantom_token_cache_` prefix), help text,
/// type and value.
pub struct Metric {
    /// Name after `phantom_token_cache_` (counters end in `_total`).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The sample value.
    pub value: u64,
}

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";

/// Renders `metrics` for `zone`.
pub fn render(zone: &str, metrics: &[Metric]) -> String {
    let label = escape_label(zone);
    let mut out = String::new();
    for m in metrics {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP phantom_token_cache_{} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE phantom_token_cache_{} {kind}", m.name);
        let _ = writeln!(
            out,
            "phantom_token_cache_{}{{zone=\"{label}\"}} {}",
            m.name, m.value
        );
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Whether an admin `GET` asks for this format: `?format=prometheus`, or an
/// `Accept` header naming `text/plain` (as Prometheus sends).
pub fn wants_prometheus(query: &[u8], accept: Option<&[u8]>) -> bool {
    let by_query = query
        .split(|&b| b == b'&')
        .any(|kv| kv == b"format=prometheus");
    let by_accept =
        accept.is_some_and(|a| a.windows(10).any(|w| w.eq_ignore_ascii_case(b"text/plain")));
    by_query || by_accept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_a_labelled_sample() {
        let text = render(
            "to\"k\\ens",
            &[Metric {
                name: "hits_total",
                help: "JWTs served from the zone.",
                kind: Kind::Counter,
                value: 7,
            }],
        );
        assert_eq!(
            text,
            "# HELP phantom_token_cache_hits_total JWTs served from the zone.\n\
             # TYPE phantom_token_cache_hits_total counter\n\
             phantom_token_cache_hits_total{zone=\"to\\\"k\\\\ens\"} 7\n"
        );
    }

    #[test]
    fn format_is_chosen_by_query_or_accept() {
        assert!(wants_prometheus(b"format=prometheus", None));
        assert!(wants_prometheus(b"a=1&format=prometheus", None));
        assert!(!wants_prometheus(b"format=prometheusx", None));
        assert!(wants_prometheus(
            b"",
            Some(b"text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        ));
        assert!(!wants_prometheus(b"", Some(b"*/*")));
        assert!(!wants_prometheus(b"", Some(b"application/json")));
        assert!(!wants_prometheus(b"", None));
    }
}
