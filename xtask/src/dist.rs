//! `cargo xtask dist [--target TRIPLE] [--features LIST]`: the release asset of this machine's
//! (or the given target's) `mlops`, as the release workflow builds it: a release build,
//! packed as `dist/mlops-VERSION-TARGET[-FEATURES].tar.gz` (the binary alone at the top), with
//! `NAME.sha256` beside it in `sha256sum` form. The release collects those lines into
//! `actions/lib/checksums.txt`, which the actions' install script checks downloads against.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{cargo, root, target_dir};

/// The workspace's version, from the root Cargo.toml's `[workspace.package]`.
pub(crate) fn version() -> Result<String, String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
        })
        .map(str::to_owned)
        .ok_or_else(|| "no `version = \"...\"` line in Cargo.toml".to_owned())
}

fn host() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

/// The asset's file name.
pub(crate) fn asset_name(version: &str, target: &str, features: &str) -> String {
    let suffix = if features.is_empty() {
        String::new()
    } else {
        format!("-{}", features.replace(',', "-"))
    };
    format!("mlops-{version}-{target}{suffix}.tar.gz")
}

/// Packs `binary` as `out/NAME` (the binary at the top, named `mlops` or `mlops.exe`) and
/// writes `out/NAME.sha256`; the checksum lines: the asset's (`HEX  NAME`), then the binary's
/// inside it (`HEX  NAME:mlops`), which the install script checks a cached binary against
/// without unpacking the asset again.
pub(crate) fn package(binary: &Path, name: &str, out: &Path) -> Result<String, String> {
    let exe = if binary.extension().is_some_and(|e| e == "exe") {
        "mlops.exe"
    } else {
        "mlops"
    };
    let staging = out.join(format!(".{name}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    std::fs::copy(binary, staging.join(exe))
        .map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
    let asset = out.join(name);
    crate::run(
        Command::new("tar")
            .arg("-czf")
            .arg(&asset)
            .arg("-C")
            .arg(&staging)
            .arg(exe),
    )?;
    let _ = std::fs::remove_dir_all(&staging);
    let digest = |path: &Path| -> Result<String, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    };
    let line = format!(
        "{}  {name}\n{}  {name}:{exe}\n",
        digest(&asset)?,
        digest(binary)?
    );
    std::fs::write(out.join(format!("{name}.sha256")), &line).map_err(|e| e.to_string())?;
    Ok(line)
}

pub(crate) fn run(args: &[&str]) -> Result<(), String> {
    let mut target = None;
    let mut features = String::new();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match *a {
            "--target" => target = rest.next().map(|s| (*s).to_owned()),
            "--features" => features = rest.next().map(|s| (*s).to_owned()).unwrap_or_default(),
            other => return Err(format!("dist: unknown argument `{other}`")),
        }
    }
    let version = version()?;
    let host = host()?;
    let target = target.unwrap_or(host.clone());
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "mlops"]);
    if target != host {
        build.args(["--target", &target]);
    }
    // Every release binary trains on a GPU through wgpu (`device: wgpu`); the asset's name
    // carries only the features asked for beyond it (`-cuda`).
    let built = match features.as_str() {
        "" => "wgpu".to_owned(),
        more => format!("wgpu,{more}"),
    };
    build.args(["--features", &built]);
    crate::run(&mut build)?;
    let dir: PathBuf = if target == host {
        target_dir().join("release")
    } else {
        target_dir().join(&target).join("release")
    };
    let exe = if target.contains("windows") {
        "mlops.exe"
    } else {
        "mlops"
    };
    let out = root().join("dist");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let line = package(
        &dir.join(exe),
        &asset_name(&version, &target, &features),
        &out,
    )?;
    print!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_version_target_and_features() {
        assert_eq!(
            asset_name("0.1.0", "x86_64-unknown-linux-gnu", ""),
            "mlops-0.1.0-x86_64-unknown-linux-gnu.tar.gz"
        );
        assert_eq!(
            asset_name("0.1.0", "x86_64-unknown-linux-gnu", "cuda"),
            "mlops-0.1.0-x86_64-unknown-linux-gnu-cuda.tar.gz"
        );
        assert!(version().is_ok_and(|v| !v.is_empty()));
    }

    #[test]
    fn a_package_holds_the_binary_and_its_checksum_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("built");
        std::fs::write(&bin, b"#!/bin/sh\necho hi\n").expect("write");
        let out = dir.path().join("dist");
        std::fs::create_dir_all(&out).expect("mkdir");
        let name = "mlops-1.2.3-x86_64-unknown-linux-gnu.tar.gz";
        let line = package(&bin, name, &out).expect("packs");
        let hex = |bytes: &[u8]| -> String {
            Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let asset = std::fs::read(out.join(name)).expect("asset");
        let binary = std::fs::read(&bin).expect("binary");
        assert_eq!(
            line,
            format!("{}  {name}\n{}  {name}:mlops\n", hex(&asset), hex(&binary))
        );
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{name}.sha256"))).expect("sha file"),
            line
        );
        let listed = Command::new("tar")
            .arg("-tzf")
            .arg(out.join(name))
            .output()
            .expect("tar");
        assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "mlops");
    }
}
