//! The settings' tests: every setting from every source, errors naming their source, paths
//! relative to their source.

use super::*;
use std::io::Write;

use crate::registry::Registry;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_are_valid() {
    let (s, r) = Settings::load(None, [], &Overrides::default()).unwrap();
    assert_eq!(s.bind, "127.0.0.1:6566");
    assert!(r.view("driver_hourly_stats").is_ok());
}

#[test]
fn layers_apply_in_order() {
    let f = write_config("shards = 4\nbind = \"127.0.0.1:7000\"\n");
    let env = [
        ("FEATGRID_SHARDS".to_string(), "6".to_string()),
        ("PATH".into(), "/bin".into()),
    ];
    let (s, _) = Settings::load(Some(f.path()), env.clone(), &Overrides::default()).unwrap();
    assert_eq!((s.shards, s.bind.as_str()), (6, "127.0.0.1:7000"));
    let flags = Overrides {
        shards: Some(2),
        ..Default::default()
    };
    let (s, _) = Settings::load(Some(f.path()), env, &flags).unwrap();
    assert_eq!(s.shards, 2);
}

#[test]
fn errors_name_source_key_and_expectation() {
    let f = write_config("shards = \"many\"\n");
    let e = Settings::load(Some(f.path()), [], &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.path().display().to_string()) && e.contains("shards: expected integer"),
        "{e}"
    );

    let f = write_config("shardz = 3\n");
    let e = Settings::load(Some(f.path()), [], &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("shardz: unknown setting"), "{e}");

    let env = [("FEATGRID_SHARDS".to_string(), "x".to_string())];
    let e = Settings::load(None, env, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("FEATGRID_SHARDS") && e.contains("not a whole number"),
        "{e}"
    );

    let flags = Overrides {
        shards: Some(0),
        ..Default::default()
    };
    let e = Settings::load(None, [], &flags).unwrap_err().to_string();
    assert!(e.contains("shards: 0 is out of range"), "{e}");

    let flags = Overrides {
        bind: Some("localhost".into()),
        ..Default::default()
    };
    let e = Settings::load(None, [], &flags).unwrap_err().to_string();
    assert!(e.contains("bind: 'localhost' is not an address"), "{e}");
}

#[test]
fn durability_settings_parse_and_validate() {
    let (s, _) = Settings::load(None, [], &Overrides::default()).unwrap();
    assert_eq!(
        s.fsync_policy(),
        Ok(crate::persist::wal::FsyncPolicy::Everysec)
    );
    assert_eq!(s.snapshot_interval(), Duration::from_secs(300));
    let f = write_config("snapshot_interval = 5\nfsync = \"always\"\n");
    let (s, _) = Settings::load(Some(f.path()), [], &Overrides::default()).unwrap();
    assert_eq!(s.snapshot_interval(), Duration::from_secs(5));
    let env = [("FEATGRID_SNAPSHOT_INTERVAL".to_string(), "2m".to_string())];
    let (s, _) = Settings::load(None, env, &Overrides::default()).unwrap();
    assert_eq!(s.snapshot_interval(), Duration::from_secs(120));
    let flags = Overrides {
        snapshot_interval: Some("7".into()),
        recover: true,
        ..Default::default()
    };
    let (s, _) = Settings::load(None, [], &flags).unwrap();
    assert_eq!(
        (s.snapshot_interval(), s.recover),
        (Duration::from_secs(7), true)
    );
    let flags = Overrides {
        fsync: Some("sometimes".into()),
        ..Default::default()
    };
    let e = Settings::load(None, [], &flags).unwrap_err().to_string();
    assert!(
        e.contains("fsync: 'sometimes' is not an fsync policy"),
        "{e}"
    );
    let flags = Overrides {
        snapshot_interval: Some("soon".into()),
        ..Default::default()
    };
    let e = Settings::load(None, [], &flags).unwrap_err().to_string();
    assert!(
        e.contains("snapshot_interval: 'soon' is not a duration"),
        "{e}"
    );
}

/// A setting's effective value as text; panics for a key without a case below.
fn effective(s: &Settings, key: &str) -> String {
    match key {
        "bind" => s.bind.clone(),
        "shards" => s.shards.to_string(),
        "shard_threads" => s.shard_threads.to_string(),
        "workers" => s.workers.to_string(),
        "data_dir" => s.data_dir.display().to_string(),
        "fsync" => s.fsync.clone(),
        "snapshot_interval" => format!("{:?}", s.snapshot_interval()),
        "snapshot_keep" => s.snapshot_keep.to_string(),
        "wal_segment_bytes" => s.wal_segment_bytes.to_string(),
        "offline_roll_rows" => s.offline_roll_rows.to_string(),
        "offline_roll_interval" => format!("{:?}", s.offline_roll_interval()),
        "max_body_bytes" => s.max_body_bytes.to_string(),
        "max_entities_per_request" => s.max_entities_per_request.to_string(),
        "max_rows_per_push" => s.max_rows_per_push.to_string(),
        "max_answer_bytes" => s.max_answer_bytes.to_string(),
        "mailbox_capacity" => s.mailbox_capacity.to_string(),
        "shard_timeout_ms" => s.shard_timeout_ms.to_string(),
        "read_path" => s.read_path.clone(),
        "auth_tokens" => s.auth_tokens.clone(),
        "auth_jwt_keys" => s.auth_jwt_keys.clone(),
        "auth_jwt_issuer" => s.auth_jwt_issuer.clone(),
        "auth_jwt_audience" => s.auth_jwt_audience.clone(),
        "auth_jwt_scopes_claim" => s.auth_jwt_scopes_claim.clone(),
        "metrics_require_auth" => s.metrics_require_auth.to_string(),
        "error_format" => s.error_format.clone(),
        "header_timeout_ms" => s.header_timeout_ms.to_string(),
        "body_timeout_ms" => s.body_timeout_ms.to_string(),
        "keep_alive_secs" => s.keep_alive_secs.to_string(),
        "max_connections" => s.max_connections.to_string(),
        "max_read_body_bytes" => s.max_read_body_bytes.to_string(),
        "max_value_bytes" => s.max_value_bytes.to_string(),
        "max_memory" => s.max_memory().to_string(),
        "python" => s.python.clone(),
        "python_workers" => s.python_workers.to_string(),
        "python_timeout_ms" => s.python_timeout_ms.to_string(),
        "python_queue" => s.python_queue.to_string(),
        other => {
            panic!("setting '{other}' has no case in every_setting_loads_from_every_source")
        }
    }
}

/// Sets the flag for `key` to `value`, when the key has a flag and `value` is of its type
/// (a value clap refuses never reaches the settings).
fn flag(key: &str, value: &str) -> Option<Overrides> {
    let mut o = Overrides::default();
    match key {
        "bind" => o.bind = Some(value.into()),
        "shards" => o.shards = Some(value.parse().ok()?),
        "shard_threads" => o.shard_threads = Some(value.parse().ok()?),
        "workers" => o.workers = Some(value.parse().ok()?),
        "data_dir" => o.data_dir = Some(value.into()),
        "fsync" => o.fsync = Some(value.into()),
        "snapshot_interval" => o.snapshot_interval = Some(value.into()),
        "snapshot_keep" => o.snapshot_keep = Some(value.parse().ok()?),
        _ => return None,
    }
    Some(o)
}

#[test]
fn sizes_parse_with_units_and_bad_ones_are_refused() {
    let v = |s: &str| toml::Value::String(s.into());
    assert_eq!(parse_bytes(&toml::Value::Integer(4096)), Ok(4096));
    assert_eq!(parse_bytes(&v("0")), Ok(0));
    assert_eq!(parse_bytes(&v("512MiB")), Ok(512 << 20));
    assert_eq!(parse_bytes(&v("4 GiB")), Ok(4 << 30));
    assert_eq!(parse_bytes(&v("2k")), Ok(2048));
    for bad in [
        "lots",
        "1.5GiB",
        "-1",
        "5 parsecs",
        "99999999999999999999TiB",
    ] {
        assert!(
            parse_bytes(&v(bad)).unwrap_err().contains("is not a size"),
            "{bad}"
        );
    }
    let flags = Overrides {
        max_memory: Some("1GiB".into()),
        ..Default::default()
    };
    let (s, _) = Settings::load(None, [], &flags).unwrap();
    assert_eq!(s.max_memory(), 1 << 30);
    let env = [("FEATGRID_MAX_MEMORY".to_string(), "64MiB".to_string())];
    let (s, _) = Settings::load(None, env, &Overrides::default()).unwrap();
    assert_eq!(s.max_memory(), 64 << 20);
}

#[test]
fn every_setting_loads_from_every_source() {
    // key | good value in TOML | as a variable or flag | loads as | bad value in TOML | as
    // a variable or flag | what its error says
    const CASES: &str = r#"
        bind | "127.0.0.1:7000" | 127.0.0.1:7000 | 127.0.0.1:7000 | "nowhere" | nowhere | 'nowhere' is not an address
        shards | 6 | 6 | 6 | -1 | -1 | -1 is negative
        shard_threads | 2 | 2 | 2 | 0 | 0 | 0 is out of range
        workers | 3 | 3 | 3 | -1 | -1 | -1 is negative
        data_dir | "elsewhere" | elsewhere | elsewhere | "Cargo.toml" | Cargo.toml | Cargo.toml is a file
        fsync | "always" | always | always | "sometimes" | sometimes | 'sometimes' is not an fsync policy
        snapshot_interval | 30 | 30s | 30s | "soon" | soon | 'soon' is not a duration
        snapshot_keep | 5 | 5 | 5 | 0 | 0 | must be at least 1
        wal_segment_bytes | 8192 | 8192 | 8192 | 100 | 100 | 100 is too small
        offline_roll_rows | 10 | 10 | 10 | 0 | 0 | must be at least 1
        offline_roll_interval | 60 | 60 | 60s | 0 | 0 | must be more than 0
        max_body_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
        max_entities_per_request | 10 | 10 | 10 | 0 | 0 | must be at least 1
        max_rows_per_push | 10 | 10 | 10 | 0 | 0 | must be at least 1
        max_answer_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
        mailbox_capacity | 10 | 10 | 10 | 0 | 0 | must be at least 1
        shard_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
        read_path | "actor" | actor | actor | "sideways" | sideways | 'sideways' is not a read path
        auth_tokens | "/t.toml" | /t.toml | /t.toml | 1 | - | expected string
        auth_jwt_keys | "/k.pem" | /k.pem | /k.pem | 1 | - | expected string
        auth_jwt_issuer | "https://i" | https://i | https://i | 1 | - | expected string
        auth_jwt_audience | "aud" | aud | aud | 1 | - | expected string
        auth_jwt_scopes_claim | "scope" | scope | scope | 1 | - | expected string
        metrics_require_auth | true | true | true | "yes" | yes | boolean
        error_format | "feast" | feast | feast | "xml" | xml | expected "featgrid" or "feast"
        header_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
        body_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
        keep_alive_secs | 0 | 0 | 0 | -1 | -1 | -1 is negative
        max_connections | 10 | 10 | 10 | 0 | 0 | must be at least 1
        max_read_body_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
        max_value_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
        max_memory | "1GiB" | 1GiB | 1073741824 | "lots" | lots | is not a size
        python | "/venv/bin/python" | /venv/bin/python | /venv/bin/python | 1 | - | expected string
        python_workers | 3 | 3 | 3 | -1 | -1 | -1 is negative
        python_timeout_ms | 500 | 500 | 500 | 0 | 0 | must be at least 1
        python_queue | 8 | 8 | 8 | 0 | 0 | must be at least 1
    "#;
    let cases: Vec<Vec<&str>> = CASES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let defaults: toml::Table = toml::from_str(DEFAULT_SETTINGS).unwrap();
    // The two registry paths have their own tests: registry_path_follows_its_source and
    // feast_repo_comes_from_file_environment_or_flag_and_excludes_a_toml_registry; the TLS
    // pair (valid only together) has tls::a_bad_certificate_or_half_a_pair_refuses_the_start.
    for key in defaults.keys() {
        assert!(
            matches!(
                key.as_str(),
                "registry" | "feast_repo" | "tls_cert" | "tls_key"
            ) || cases.iter().any(|c| c[0] == key),
            "setting '{key}' has no case here"
        );
    }
    for case in &cases {
        let &[key, file_good, good, loaded, file_bad, bad, problem] = case.as_slice() else {
            panic!("a case needs 7 fields: {case:?}");
        };
        let var = format!("FEATGRID_{}", key.to_ascii_uppercase());
        let file = |value: &str| write_config(&format!("{key} = {value}\n"));
        let env = |value: &str| [(var.clone(), value.to_string())];
        let none = Overrides::default();

        let f = file(file_good);
        let (s, _) = Settings::load(Some(f.path()), [], &none).unwrap();
        assert_eq!(effective(&s, key), loaded, "{key} from the file");
        let (s, _) = Settings::load(None, env(good), &none).unwrap();
        assert_eq!(effective(&s, key), loaded, "{key} from {var}");

        let f = file(file_bad);
        let e = Settings::load(Some(f.path()), [], &none)
            .unwrap_err()
            .to_string();
        let at = format!("{}: {key}: ", f.path().display());
        assert!(
            e.starts_with(&at) && e.contains(problem),
            "{key} from the file: {e}"
        );
        // `-`: every text is a valid value of this setting in the environment.
        if bad != "-" {
            let e = Settings::load(None, env(bad), &none)
                .unwrap_err()
                .to_string();
            let at = format!("environment variable {var}: {key}: ");
            assert!(
                e.starts_with(&at) && e.contains(problem),
                "{key} from {var}: {e}"
            );
        }

        if let Some(flags) = flag(key, good) {
            let (s, _) = Settings::load(None, [], &flags).unwrap();
            assert_eq!(effective(&s, key), loaded, "{key} from its flag");
        }
        if let Some(flags) = flag(key, bad) {
            let e = Settings::load(None, [], &flags).unwrap_err().to_string();
            let at = format!("flag --{}: {key}: ", key.replace('_', "-"));
            assert!(
                e.starts_with(&at) && e.contains(problem),
                "{key} from its flag: {e}"
            );
        }
    }
}

#[test]
fn registry_path_follows_its_source() {
    // From the environment (or a flag), relative to the working directory, where the
    // command was typed; from a settings file, relative to that file.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(&settings, "shards = 2\n").unwrap();
    let env = [(
        "FEATGRID_REGISTRY".to_string(),
        "config/example_registry.toml".to_string(),
    )];
    let (_, r) = Settings::load(Some(&settings), env, &Overrides::default()).unwrap();
    assert!(r.view("customer_profile").is_ok());
    let env = [("FEATGRID_REGISTRY".to_string(), "missing.toml".to_string())];
    let e = Settings::load(None, env, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("missing.toml: (file): cannot read"), "{e}");
}

/// A Feast repo `dir/name` with an empty registry of project `shop`.
fn feast_repo(dir: &Path, name: &str) -> PathBuf {
    use prost::Message as _;
    let repo = dir.join(name);
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("feature_store.yaml"),
        "project: shop\nregistry:\n  path: registry.db\n  cache_ttl_seconds: 7\n",
    )
    .unwrap();
    let file = crate::registry::feast::proto::Registry {
        version_id: name.into(),
        ..Default::default()
    };
    std::fs::write(repo.join("registry.db"), file.encode_to_vec()).unwrap();
    repo
}

#[test]
fn feast_repo_comes_from_file_environment_or_flag_and_excludes_a_toml_registry() {
    let dir = tempfile::tempdir().unwrap();
    let version = |r: &Registry| r.loaded_from.version_id.clone().unwrap();

    let from_flag = feast_repo(dir.path(), "flag");
    let flags = Overrides {
        feast_repo: Some(from_flag.clone()),
        ..Default::default()
    };
    let (s, r) = Settings::load(None, [], &flags).unwrap();
    assert_eq!(version(&r), "flag");
    let repo = s.feast.unwrap();
    assert_eq!(
        (repo.project.as_str(), repo.cache_ttl),
        ("shop", Duration::from_secs(7))
    );

    let from_env = feast_repo(dir.path(), "env");
    let env = [(
        "FEATGRID_FEAST_REPO".to_string(),
        from_env.display().to_string(),
    )];
    let (_, r) = Settings::load(None, env, &Overrides::default()).unwrap();
    assert_eq!(version(&r), "env");

    // In a config file, relative to the file's directory.
    feast_repo(dir.path(), "file");
    let config = dir.path().join("featgrid.toml");
    std::fs::write(&config, "feast_repo = \"file\"\n").unwrap();
    let (_, r) = Settings::load(Some(&config), [], &Overrides::default()).unwrap();
    assert_eq!(version(&r), "file");
    // The flag wins over the file.
    let (_, r) = Settings::load(Some(&config), [], &flags).unwrap();
    assert_eq!(version(&r), "flag");

    std::fs::write(&config, "registry = \"r.toml\"\n").unwrap();
    let e = Settings::load(Some(&config), [], &flags)
        .unwrap_err()
        .to_string();
    assert!(e.contains("feast_repo: both a TOML registry"), "{e}");
}

#[test]
fn registry_path_is_relative_to_the_config_file() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let path = Path::new(dir).join("config/example.toml");
    let (s, r) = Settings::load(Some(&path), [], &Overrides::default()).unwrap();
    assert_eq!(s.shards, 4);
    assert!(r.view("customer_profile").is_ok());
}
