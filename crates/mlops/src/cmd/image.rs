//! `mlops image push`: the model image built from the Dockerfile the manifest renders and a
//! Linux `mlops` binary, checked to start, pushed to the manifest's ECR repository under a tag
//! derived from those two inputs, and printed by digest for `mlops train --image-digest`.
//!
//! The tag is `mlops-` and 16 hex digits of the SHA-256 of the Dockerfile and the binary, so the
//! same inputs are one image: a tag ECR already has is not built again (the repository's tags
//! are immutable). docker does the building and pushing; the registry login comes from ECR's
//! API and reaches docker on stdin, in a private docker configuration deleted afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mlops_actions::Runtime;
use mlops_aws::ecr::DOCKER_MANIFEST;
use mlops_aws::{Ecr, Image, Login};
use sha2::{Digest, Sha256};

use super::{aws_failed, error, hex};
use crate::cli::{Format, ImagePushArgs};
use crate::exit::Exit;

/// The rendered Dockerfile's path in the tree `mlops render` writes.
const DOCKERFILE: &str = "container/Dockerfile";

pub(crate) fn push(args: &ImagePushArgs, format: Format) -> Exit {
    match run(args, format) {
        Ok(image) => {
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({
                        "image": image.uri,
                        "digest": image.digest,
                        "tag": image.tag,
                        "repository": image.repository,
                    })
                );
            } else {
                println!("image {}", image.uri);
            }
            if let Err(e) = outputs(&image) {
                eprintln!("warning: could not write the step outputs: {e}");
            }
            Exit::Ok
        }
        Err(code) => code,
    }
}

fn run(args: &ImagePushArgs, format: Format) -> Result<Image, Exit> {
    let (m, _) = super::valid_manifest(&args.manifest, format, "no image built")?;
    let Some(repository) = m
        .training
        .sagemaker
        .as_ref()
        .map(|s| s.image.repository.clone())
    else {
        error(
            "the manifest has no `training.sagemaker.image.repository` to push the image to",
            "add `training.sagemaker` (the image is what SageMaker runs)",
        );
        return Err(Exit::Usage);
    };
    let dockerfile = dockerfile(&m, &args.manifest)?;
    let binary = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            error(
                &format!("cannot find this mlops binary: {e}"),
                "pass --binary PATH",
            );
            Exit::Runtime
        })?,
    };
    let bytes = std::fs::read(&binary).map_err(|e| {
        error(
            &format!("{}: cannot read the mlops binary: {e}", binary.display()),
            "pass the Linux build of mlops with --binary PATH",
        );
        Exit::Usage
    })?;
    let platform = platform(&bytes).ok_or_else(|| {
        error(
            &format!(
                "{} is not a Linux x86_64 or aarch64 executable, so it cannot run in the image",
                binary.display()
            ),
            "pass the Linux build of mlops with --binary PATH",
        );
        Exit::Usage
    })?;
    let tag = content_tag(dockerfile.as_bytes(), &bytes);

    let rt = super::runtime()?;
    rt.block_on(async {
        let ecr = Ecr::from_env().await;
        let base = ecr
            .repository_uri(&repository)
            .await
            .map_err(|e| aws_failed(&e))?;
        if let Some(found) = ecr
            .image(&base, &repository, Some(&tag), None)
            .await
            .map_err(|e| aws_failed(&e))?
        {
            println!("{base}:{tag} is in ECR already (same Dockerfile and binary); not rebuilt");
            return accepted(found);
        }
        let login = ecr.login().await.map_err(|e| aws_failed(&e))?;
        let named = format!("{base}:{tag}");
        build_and_push(&args.docker, &named, platform, &dockerfile, &bytes, &login)?;
        let pushed = ecr
            .image(&base, &repository, Some(&tag), None)
            .await
            .map_err(|e| aws_failed(&e))?
            .ok_or_else(|| {
                error(
                    &format!("docker pushed {named}, but ECR does not list it"),
                    "check that docker pushed to the same account and region as AWS_REGION",
                );
                Exit::Runtime
            })?;
        println!("pushed {named}");
        accepted(pushed)
    })
}

/// The image, unless its manifest is of a type SageMaker refuses.
fn accepted(image: Image) -> Result<Image, Exit> {
    match image.media_type.as_deref() {
        None | Some(DOCKER_MANIFEST) => Ok(image),
        Some(other) => {
            error(
                &format!(
                    "{} has a `{other}` manifest; SageMaker runs only `{DOCKER_MANIFEST}` images",
                    image.uri
                ),
                &format!(
                    "docker stored the image with OCI media types (the containerd image store); \
                     delete the tag (`aws ecr batch-delete-image --repository-name {} --image-ids \
                     imageTag={}`) and push again with the classic image store",
                    image.repository,
                    image.tag.as_deref().unwrap_or_default()
                ),
            );
            Err(Exit::Runtime)
        }
    }
}

/// The model image's Dockerfile, rendered from the manifest in memory (what `mlops render`
/// writes to `container/Dockerfile`; `render --check` keeps the two equal).
fn dockerfile(m: &mlops_manifest::Manifest, manifest: &Path) -> Result<String, Exit> {
    let path = manifest.display().to_string();
    let files = mlops_render::render(m, &path, &BTreeMap::new()).map_err(|e| {
        error(&e.to_string(), "");
        Exit::Runtime
    })?;
    files.get(DOCKERFILE).cloned().ok_or_else(|| {
        error("the manifest renders no container/Dockerfile", "");
        Exit::Runtime
    })
}

/// docker's platform for an ELF executable, from its header: `linux/amd64` or `linux/arm64`.
fn platform(binary: &[u8]) -> Option<&'static str> {
    let header = binary.get(..20)?;
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None; // not a little-endian 64-bit ELF
    }
    match u16::from_le_bytes([header[18], header[19]]) {
        0x3e => Some("linux/amd64"),
        0xb7 => Some("linux/arm64"),
        _ => None,
    }
}

/// `mlops-` and 16 hex digits of the SHA-256 of the Dockerfile and the binary (each preceded
/// by its length, so no two pairs hash alike).
fn content_tag(dockerfile: &[u8], binary: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [dockerfile, binary] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    format!("mlops-{}", &hex(&h.finalize())[..16])
}

/// Builds `named` from a private context (the Dockerfile and the binary as `mlops`), checks
/// that the binary starts inside it, and pushes it with a login kept in a private docker
/// configuration.
fn build_and_push(
    docker: &str,
    named: &str,
    platform: &str,
    dockerfile: &str,
    binary: &[u8],
    login: &Login,
) -> Result<(), Exit> {
    let context = tempfile::Builder::new()
        .prefix("mlops-image-")
        .tempdir()
        .map_err(|e| {
            error(&format!("cannot create the build context: {e}"), "");
            Exit::Runtime
        })?;
    write_context(context.path(), dockerfile, binary).map_err(|e| {
        error(&format!("cannot write the build context: {e}"), "");
        Exit::Runtime
    })?;
    // Docker media types and no attestations: SageMaker refuses OCI manifests and indexes.
    let mut build = Command::new(docker);
    build
        .args(["build", "--platform", platform])
        .args(["--provenance=false", "--sbom=false", "--tag", named])
        .arg(context.path());
    eprintln!("building {named}");
    run_docker(docker, &mut build, "build the image")?;

    // The binary must start on the base (a glibc older than the binary's does not).
    let mut smoke = Command::new(docker);
    smoke
        .args(["run", "--rm", "--network", "none", "--platform", platform])
        .args([named, "--help"]);
    let out = output(docker, &mut smoke)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("GLIBC_") {
            "the binary was linked against a newer glibc than the base image has: build mlops \
             on a system with an older glibc, or set `container.base_image` to a base with at \
             least the glibc named"
        } else {
            "the image's entrypoint is `mlops container`; check that the binary is the Linux build"
        };
        error(
            &format!(
                "the image does not start: `docker run {named} --help` failed: {}",
                stderr.trim()
            ),
            hint,
        );
        return Err(Exit::Usage);
    }

    // The login lives only in a docker configuration of this run's own.
    let config = tempfile::Builder::new()
        .prefix("mlops-docker-")
        .tempdir()
        .map_err(|e| {
            error(&format!("cannot create a docker configuration: {e}"), "");
            Exit::Runtime
        })?;
    let mut log_in = Command::new(docker);
    log_in
        .env("DOCKER_CONFIG", config.path())
        .args(["login", "--username", &login.username, "--password-stdin"])
        .arg(&login.registry);
    let out = output_with_stdin(docker, &mut log_in, &login.password)?;
    if !out.status.success() {
        error(
            &format!(
                "docker could not log in to {}: {}",
                login.registry,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "the role needs ecr:GetAuthorizationToken and the push actions on the repository",
        );
        return Err(Exit::Runtime);
    }
    let mut push = Command::new(docker);
    push.env("DOCKER_CONFIG", config.path())
        .args(["push", named]);
    run_docker(docker, &mut push, "push the image")
}

fn write_context(dir: &Path, dockerfile: &str, binary: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join("Dockerfile"), dockerfile)?;
    let path: PathBuf = dir.join("mlops");
    std::fs::write(&path, binary)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555))?;
    }
    Ok(())
}

/// Runs docker with its output shown (build progress, push layers); fails saying `what`.
fn run_docker(docker: &str, c: &mut Command, what: &str) -> Result<(), Exit> {
    // docker's own output goes to stderr, keeping stdout for the result.
    let status = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| not_found(docker, &e))?;
    if status.success() {
        Ok(())
    } else {
        error(
            &format!("docker could not {what} ({status})"),
            "see docker's output above",
        );
        Err(Exit::Runtime)
    }
}

fn output(docker: &str, c: &mut Command) -> Result<std::process::Output, Exit> {
    c.stdin(Stdio::null())
        .output()
        .map_err(|e| not_found(docker, &e))
}

fn output_with_stdin(
    docker: &str,
    c: &mut Command,
    input: &str,
) -> Result<std::process::Output, Exit> {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| not_found(docker, &e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A docker that exits before reading its stdin is reported by its status below.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().map_err(|e| not_found(docker, &e))
}

fn not_found(docker: &str, e: &std::io::Error) -> Exit {
    error(
        &format!("cannot run `{docker}`: {e}"),
        "install Docker (GitHub's hosted Ubuntu runners have it), or name it with --docker",
    );
    Exit::Runtime
}

fn outputs(image: &Image) -> std::io::Result<()> {
    let rt = Runtime::from_env();
    if !rt.is_actions() {
        return Ok(());
    }
    rt.set_output("image", &image.uri)?;
    rt.set_output("digest", &image.digest)?;
    rt.set_output("tag", image.tag.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_come_from_the_elf_header() {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18] = 0x3e;
        assert_eq!(platform(&elf), Some("linux/amd64"));
        elf[18] = 0xb7;
        assert_eq!(platform(&elf), Some("linux/arm64"));
        elf[18] = 0x28; // 32-bit ARM
        assert_eq!(platform(&elf), None);
        assert_eq!(platform(b"\xcf\xfa\xed\xfe\x07\x00\x00\x01"), None); // Mach-O
        assert_eq!(platform(b"#!/bin/sh\n"), None);
        // This test binary is what the build machine runs.
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform(&me), Some("linux/amd64"));
        }
    }

    #[test]
    fn the_tag_changes_with_either_input_only() {
        let a = content_tag(b"FROM x", b"binary");
        assert_eq!(a, content_tag(b"FROM x", b"binary"));
        assert!(a.starts_with("mlops-") && a.len() == 6 + 16, "{a}");
        assert_ne!(a, content_tag(b"FROM y", b"binary"));
        assert_ne!(a, content_tag(b"FROM x", b"binarY"));
        // The boundary between the two inputs is part of the hash.
        assert_ne!(content_tag(b"ab", b"c"), content_tag(b"a", b"bc"));
    }
}
