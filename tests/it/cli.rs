//! The command line: a bad configuration exits non-zero with a message naming the file and key.

use std::process::Command;

use crate::support::BIN;

fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command.arg("serve").args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run featgrid");
    assert!(!out.status.success(), "featgrid should refuse to start");
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_settings_name_the_file_the_key_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "shards = \"many\"\n").unwrap();
    let err = serve_fails(&["--config", path.to_str().unwrap()], &[]);
    assert!(err.contains("bad.toml: shards: expected integer"), "{err}");

    let err = serve_fails(&["--bind", "nowhere"], &[]);
    assert!(err.contains("bind: 'nowhere' is not an address"), "{err}");

    let err = serve_fails(&[], &[("FEATGRID_SHARDS", "0")]);
    assert!(err.contains("shards: 0 is out of range"), "{err}");
}

#[test]
fn a_bad_registry_names_its_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.toml"),
        "registry = \"reg.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("reg.toml"),
        "[[entities]]\nname = \"d\"\nvalue_type = \"int64\"\n[[feature_views]]\nname = \"v\"\nentities = [\"d\"]\nfields = [{ name = \"x\", dtype = \"decimal128\" }]\n",
    )
    .unwrap();
    let err = serve_fails(
        &[
            "--config",
            dir.path().join("settings.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        err.contains("reg.toml: feature_views[0].fields[0].dtype: 'decimal128' is not a type"),
        "{err}"
    );
}
