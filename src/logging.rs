//! The process's log: standard error, filtered by `FEATGRID_LOG` (default `info,openraft=warn`),
//! as text or as one JSON object a line (`--log-format json`, for log shippers). Text is
//! coloured only when standard error is a terminal and `NO_COLOR` is unset or empty: a log
//! written to a file or a pipe carries no escape codes.
//!
//! openraft reports a peer it cannot reach at `error` and `warn` level, four lines per retry
//! (`RPCError`, `error replication to target`, `update progress error`, `backoff mode`, and
//! `while requesting vote` for a candidate): a cluster whose nodes start one after another
//! would log an ERROR for every peer not up yet. [`QuietUnreachable`] drops those lines (and
//! only those: openraft's other warnings and errors, storage errors included, pass), and
//! [`crate::cluster::network::reachability`] logs the peer instead: `debug` while it is not
//! up yet, `warn` once it has stayed away for 10 s, `info` when it is back. A per-target
//! directive (`openraft::replication=off`) could not do this: the same targets log storage
//! errors and a core that stopped. Returning another error variant than `Unreachable` from
//! the network would not either: openraft logs every `RPCError` at `error`, and only
//! `Unreachable` makes it back off instead of retrying at once. openraft's `debug` lines
//! about the peer are kept for whoever asks for them (`FEATGRID_LOG=openraft=debug`).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-02T17:13:22.123Z  INFO featgrid: message key=value`
    #[default]
    Text,
    /// `{"timestamp":...,"level":"INFO","message":...,"key":value,"span":{...}}`
    Json,
}

/// Whether text lines get colour: only on a terminal, and never with a non-empty `NO_COLOR`
/// (<https://no-color.org>).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the process's subscriber; call once, first thing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FEATGRID_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(QuietUnreachable);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => subscriber
            .with(layer.with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            )))
            .init(),
        LogFormat::Json => subscriber
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
}

/// Drops openraft's `warn` and `error` lines about a peer it cannot reach (see the module
/// comment); every other event passes.
pub struct QuietUnreachable;

impl<S: Subscriber> Layer<S> for QuietUnreachable {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::WARN || !meta.target().starts_with("openraft") {
            return true;
        }
        let mut text = FieldText::default();
        event.record(&mut text);
        !about_an_unreachable_peer(&text.0)
    }
}

/// Whether the text of an openraft event is about a peer it could not reach: the network
/// answered `Unreachable` (displayed `Unreachable node: ...`), or the replication to it
/// backs off, which only `Unreachable` makes it do.
pub fn about_an_unreachable_peer(fields: &str) -> bool {
    fields.contains("Unreachable node: ") || fields.contains("backoff mode: drain events")
}

/// An event's field values, written one after another.
#[derive(Default)]
struct FieldText(String);

impl Visit for FieldText {
    fn record_str(&mut self, _: &Field, value: &str) {
        self.0.push_str(value);
        self.0.push('\n');
    }

    fn record_debug(&mut self, _: &Field, value: &dyn std::fmt::Debug) {
        let _ = writeln!(self.0, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn only_openraft_lines_about_an_unreachable_peer_are_dropped() {
        // Lines openraft 0.9 writes while a peer is not up yet.
        let unreachable = "Unreachable node: featgrid::cluster::network::NetError: node at \
                           127.0.0.1:7203 did not answer: Connection refused (os error 111)";
        assert!(about_an_unreachable_peer(&format!(
            "RPCError\n{unreachable}\n"
        )));
        assert!(about_an_unreachable_peer(&format!(
            "while requesting vote\n{unreachable}\n2\n"
        )));
        assert!(about_an_unreachable_peer(
            "openraft::replication::ReplicationCore<_, _, _>::backoff_drain_events backoff mode: \
             drain events without processing them\n499.99ms\n"
        ));
        // Other failures stay visible.
        assert!(!about_an_unreachable_peer(
            "error replication to target=2\nStorageError: failed to read logs\n"
        ));
        assert!(!about_an_unreachable_peer(
            "RPCError\nerror occur on remote peer 2: has to forward request to: None, None\n"
        ));
        assert!(!about_an_unreachable_peer(
            "quit RaftCore::main on error\nFatal\n"
        ));
    }

    /// A writer into a shared buffer, for a subscriber under test.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_layer_drops_openraft_unreachable_lines_and_keeps_the_rest() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("debug"))
            .with(QuietUnreachable)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let err = "Unreachable node: node at 127.0.0.1:7203 did not answer";
            tracing::error!(target: "openraft::replication", err = %err, "RPCError");
            tracing::error!(target: "openraft::core::raft_core", error = %err, target = 2, "while requesting vote");
            tracing::warn!(target: "openraft::replication", "x::backoff_drain_events backoff mode: drain events without processing them");
            tracing::debug!(target: "openraft::replication", res = %err, "replication action done");
            tracing::error!(target: "openraft::replication", error = %"StorageError: disk", "error replication to target=2");
            tracing::warn!(target: "featgrid::cluster::network::reachability", reason = %err, "peer unreachable");
        });
        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!log.contains("RPCError"), "{log}");
        assert!(!log.contains("while requesting vote"), "{log}");
        assert!(!log.contains("backoff mode"), "{log}");
        assert!(
            log.contains("DEBUG openraft::replication: replication action done"),
            "{log}"
        );
        assert!(
            log.contains(
                "ERROR openraft::replication: error replication to target=2 error=StorageError"
            ),
            "{log}"
        );
        assert!(
            log.contains("WARN featgrid::cluster::network::reachability: peer unreachable"),
            "{log}"
        );
    }
}
