//! The `--plot` SVG, written by hand: per operation, latency p50/p99/max per second on a log
//! scale, and throughput per second below it on the same time axis. Plain `<polyline>`,
//! `<line>` and `<text>`, readable in any browser or image viewer.

use std::fmt::Write as _;

use super::report::{OpSummary, Report};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const LATENCY_HEIGHT: f64 = 190.0;
const THROUGHPUT_HEIGHT: f64 = 110.0;
const HEADER: f64 = 56.0;
const TITLE: f64 = 34.0;
const GAP: f64 = 30.0;
const AXIS: f64 = 34.0;
const BLOCK: f64 = TITLE + LATENCY_HEIGHT + GAP + THROUGHPUT_HEIGHT + AXIS + 16.0;

const P50: &str = "#1f77b4";
const P99: &str = "#ff7f0e";
const MAX: &str = "#d62728";
const RATE: &str = "#2ca02c";
const GRID: &str = "#dddddd";
const MINOR_GRID: &str = "#f2f2f2";

/// The whole SVG document for `report`.
pub fn render(report: &Report) -> String {
    let s = &report.setup;
    let mut out = String::new();
    // The setup line, wrapped to the width (about 6.5 px per character at 12 px).
    let details = wrap(&s.describe(), ((WIDTH - LEFT) / 6.5) as usize);
    let warning = report
        .unsent_warning()
        .map(|w| wrap(&w, ((WIDTH - LEFT) / 6.5) as usize))
        .unwrap_or_default();
    let header = HEADER + 16.0 * (details.len().max(1) - 1 + warning.len()) as f64;
    let height = header + BLOCK * report.operations.len().max(1) as f64;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">featgrid bench: {} ({})</text>"#,
        s.workload, s.protocol
    );
    for (i, line) in details.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" fill="#444">{}</text>"##,
            40.0 + 16.0 * i as f64,
            escape(line)
        );
    }
    for (i, line) in warning.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" fill="{MAX}" font-weight="bold">{}</text>"#,
            40.0 + 16.0 * (details.len() + i) as f64,
            escape(line)
        );
    }
    if report.operations.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}">no requests recorded</text>"#,
            header + 24.0
        );
    }
    for (i, op) in report.operations.iter().enumerate() {
        chart(&mut out, op, header + BLOCK * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

/// One operation: title, latency panel, throughput panel.
fn chart(out: &mut String, op: &OpSummary, top: f64) {
    let l = &op.latency_us;
    let errors = op.requests - op.ok;
    let heading = format!(
        "{}: {} requests, {} errors, {:.0} req/s, p50 {} µs, p99 {} µs, max {} µs",
        op.op.name(),
        op.requests,
        errors,
        op.requests_per_sec,
        l.p50,
        l.p99,
        l.max
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        top + 16.0,
        escape(&heading)
    );
    let seconds = op.timeline.len().max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let x = |second: f64| LEFT + plot_width * (second + 0.5) / seconds;

    // Latency, log scale, whole decades.
    let lat_top = top + TITLE;
    let nonzero = |v: u64| (v > 0).then_some(v as f64);
    let lowest = op
        .timeline
        .iter()
        .filter_map(|t| nonzero(t.p50_us))
        .fold(f64::MAX, f64::min);
    let highest = op
        .timeline
        .iter()
        .filter_map(|t| nonzero(t.max_us))
        .fold(1.0, f64::max);
    let lo = if lowest == f64::MAX {
        0.0
    } else {
        lowest.log10().floor()
    };
    let hi = highest.log10().ceil().max(lo + 1.0);
    let y_lat = |us: f64| lat_top + LATENCY_HEIGHT * (1.0 - (us.log10() - lo) / (hi - lo));
    frame(out, lat_top, LATENCY_HEIGHT, "latency (log)");
    for decade in (lo as i32)..=(hi as i32) {
        let us = 10f64.powi(decade);
        grid_line(out, y_lat(us), &format_us(us));
        if decade < hi as i32 {
            for minor in [2.0, 5.0] {
                let y = y_lat(minor * us);
                let _ = writeln!(
                    out,
                    r#"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{MINOR_GRID}"/>"#,
                    WIDTH - RIGHT
                );
            }
        }
    }
    let series = [
        (
            "p50",
            P50,
            "2",
            op.timeline.iter().map(|t| t.p50_us).collect::<Vec<_>>(),
        ),
        (
            "p99",
            P99,
            "2",
            op.timeline.iter().map(|t| t.p99_us).collect(),
        ),
        (
            "max",
            MAX,
            "1.2",
            op.timeline.iter().map(|t| t.max_us).collect(),
        ),
    ];
    for (i, (name, color, width, values)) in series.iter().enumerate() {
        let points: Vec<Option<(f64, f64)>> = values
            .iter()
            .enumerate()
            .map(|(s, &v)| nonzero(v).map(|us| (x(s as f64), y_lat(us))))
            .collect();
        polyline(out, &points, color, width);
        legend(out, lat_top + 14.0 + 18.0 * i as f64, color, name);
    }

    // Throughput, linear from zero.
    let tp_top = lat_top + LATENCY_HEIGHT + GAP;
    let rates: Vec<u64> = op.timeline.iter().map(|t| t.requests - t.errors).collect();
    let errors: Vec<u64> = op.timeline.iter().map(|t| t.errors).collect();
    let peak = rates.iter().chain(&errors).copied().max().unwrap_or(0);
    let top_value = nice_ceiling(peak as f64);
    let y_tp = |v: f64| tp_top + THROUGHPUT_HEIGHT * (1.0 - v / top_value);
    frame(out, tp_top, THROUGHPUT_HEIGHT, "requests/s");
    for step in 0..=2 {
        let v = top_value * f64::from(step) / 2.0;
        grid_line(out, y_tp(v), &format_count(v));
    }
    let points = |values: &[u64]| -> Vec<Option<(f64, f64)>> {
        values
            .iter()
            .enumerate()
            .map(|(s, &v)| Some((x(s as f64), y_tp(v as f64))))
            .collect()
    };
    polyline(out, &points(&rates), RATE, "2");
    legend(out, tp_top + 14.0, RATE, "ok/s");
    if errors.iter().any(|&e| e > 0) {
        polyline(out, &points(&errors), MAX, "1.5");
        legend(out, tp_top + 32.0, MAX, "errors/s");
    }

    // Time axis under the throughput panel.
    let axis_y = tp_top + THROUGHPUT_HEIGHT;
    let step = nice_step(seconds);
    let mut t = 0.0;
    while t <= seconds {
        let px = LEFT + plot_width * t / seconds;
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{axis_y}" x2="{px:.1}" y2="{}" stroke="#444"/><text x="{px:.1}" y="{}" text-anchor="middle">{t}</text>"##,
            axis_y + 4.0,
            axis_y + 17.0
        );
        t += step;
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#444">seconds after warmup</text>"##,
        LEFT + plot_width / 2.0,
        axis_y + 31.0
    );
}

/// A panel's border and its y-axis caption.
fn frame(out: &mut String, top: f64, height: f64, caption: &str) {
    let w = WIDTH - LEFT - RIGHT;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{height}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" fill="#444">{caption}</text>"##,
        WIDTH - RIGHT + 10.0,
        top + height - 4.0
    );
}

/// A horizontal grid line with its label on the left.
fn grid_line(out: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{GRID}"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0
    );
}

fn legend(out: &mut String, y: f64, color: &str, name: &str) {
    let x = WIDTH - RIGHT + 10.0;
    let _ = writeln!(
        out,
        r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
        x + 22.0,
        x + 28.0,
        y + 4.0
    );
}

/// Draws the points as lines, broken where a point is missing; short series get dots too.
fn polyline(out: &mut String, points: &[Option<(f64, f64)>], color: &str, width: &str) {
    for run in points.split(Option::is_none) {
        let coords: Vec<String> = run
            .iter()
            .flatten()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        if coords.len() > 1 {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" stroke-linejoin="round" points="{}"/>"#,
                coords.join(" ")
            );
        }
    }
    if points.len() <= 30 {
        for (x, y) in points.iter().flatten() {
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#
            );
        }
    }
}

/// 1 µs, 10 µs, 100 µs, 1 ms, 10 ms, 100 ms, 1 s, 10 s ...
fn format_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

fn format_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v` (1 for 0).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// A tick step giving at most about 10 ticks over `seconds`.
fn nice_step(seconds: f64) -> f64 {
    nice_ceiling((seconds / 10.0).max(1.0))
}

/// Splits `text` at spaces into lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::options::Options;
    use crate::bench::record::{Failure, Op, Recorder};
    use std::time::Duration;

    fn report() -> Report {
        let mut r = Recorder::default();
        for second in 0..5 {
            for i in 0..100 {
                r.success(Op::Read, second, 200 + i * (second as u64 + 1), 1);
                r.success(Op::Push, second, 900 + i, 10);
            }
        }
        r.failure(Op::Push, 3, Failure::Status(503));
        Report::new(&Options::default(), None, &r, Duration::from_secs(5), 0)
    }

    #[test]
    fn the_svg_has_a_chart_per_operation() {
        let svg = render(&report());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("read: 500 requests"), "{svg}");
        assert!(svg.contains("push: 501 requests, 1 errors"), "{svg}");
        // p50, p99, max and ok/s for each operation, plus errors/s for push.
        assert_eq!(svg.matches("<polyline").count(), 4 + 5);
        for label in [
            "p50",
            "p99",
            "max",
            "ok/s",
            "errors/s",
            "latency (log)",
            "100 µs",
            "1 ms",
        ] {
            assert!(svg.contains(&format!(">{label}<")), "no {label}");
        }
        // Well-formed enough: every element opened is closed.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn requests_never_sent_are_on_the_plot_as_in_the_table() {
        let mut r = report();
        assert!(!render(&r).contains("never sent"));
        r.unsent = 42;
        let svg = render(&r);
        assert!(r
            .table()
            .contains("warning: 42 scheduled requests were never sent"));
        assert!(
            svg.contains("warning: 42 scheduled requests were never sent"),
            "{svg}"
        );
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn an_empty_report_still_renders() {
        let r = Report::new(
            &Options::default(),
            None,
            &Recorder::default(),
            Duration::from_secs(1),
            0,
        );
        let svg = render(&r);
        assert!(svg.contains("no requests recorded"));
        assert!(!svg.contains("<polyline"));
    }

    #[test]
    fn long_setup_lines_wrap_at_spaces() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("short", 80), ["short"]);
        assert_eq!(wrap("unbreakable", 4), ["unbreakable"]);
    }

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12_345.0), 20_000.0);
        assert_eq!(nice_ceiling(50_000.0), 50_000.0);
        assert_eq!(nice_step(10.0), 1.0);
        assert_eq!(nice_step(120.0), 20.0);
        assert_eq!(format_us(1000.0), "1 ms");
        assert_eq!(format_us(100.0), "100 µs");
    }
}
