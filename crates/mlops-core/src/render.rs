//! `mlops render`: the files a manifest renders, compared with the tree on disk ([`plan`]), then
//! written over it ([`Plan::write`]); [`into`] renders a new project (`mlops init`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_manifest::Manifest;
use mlops_render::pins::Pin;
use mlops_render::tree::{self, Comparison};
use mlops_render::{Files, tree::WriteError};

use crate::{Problem, Progress};

/// What to render and where.
#[derive(Debug)]
pub struct Request<'a> {
    /// The valid manifest, its bytes, and its path as the user named it.
    pub manifest: &'a Manifest,
    pub source: &'a [u8],
    pub path: &'a Path,
    /// Another root than the repository's (`--out`).
    pub out: Option<PathBuf>,
    /// A checkout of the promotion repository: only its gate workflow and manifest copy are
    /// rendered there (`--promotion-out`).
    pub promotion_out: Option<PathBuf>,
}

/// The rendered files against the tree under `root`.
#[derive(Debug)]
pub struct Plan {
    pub root: PathBuf,
    pub files: Files,
    pub comparison: Comparison,
}

/// Renders the manifest and compares the result with the tree on disk; writes nothing. The
/// action pins already in the rendered workflows on disk (a Dependabot bump) are kept when newer.
pub fn plan(req: &Request<'_>, progress: &mut dyn Progress) -> Result<Plan, Problem> {
    let (repo_root, manifest_path) = tree::locate(req.path).map_err(|e| Problem::input(e, ""))?;
    let gate = mlops_manifest::gate_workflow(req.manifest);
    if req.promotion_out.is_some() && gate.manifest.is_none() {
        return Err(Problem::input(
            "--promotion-out: the promotion repository is this one, whose gate `mlops render` writes with the rest",
            "drop --promotion-out, or set `promotion.repository` to the repository holding the production pin file",
        ));
    }
    let root = req
        .promotion_out
        .clone()
        .or_else(|| req.out.clone())
        .unwrap_or(repo_root);
    // In a promotion repository only this project's two files are this render's: other projects
    // share the repository.
    let existing = match &req.promotion_out {
        Some(_) => {
            let own: Vec<String> = [gate.path()]
                .into_iter()
                .chain(gate.manifest.clone())
                .collect();
            tree::existing_paths(&root, &own)
        }
        // One model of a monorepo: the others' files beside its own are theirs.
        None if req.manifest.project.monorepo => {
            tree::existing_paths(&root, &mlops_render::templates::owned_paths(req.manifest))
        }
        None => tree::existing(&root),
    };
    let pins = workflow_pins(&existing);
    let rendered = match &req.promotion_out {
        Some(_) => {
            let text = String::from_utf8_lossy(req.source);
            mlops_render::render_promotion(req.manifest, &manifest_path, &text, &pins)
                .map(Option::unwrap_or_default)
        }
        None => mlops_render::render(req.manifest, &manifest_path, &pins),
    };
    let files = rendered.map_err(|e| Problem::broken(e.to_string(), ""))?;
    let comparison = tree::compare(&files, &existing);
    if let Some(why) = mlops_render::loop_withheld(req.manifest) {
        progress.notice(&format!("note: {why}"));
    } else if req.promotion_out.is_none()
        && let Some(copy) = &gate.manifest
    {
        progress.notice(&format!(
            "note: production's gate runs in the promotion repository {}: render its workflow {} and the manifest copy {copy} into a checkout of it with `mlops render --promotion-out DIR`, and merge them there (`mlops doctor` checks they are current)",
            gate.repository,
            gate.path()
        ));
    }
    Ok(Plan {
        root,
        files,
        comparison,
    })
}

impl Plan {
    /// Writes the stale and missing files and deletes the obsolete ones, all or nothing; the
    /// paths changed. Files without the generated header are replaced only with `force`.
    pub fn write(&self, force: bool) -> Result<Vec<String>, Problem> {
        tree::write(&self.root, &self.files, &self.comparison, force).map_err(|e| match e {
            WriteError::WouldClobber(_) => Problem::refused(
                e.to_string(),
                "move your changes elsewhere (files beside the rendered ones are kept), or pass --force to replace them",
            ),
            e => Problem::broken(e.to_string(), "nothing was replaced; fix the cause and run again"),
        })
    }
}

/// The action pins already in each rendered workflow on disk.
fn workflow_pins(
    existing: &BTreeMap<String, Result<String, String>>,
) -> BTreeMap<String, BTreeMap<String, Pin>> {
    existing
        .iter()
        .filter(|(path, _)| path.starts_with(".github/workflows/"))
        .filter_map(|(path, text)| {
            Some((path.clone(), mlops_render::pins::scan(text.as_ref().ok()?)))
        })
        .collect()
}

/// Renders the manifest at `root/manifest_path` into `root`: the number of files written. An
/// invalid manifest's diagnostics are the error.
pub fn into(root: &Path, manifest_path: &str) -> Result<usize, String> {
    let path = root.join(manifest_path);
    let report = mlops_manifest::check_file(&path).map_err(|e| e.to_string())?;
    let manifest = report
        .manifest
        .clone()
        .filter(|_| report.is_valid())
        .ok_or_else(|| {
            mlops_manifest::diagnostic::render_human(&report.diagnostics, &report.source)
        })?;
    let files = mlops_render::render(&manifest, manifest_path, &Default::default())
        .map_err(|e| e.to_string())?;
    let comparison = tree::compare(&files, &tree::existing(root));
    tree::write(root, &files, &comparison, false)
        .map(|done| done.len())
        .map_err(|e| e.to_string())
}
