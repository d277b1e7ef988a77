//! The command line (SPEC 1, 3): `keygate hash-token`, `keygate check-config` with its error paths and
//! `--config` / `KEYGATE_CONFIG` precedence, and the shipped example config.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{default_config, hex, run_cli, yaml, Ports};

fn good_config(dir: &Path) -> serde_yaml::Value {
    let store = dir.join("data").join("keygate.db");
    default_config(Ports::pick(), ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"], &store)
}

fn write(dir: &Path, name: &str, config: &serde_yaml::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(config).expect("yaml")).expect("write config");
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temp dir with `good.yaml` (valid) and `bad.yaml` (two errors).
fn configs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = good_config(dir.path());
    let mut bad = good.clone();
    bad["environments"]["development"]["upstreams"] = yaml(json!(["nowhere"]));
    bad["keys"]["colour"] = "red".into();
    let good_path = write(dir.path(), "good.yaml", &good);
    let bad_path = write(dir.path(), "bad.yaml", &bad);
    (dir, good_path, bad_path)
}

#[test]
fn hash_token_prints_the_sha256_form() {
    let dir = tempfile::tempdir().unwrap();
    let expected = format!("sha256:{}", hex(&Sha256::digest(b"secret-token")));
    let out = run_cli(&["hash-token"], Some("secret-token\n"), &[], dir.path());
    assert!(out.status.success(), "exit {}: {}", out.status, text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), expected, "the trailing newline is not part of the token");
    let out = run_cli(&["hash-token"], Some("secret-token"), &[], dir.path());
    assert_eq!(text(&out.stdout).trim_end(), expected, "without a trailing newline");
}

#[test]
fn check_config_accepts_a_good_config() {
    let (dir, good, _) = configs();
    let out = run_cli(&["check-config", "--config", good.to_str().unwrap()], None, &[], dir.path());
    assert!(out.status.success(), "exit {}: {}", out.status, text(&out.stderr));
}

#[test]
fn check_config_names_every_error_with_its_path() {
    let (dir, _, bad) = configs();
    let out = run_cli(&["check-config", "--config", bad.to_str().unwrap()], None, &[], dir.path());
    assert!(!out.status.success(), "a bad config passed");
    let err = text(&out.stderr);
    assert!(err.contains("environments.development.upstreams[0]"), "stderr does not name the bad upstream:\n{err}");
    assert!(err.contains("keys.colour"), "stderr does not name the unknown key:\n{err}");
}

#[test]
fn check_config_rejects_a_bad_duration_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = good_config(dir.path());
    config["proxy"]["upstream_timeout"] = "soon".into();
    let path = write(dir.path(), "c.yaml", &config);
    let out = run_cli(&["check-config", "--config", path.to_str().unwrap()], None, &[], dir.path());
    assert!(!out.status.success(), "a bad duration passed");
    assert!(text(&out.stderr).contains("proxy.upstream_timeout"), "{}", text(&out.stderr));
}

#[test]
fn check_config_fails_for_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["check-config", "--config", "does-not-exist.yaml"], None, &[], dir.path());
    assert!(!out.status.success(), "a missing config passed");
    assert!(!text(&out.stderr).trim().is_empty(), "no error message");
}

#[test]
fn the_config_flag_wins_over_keygate_config() {
    let (dir, good, bad) = configs();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());
    let out = run_cli(&["check-config", "--config", good], None, &[("KEYGATE_CONFIG", bad)], dir.path());
    assert!(out.status.success(), "--config good with KEYGATE_CONFIG bad: {}", text(&out.stderr));
    let out = run_cli(&["check-config", "--config", bad], None, &[("KEYGATE_CONFIG", good)], dir.path());
    assert!(!out.status.success(), "--config bad with KEYGATE_CONFIG good passed");
}

#[test]
fn keygate_config_is_read_without_the_flag() {
    let (dir, good, bad) = configs();
    let out = run_cli(&["check-config"], None, &[("KEYGATE_CONFIG", bad.to_str().unwrap())], dir.path());
    assert!(!out.status.success(), "KEYGATE_CONFIG=bad passed: not read?");
    assert!(text(&out.stderr).contains("keys.colour"), "{}", text(&out.stderr));
    let out = run_cli(&["check-config"], None, &[("KEYGATE_CONFIG", good.to_str().unwrap())], dir.path());
    assert!(out.status.success(), "KEYGATE_CONFIG=good: {}", text(&out.stderr));
}

#[test]
fn the_shipped_config_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("config").join("keygate.yaml");
    assert!(shipped.is_file(), "{} is missing", shipped.display());
    let out = run_cli(&["check-config", "--config", shipped.to_str().unwrap()], None, &[], root);
    assert!(out.status.success(), "exit {}: {}", out.status, text(&out.stderr));
}

#[test]
fn check_config_defaults_to_config_keygate_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let mut bad = good_config(dir.path());
    bad["keys"]["colour"] = "red".into();
    write(&dir.path().join("config"), "keygate.yaml", &bad);
    let out = run_cli(&["check-config"], None, &[], dir.path());
    assert!(!out.status.success(), "config/keygate.yaml (bad) was not read by default");
    assert!(text(&out.stderr).contains("keys.colour"), "{}", text(&out.stderr));
}
