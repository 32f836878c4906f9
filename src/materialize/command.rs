//! `featgrid materialize`: the request it sends to a running server, the progress line it
//! draws from `GET /materialize` while the request runs, and the summary it prints after.
//! (The HTTP calls themselves are the command line's, in `main.rs`.)

use std::time::Duration;

use serde_json::{json, Value};

/// Width of the progress bar, in characters.
const BAR: usize = 30;

/// The route and body for the command's arguments: `START END` (or none with
/// `--disable-event-timestamp`) for `/materialize`, `END` with `--incremental`.
pub fn request(
    times: &[String],
    incremental: bool,
    disable_event_timestamp: bool,
    views: &[String],
) -> Result<(&'static str, Value), String> {
    let views = (!views.is_empty()).then_some(views);
    match (incremental, disable_event_timestamp, times) {
        (true, false, [end]) => Ok((
            "/materialize-incremental",
            json!({"end_ts": end, "feature_views": views}),
        )),
        (true, _, _) => Err("--incremental takes one timestamp: END".into()),
        (false, true, []) => Ok((
            "/materialize",
            json!({"disable_event_timestamp": true, "feature_views": views}),
        )),
        (false, true, _) => {
            Err("--disable-event-timestamp loads everything up to now: give no timestamps".into())
        }
        (false, false, [start, end]) => Ok((
            "/materialize",
            json!({"start_ts": start, "end_ts": end, "feature_views": views}),
        )),
        (false, false, _) => Err(
            "give START and END (ISO 8601, e.g. 2026-07-16T19:20:01), or --incremental END, or --disable-event-timestamp"
                .into(),
        ),
    }
}

/// One line of progress from a `GET /materialize` answer: rows read of the files' rows (a
/// bar), rows written, rate. `None` while none of `views` (any view, when empty) is running.
pub fn progress_line(status: &Value, views: &[String], elapsed: Duration) -> Option<String> {
    let running = status["views"].as_object()?.iter().find_map(|(name, v)| {
        let wanted = views.is_empty() || views.iter().any(|w| w == name);
        (wanted && v["state"] == "materializing").then(|| (name, &v["running"]))
    })?;
    let (name, r) = running;
    let count = |k: &str| r[k].as_u64().unwrap_or(0);
    let (total, read, written) = (
        count("rows_total"),
        count("rows_read"),
        count("rows_written"),
    );
    let filled = if total == 0 {
        0
    } else {
        (read.min(total) as f64 / total as f64 * BAR as f64) as usize
    };
    let rate = written as f64 / elapsed.as_secs_f64().max(0.001);
    Some(format!(
        "{name}: [{}{}] {read}/{total} rows read, {written} written ({:.0} rows/s)",
        "#".repeat(filled),
        ".".repeat(BAR - filled),
        rate
    ))
}

/// The summary of a finished run, one line per view, from the route's answer.
pub fn summary(answer: &Value) -> String {
    let mut out = String::new();
    for v in answer["feature_views"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {} rows written from {} to {} ({} rows read in {} files, {} of {} row groups skipped)\n",
            v["name"].as_str().unwrap_or("?"),
            v["rows_written"],
            v["start"].as_str().unwrap_or("?"),
            v["end"].as_str().unwrap_or("?"),
            v["rows_read"],
            v["files"],
            v["row_groups_skipped"],
            v["row_groups"],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_become_feast_requests() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (path, body) = request(&t(&["2026-01-01"]), true, false, &t(&["v"])).unwrap();
        assert_eq!(path, "/materialize-incremental");
        assert_eq!(
            body,
            json!({"end_ts": "2026-01-01", "feature_views": ["v"]})
        );
        let (path, body) = request(&t(&["a", "b"]), false, false, &[]).unwrap();
        assert_eq!(path, "/materialize");
        assert_eq!(body["feature_views"], Value::Null);
        assert!(request(&t(&["a"]), false, false, &[]).is_err());
        assert!(request(&t(&["a"]), false, true, &[]).is_err());
    }

    #[test]
    fn progress_shows_the_running_view() {
        let status = json!({"views": {"v": {"state": "materializing",
            "running": {"rows_total": 100, "rows_read": 50, "rows_written": 40}}}});
        let line = progress_line(&status, &[], Duration::from_secs(2)).unwrap();
        assert!(
            line.starts_with(
                "v: [###############...............] 50/100 rows read, 40 written (20 rows/s)"
            ),
            "{line}"
        );
        let idle = json!({"views": {"v": {"state": "idle"}}});
        assert_eq!(progress_line(&idle, &[], Duration::from_secs(1)), None);
    }
}
