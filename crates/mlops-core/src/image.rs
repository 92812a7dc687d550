//! The model image: built from the Dockerfile the manifest renders and a Linux `mlops` binary,
//! checked to start, pushed to the manifest's ECR repository under a tag derived from those two
//! inputs, and returned by digest for `mlops train --image-digest`.
//!
//! The tag is `mlops-` and 16 hex digits of the SHA-256 of the Dockerfile and the binary, so the
//! same inputs are one image: a tag ECR already has is not built again (the repository's tags
//! are immutable). docker does the building and pushing; the registry login comes from ECR's
//! API and reaches docker on stdin, in a private docker configuration deleted afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mlops_artifacts::artifact::hex;
use mlops_aws::ecr::DOCKER_MANIFEST;
use mlops_aws::{Ecr, Image, Login};
use mlops_manifest::Manifest;
use sha2::{Digest, Sha256};

use crate::{Problem, Progress};

/// What `mlops image push` is asked to do.
#[derive(Debug)]
pub struct Request<'a> {
    /// The validated manifest, and the path it was read from (named in the rendered files).
    pub manifest: &'a Manifest,
    pub manifest_path: &'a Path,
    /// The Linux `mlops` binary to put in the image; `None` for the running one.
    pub binary: Option<PathBuf>,
    /// The docker command.
    pub docker: &'a str,
}

/// Builds and pushes the image unless ECR has its tag already; the image by digest.
pub fn push(req: &Request<'_>, say: &mut dyn Progress) -> Result<Image, Problem> {
    let Some(repository) = req
        .manifest
        .training
        .sagemaker
        .as_ref()
        .map(|s| s.image.repository.clone())
    else {
        return Err(Problem::input(
            "the manifest has no `training.sagemaker.image.repository` to push the image to",
            "add `training.sagemaker` (the image is what SageMaker runs)",
        ));
    };
    let dockerfile = dockerfile(req.manifest, req.manifest_path)?;
    let binary = match &req.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            Problem::broken(
                format!("cannot find this mlops binary: {e}"),
                "pass --binary PATH",
            )
        })?,
    };
    let bytes = std::fs::read(&binary).map_err(|e| {
        Problem::input(
            format!("{}: cannot read the mlops binary: {e}", binary.display()),
            "pass the Linux build of mlops with --binary PATH",
        )
    })?;
    let platform = platform(&bytes).ok_or_else(|| {
        Problem::input(
            format!(
                "{} is not a Linux x86_64 or aarch64 executable, so it cannot run in the image",
                binary.display()
            ),
            "pass the Linux build of mlops with --binary PATH",
        )
    })?;
    let tag = content_tag(dockerfile.as_bytes(), &bytes);

    let rt = crate::runtime::multi_thread()?;
    rt.block_on(async {
        let ecr = Ecr::from_env().await;
        let base = ecr.repository_uri(&repository).await?;
        if let Some(found) = ecr.image(&base, &repository, Some(&tag), None).await? {
            say.step(&format!(
                "{base}:{tag} is in ECR already (same Dockerfile and binary); not rebuilt"
            ));
            return accepted(found);
        }
        let login = ecr.login().await?;
        let named = format!("{base}:{tag}");
        say.step(&format!("building {named}"));
        build_and_push(req.docker, &named, platform, &dockerfile, &bytes, &login)?;
        let pushed = ecr
            .image(&base, &repository, Some(&tag), None)
            .await?
            .ok_or_else(|| {
                Problem::broken(
                    format!("docker pushed {named}, but ECR does not list it"),
                    "check that docker pushed to the same account and region as AWS_REGION",
                )
            })?;
        say.step(&format!("pushed {named}"));
        accepted(pushed)
    })
}

/// The image, unless its manifest is of a type SageMaker refuses.
fn accepted(image: Image) -> Result<Image, Problem> {
    match image.media_type.as_deref() {
        None | Some(DOCKER_MANIFEST) => Ok(image),
        Some(other) => Err(Problem::broken(
            format!(
                "{} has a `{other}` manifest; SageMaker runs only `{DOCKER_MANIFEST}` images",
                image.uri
            ),
            format!(
                "docker stored the image with OCI media types (the containerd image store); \
                     delete the tag (`aws ecr batch-delete-image --repository-name {} --image-ids \
                     imageTag={}`) and push again with the classic image store",
                image.repository,
                image.tag.as_deref().unwrap_or_default()
            ),
        )),
    }
}

/// The model image's Dockerfile, rendered from the manifest in memory (what `mlops render`
/// writes to `container/Dockerfile`, in a monorepo `container/PROJECT/Dockerfile`;
/// `render --check` keeps the two equal).
fn dockerfile(m: &Manifest, manifest: &Path) -> Result<String, Problem> {
    let path = manifest.display().to_string();
    let files = mlops_render::render(m, &path, &BTreeMap::new())
        .map_err(|e| Problem::broken(e.to_string(), ""))?;
    let want = mlops_render::templates::dockerfile(m);
    files
        .get(&want)
        .cloned()
        .ok_or_else(|| Problem::broken(format!("the manifest renders no {want}"), ""))
}

/// docker's platform for an ELF executable, from its header: `linux/amd64` or `linux/arm64`.
fn platform(binary: &[u8]) -> Option<&'static str> {
    let header: &[u8; 20] = binary.first_chunk()?;
    let [0x7f, b'E', b'L', b'F', 2, 1, ..] = header else {
        return None; // not a little-endian 64-bit ELF
    };
    let [.., lo, hi] = header;
    match u16::from_le_bytes([*lo, *hi]) {
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
    let digest = hex(&h.finalize());
    format!("mlops-{}", digest.get(..16).unwrap_or(&digest))
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
) -> Result<(), Problem> {
    let context = tempfile::Builder::new()
        .prefix("mlops-image-")
        .tempdir()
        .map_err(|e| Problem::broken(format!("cannot create the build context: {e}"), ""))?;
    write_context(context.path(), dockerfile, binary)
        .map_err(|e| Problem::broken(format!("cannot write the build context: {e}"), ""))?;
    // Docker media types and no attestations: SageMaker refuses OCI manifests and indexes.
    let mut build = Command::new(docker);
    build
        .args(["build", "--platform", platform])
        .args(["--provenance=false", "--sbom=false", "--tag", named])
        .arg(context.path());
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
        return Err(Problem::input(
            format!(
                "the image does not start: `docker run {named} --help` failed: {}",
                stderr.trim()
            ),
            hint,
        ));
    }

    // The login lives only in a docker configuration of this run's own.
    let config = tempfile::Builder::new()
        .prefix("mlops-docker-")
        .tempdir()
        .map_err(|e| Problem::broken(format!("cannot create a docker configuration: {e}"), ""))?;
    let mut log_in = Command::new(docker);
    log_in
        .env("DOCKER_CONFIG", config.path())
        .args(["login", "--username", &login.username, "--password-stdin"])
        .arg(&login.registry);
    let out = output_with_stdin(docker, &mut log_in, &login.password)?;
    if !out.status.success() {
        return Err(Problem::broken(
            format!(
                "docker could not log in to {}: {}",
                login.registry,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "the role needs ecr:GetAuthorizationToken and the push actions on the repository",
        ));
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
fn run_docker(docker: &str, c: &mut Command, what: &str) -> Result<(), Problem> {
    // docker's own output goes to stderr, keeping stdout for the result.
    let status = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| not_found(docker, &e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Problem::broken(
            format!("docker could not {what} ({status})"),
            "see docker's output above",
        ))
    }
}

fn output(docker: &str, c: &mut Command) -> Result<std::process::Output, Problem> {
    c.stdin(Stdio::null())
        .output()
        .map_err(|e| not_found(docker, &e))
}

fn output_with_stdin(
    docker: &str,
    c: &mut Command,
    input: &str,
) -> Result<std::process::Output, Problem> {
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

fn not_found(docker: &str, e: &std::io::Error) -> Problem {
    Problem::broken(
        format!("cannot run `{docker}`: {e}"),
        "install Docker (GitHub's hosted Ubuntu runners have it), or name it with --docker",
    )
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
