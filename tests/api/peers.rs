//! The independent peers some tests run against (PyJWT, schemathesis, npm `jose`), installed
//! by `scripts/peers.sh` into `target/peers` and `tests/peers/jose/node_modules`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the installed peers.
pub struct Peers {
    /// The venv's Python (with PyJWT).
    pub python: PathBuf,
    /// The venv's `schemathesis`.
    pub schemathesis: PathBuf,
    /// `tests/peers`.
    pub dir: PathBuf,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Install the peers (quick when already there). `None` outside CI when they cannot be
/// installed (no network, no python3/npm): the calling test is skipped, loudly. In CI a
/// failure fails the test.
pub fn peers(test: &str) -> Option<&'static Peers> {
    static PEERS: OnceLock<Result<Peers, String>> = OnceLock::new();
    let result = PEERS.get_or_init(|| {
        let root = repo_root();
        let out = Command::new("bash")
            .arg(root.join("scripts/peers.sh"))
            .output()
            .map_err(|e| format!("cannot run scripts/peers.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/peers.sh failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let dir = std::env::var_os("AUTH_TEST_PEERS_DIR")
            .map_or_else(|| root.join("target/peers"), PathBuf::from);
        Ok(Peers {
            python: dir.join("venv/bin/python"),
            schemathesis: dir.join("venv/bin/schemathesis"),
            dir: root.join("tests/peers"),
        })
    });
    match result {
        Ok(peers) => Some(peers),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("{e}"),
        Err(e) => {
            eprintln!("\n\n*** SKIPPED {test}: the test peers are not installed: {e} ***\n\n");
            None
        }
    }
}

/// Build the workspace's examples (a no-op after `cargo nextest run --workspace`, which
/// builds them too) and return the path of `name`.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_owned))
        .unwrap_or_else(|| "cargo".into());
    let built = BUILT.get_or_init(|| {
        let out = Command::new(&cargo)
            .args(["build", "--workspace", "--examples", "--quiet"])
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("building the examples failed: {e}");
    }
    // target/debug/deps/api-<hash> -> target/debug/examples/<name>
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile directory")
        .join("examples")
        .join(name)
}
