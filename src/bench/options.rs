//! What a bench run is asked to do, validated before any request is sent: targets (loopback
//! only unless `--allow-remote`), workload, load model, phases, outputs.
//!
//! The command line (src/main.rs) fills [`Options`]; [`Options::validate`] is the one place
//! the combinations are checked, so the harness itself never sees an impossible setting.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::protocol::Protocol;
use super::BenchError;

/// The default target: a featgrid (or Feast) feature server on this machine.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:6566";

/// One server to load: `http://host:port` or `https://host:port`, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http(s)://host:port`, ready to have a path appended.
    pub base: String,
    /// The host as written (`localhost`, `127.0.0.1`, `::1` without brackets).
    pub host: String,
}

impl Target {
    /// Parses `http://host:port` or `https://host:port` (a bare `host:port` is taken as http).
    /// No path.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let full = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let uri: awc::http::Uri = full
            .parse()
            .map_err(|e| format!("'{text}' is not a URL ({e}): expected http://host:port"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            Some(other) => {
                return Err(format!(
                    "'{text}': scheme '{other}' is not supported: expected http://host:port or https://host:port"
                ))
            }
            None => return Err(format!("'{text}': expected http://host:port")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "'{text}' has a path: give the server's root, like http://127.0.0.1:6566"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("'{text}' has no host: expected http://host:port"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "'{text}': credentials in the URL are not supported"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(default_port);
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Target {
            base: format!("{scheme}://{shown}:{port}"),
            host: host.to_string(),
        })
    }

    /// True when the host is this machine: 127.0.0.0/8, `localhost`, `::1` (or `::ffff:127.x`).
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ip.is_loopback(),
            Ok(IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Err(_) => false,
        }
    }
}

/// What the workers send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    Read,
    Push,
    /// Reads with probability `read_ratio`, pushes otherwise.
    Mixed {
        read_ratio: f64,
    },
    /// Push a unique value, then read until it is visible; records push-to-readable time.
    Freshness,
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Read => "read",
            Workload::Push => "push",
            Workload::Mixed { .. } => "mixed",
            Workload::Freshness => "freshness",
        }
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Every connection sends its next request as soon as the previous one is answered.
    Closed,
    /// `rate` requests per second in total on a fixed schedule; latency counts from each
    /// request's intended send time.
    Open { rate: f64 },
}

/// A validated bench run.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: Vec<Target>,
    /// Freshness reads go here; `None` reads from the target that was pushed to.
    pub read_target: Option<Target>,
    pub allow_remote: bool,
    pub protocol: Protocol,
    pub workload: Workload,
    pub load: Load,
    /// Entities preloaded and drawn from: driver ids 1..=entities.
    pub entities: u64,
    pub preload: bool,
    /// Rows per preload push.
    pub preload_batch: usize,
    /// Entities per read, rows per push.
    pub batch: usize,
    /// Features per read: the first K of conv_rate, acc_rate, avg_daily_trips.
    pub features: usize,
    /// Zipf exponent for key choice; `None` is uniform.
    pub zipf: Option<f64>,
    pub connections: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Most recorded (post-warmup) requests; `None` is no cap.
    pub max_requests: Option<u64>,
    /// Per-request timeout: a request not answered by then counts as a "timeout" error.
    pub timeout: Duration,
    /// Freshness: how long one probe reads before it counts as a timeout.
    pub probe_timeout: Duration,
    pub seed: u64,
    /// PEM certificates to trust for `https://` targets (a self-signed server's, or its CA's).
    pub ca_cert: Option<PathBuf>,
    /// A bearer token sent with every request (servers with `auth_tokens` or JWTs).
    pub token: Option<String>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// A progress line on stderr (the CLI turns it on when stderr is a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            targets: vec![Target::parse(DEFAULT_TARGET).expect("default target parses")],
            read_target: None,
            allow_remote: false,
            protocol: Protocol::Feast,
            workload: Workload::Read,
            load: Load::Closed,
            entities: 100_000,
            preload: true,
            preload_batch: 1_000,
            batch: 1,
            features: 3,
            zipf: None,
            connections: 8,
            threads: 1,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            max_requests: None,
            timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            seed: 1,
            ca_cert: None,
            token: None,
            json: None,
            plot: None,
            progress: false,
        }
    }
}

impl Options {
    /// Checks every setting and every combination; refuses non-loopback targets unless
    /// `allow_remote`.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |option: &'static str, problem: String| {
            Err(BenchError::InvalidOption { option, problem })
        };
        if self.targets.is_empty() {
            return invalid("--target", "give at least one target".into());
        }
        if !self.allow_remote {
            if let Some(t) = self
                .targets
                .iter()
                .chain(&self.read_target)
                .find(|t| !t.is_loopback())
            {
                return Err(BenchError::RemoteTarget {
                    url: t.base.clone(),
                });
            }
        }
        if let Some(path) = &self.ca_cert {
            if let Err(problem) = super::tls::client_config(Some(path)) {
                return invalid("--ca-cert", problem);
            }
        }
        if self.read_target.is_some() && self.workload != Workload::Freshness {
            return invalid(
                "--read-target",
                "only the freshness workload reads from a separate target".into(),
            );
        }
        if let Workload::Mixed { read_ratio } = self.workload {
            if !(0.0..=1.0).contains(&read_ratio) {
                return invalid(
                    "--read-ratio",
                    format!("{read_ratio} is not a fraction between 0 and 1"),
                );
            }
        }
        if let Load::Open { rate } = self.load {
            if !(rate.is_finite() && rate > 0.0) {
                return invalid("--rate", format!("{rate} is not a positive rate"));
            }
            if self.workload == Workload::Freshness {
                return invalid(
                    "--rate",
                    "does not apply to the freshness workload: each connection runs one probe after another (give --connections)".into(),
                );
            }
        }
        if let Some(s) = self.zipf {
            if !(s.is_finite() && s > 0.0) {
                return invalid("--zipf", format!("{s} is not a positive exponent"));
            }
        }
        let positive = [
            ("--entities", self.entities),
            ("--batch", self.batch as u64),
            ("--preload-batch", self.preload_batch as u64),
            ("--connections", self.connections as u64),
            ("--threads", self.threads as u64),
        ];
        for (option, value) in positive {
            if value == 0 {
                return invalid(option, "must be at least 1".into());
            }
        }
        if !(1..=3).contains(&self.features) {
            return invalid(
                "--features",
                format!(
                    "{} is out of range: the driver view has 3 features (1..=3)",
                    self.features
                ),
            );
        }
        if self.threads > self.connections {
            return invalid(
                "--threads",
                format!(
                    "{} threads for {} connections: give at most one thread per connection",
                    self.threads, self.connections
                ),
            );
        }
        for (option, d) in [
            ("--warmup", self.warmup),
            ("--duration", self.duration),
            ("--timeout", self.timeout),
            ("--probe-timeout", self.probe_timeout),
        ] {
            if let Err(problem) = within_bound(d) {
                return invalid(option, problem);
            }
        }
        if self.duration.is_zero() {
            return invalid("--duration", "must be longer than 0s".into());
        }
        if self.timeout.is_zero() || self.probe_timeout.is_zero() {
            return invalid("--timeout", "timeouts must be longer than 0s".into());
        }
        if self.max_requests == Some(0) {
            return invalid("--max-requests", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The longest warmup, run or timeout: 30 days. Longer is not meant, and far longer would
/// overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// Parses a duration: plain seconds (`5`, `0.5`) or humantime (`30s`, `2m`, `500ms`), at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let d = match trimmed.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("'{trimmed}' is not a duration: expected seconds >= 0"))?,
        Err(_) => crate::registry::parse_duration(trimmed)?,
    };
    within_bound(d).map_err(|problem| format!("'{trimmed}': {problem}"))
}

fn within_bound(d: Duration) -> Result<Duration, String> {
    if d <= MAX_DURATION {
        Ok(d)
    } else {
        Err(format!(
            "{:.0} s is longer than the limit of 30 days ({} s)",
            d.as_secs_f64(),
            MAX_DURATION.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_and_units() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
        assert_eq!(parse_duration("30d").unwrap(), MAX_DURATION);
        for long in ["1e19", "2592001", "31d", "1000000000y"] {
            let e = parse_duration(long).unwrap_err();
            assert!(
                e.contains("longer than the limit of 30 days"),
                "{long}: {e}"
            );
        }
    }

    #[test]
    fn targets_are_normalised() {
        let t = Target::parse("http://127.0.0.1:6700").unwrap();
        assert_eq!(t.base, "http://127.0.0.1:6700");
        assert_eq!(
            Target::parse("localhost:6566/").unwrap().base,
            "http://localhost:6566"
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().base,
            "http://localhost:80"
        );
        let v6 = Target::parse("http://[::1]:6566").unwrap();
        assert_eq!(
            (v6.base.as_str(), v6.host.as_str()),
            ("http://[::1]:6566", "::1")
        );
    }

    #[test]
    fn bad_targets_say_what_is_expected() {
        assert!(Target::parse("ftp://127.0.0.1:6566")
            .unwrap_err()
            .contains("scheme 'ftp'"));
        assert_eq!(
            Target::parse("https://localhost").unwrap().base,
            "https://localhost:443"
        );
        assert!(Target::parse("http://127.0.0.1:6566/get-online-features")
            .unwrap_err()
            .contains("has a path"));
        assert!(Target::parse("http://a b")
            .unwrap_err()
            .contains("not a URL"));
    }

    #[test]
    fn only_loopback_hosts_count_as_local() {
        let local = [
            "http://127.0.0.1:1",
            "http://127.5.6.7:1",
            "http://localhost:1",
            "http://LOCALHOST:1",
            "http://[::1]:1",
            "http://[::ffff:127.0.0.1]:1",
        ];
        for url in local {
            assert!(Target::parse(url).unwrap().is_loopback(), "{url}");
        }
        let remote = [
            "http://10.0.0.1:1",
            "http://192.168.1.2:1",
            "http://0.0.0.0:1",
            "http://128.0.0.1:1",
            "http://[::2]:1",
            "http://example.com:1",
            "http://localhost.example.com:1",
        ];
        for url in remote {
            assert!(!Target::parse(url).unwrap().is_loopback(), "{url}");
        }
    }

    #[test]
    fn remote_targets_are_refused_unless_allowed() {
        let mut options = Options {
            targets: vec![
                Target::parse("http://127.0.0.1:6566").unwrap(),
                Target::parse("http://10.1.2.3:6566").unwrap(),
            ],
            ..Options::default()
        };
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("http://10.1.2.3:6566"), "{err}");
        assert!(err.contains("--allow-remote"), "{err}");
        options.allow_remote = true;
        options.validate().unwrap();

        let freshness = Options {
            workload: Workload::Freshness,
            read_target: Some(Target::parse("http://192.168.0.9:6566").unwrap()),
            ..Options::default()
        };
        assert!(matches!(
            freshness.validate(),
            Err(BenchError::RemoteTarget { .. })
        ));
    }

    #[test]
    fn impossible_settings_name_the_option() {
        let check = |options: Options, option: &str| {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.starts_with(option), "{err}");
        };
        check(
            Options {
                features: 4,
                ..Options::default()
            },
            "--features",
        );
        check(
            Options {
                load: Load::Open { rate: 0.0 },
                ..Options::default()
            },
            "--rate",
        );
        check(
            Options {
                workload: Workload::Mixed { read_ratio: 1.5 },
                ..Options::default()
            },
            "--read-ratio",
        );
        check(
            Options {
                threads: 4,
                connections: 2,
                ..Options::default()
            },
            "--threads",
        );
        check(
            Options {
                max_requests: Some(0),
                ..Options::default()
            },
            "--max-requests",
        );
        check(
            Options {
                workload: Workload::Freshness,
                load: Load::Open { rate: 10.0 },
                ..Options::default()
            },
            "--rate",
        );
        check(
            Options {
                probe_timeout: Duration::from_secs(u64::MAX),
                ..Options::default()
            },
            "--probe-timeout",
        );
        Options::default().validate().unwrap();
    }
}
