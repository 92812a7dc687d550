//! `mlops render`: writes the Terraform and workflow files the manifest describes, or with
//! `--check` shows how the files on disk differ from them and fails.

use std::io::Write;
use std::path::Path;

use mlops_actions::Runtime;
use mlops_render::tree;
use serde_json::json;

use crate::cli::{Format, RenderArgs};
use crate::exit::Exit;

const UPDATE_HINT: &str = "run `mlops render` to update";

pub(crate) fn run(args: &RenderArgs, format: Format) -> Exit {
    let (manifest, source) = match super::valid_manifest(&args.manifest, format, "nothing rendered")
    {
        Ok(found) => found,
        Err(code) => return code,
    };
    let (repo_root, manifest_path) = match mlops_render::tree::locate(&args.manifest) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let gate = mlops_manifest::gate_workflow(&manifest);
    let promotion = match (&args.promotion_out, &gate.manifest) {
        (Some(_), None) => {
            super::error(
                "--promotion-out: the promotion repository is this one, whose gate `mlops render` writes with the rest",
                "drop --promotion-out, or set `promotion.repository` to the repository holding the production pin file",
            );
            return Exit::Usage;
        }
        (Some(dir), Some(_)) => Some(dir.clone()),
        (None, _) => None,
    };
    let root = promotion
        .clone()
        .or_else(|| args.out.clone())
        .unwrap_or(repo_root);

    // Pins already in the user's workflows (a Dependabot bump) are kept when newer.
    // In a promotion repository only this project's two files are this render's: other
    // projects share the repository.
    let existing = match &promotion {
        Some(_) => tree::existing_paths(
            &root,
            &[gate.path()]
                .into_iter()
                .chain(gate.manifest.clone())
                .collect::<Vec<_>>(),
        ),
        None => tree::existing(&root),
    };
    let pins = workflow_pins(&existing);
    let rendered = match &promotion {
        Some(_) => {
            let text = String::from_utf8_lossy(&source);
            mlops_render::render_promotion(&manifest, &manifest_path, &text, &pins)
                .map(Option::unwrap_or_default)
        }
        None => mlops_render::render(&manifest, &manifest_path, &pins),
    };
    let files = match rendered {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    let comparison = tree::compare(&files, &existing);
    if let Some(why) = mlops_render::loop_withheld(&manifest) {
        eprintln!("note: {why}");
    } else if promotion.is_none()
        && let Some(copy) = &gate.manifest
    {
        eprintln!(
            "note: production's gate runs in the promotion repository {}: render its workflow {} and the manifest copy {copy} into a checkout of it with `mlops render --promotion-out DIR`, and merge them there (`mlops doctor` checks they are current)",
            gate.repository,
            gate.path()
        );
    }
    let code = if args.check {
        show_check(&root, &comparison, format);
        if comparison.is_current() {
            Exit::Ok
        } else {
            Exit::No
        }
    } else {
        match tree::write(&root, &files, &comparison, args.force) {
            Ok(done) => {
                show_written(&root, &files, &done, &comparison, format);
                Exit::Ok
            }
            Err(e @ tree::WriteError::WouldClobber(_)) => {
                eprintln!(
                    "error: {e}\n  = hint: move your changes elsewhere (files beside the rendered ones are kept), or pass --force to replace them"
                );
                Exit::No
            }
            Err(e) => {
                eprintln!(
                    "error: {e}\n  = hint: nothing was replaced; fix the cause and run again"
                );
                Exit::Runtime
            }
        }
    };
    if let Err(e) = outputs(&comparison, args.check, files.len()) {
        eprintln!("warning: could not write the step outputs or summary: {e}");
    }
    code
}

/// The action pins already in each rendered workflow on disk.
fn workflow_pins(
    existing: &std::collections::BTreeMap<String, Result<String, String>>,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, mlops_render::pins::Pin>>
{
    existing
        .iter()
        .filter(|(path, _)| path.starts_with(".github/"))
        .filter_map(|(path, text)| {
            Some((path.clone(), mlops_render::pins::scan(text.as_ref().ok()?)))
        })
        .collect()
}

/// Renders the valid manifest at `root/manifest_path` into `root` without printing: the number
/// of files written. (`mlops init` renders a new project's workflows this way.)
pub(crate) fn render_into(root: &Path, manifest_path: &str) -> Result<usize, String> {
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

fn show_check(root: &Path, c: &tree::Comparison, format: Format) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if format == Format::Json {
        let doc = json!({
            "root": root,
            "current": c.is_current(),
            "stale": c.stale.iter().map(|(p, d)| json!({"path": p, "diff": d})).collect::<Vec<_>>(),
            "missing": c.missing,
            "obsolete": c.obsolete,
            "foreign": c.foreign,
            "unreadable": c.unreadable.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
        });
        let _ = writeln!(out, "{doc}");
        return;
    }
    for (path, diff) in &c.stale {
        let _ = write!(out, "{diff}");
        annotate(format, path, "differs from what the manifest renders");
    }
    for path in &c.missing {
        let _ = writeln!(out, "missing: {path} (deleted, or never rendered)");
        annotate(format, path, "is missing");
    }
    for path in &c.obsolete {
        let _ = writeln!(
            out,
            "obsolete: {path} (generated, but the manifest no longer renders it)"
        );
        annotate(format, path, "is no longer rendered by the manifest");
    }
    for (path, e) in &c.unreadable {
        let _ = writeln!(out, "unreadable: {path}: {e}");
    }
    for path in &c.foreign {
        let _ = writeln!(
            out,
            "note: {path} is not generated by mlops render; it is kept as it is"
        );
    }
    if c.is_current() {
        let _ = writeln!(out, "{}: rendered files are up to date", root.display());
    } else {
        let n = c.stale.len() + c.missing.len() + c.obsolete.len() + c.unreadable.len();
        eprintln!(
            "{n} rendered file{} out of date in {}: {UPDATE_HINT}",
            if n == 1 { " is" } else { "s are" },
            root.display()
        );
    }
}

fn annotate(format: Format, path: &str, what: &str) {
    if format == Format::Github {
        let location = mlops_actions::Location {
            file: path,
            line: 1,
            col: 1,
            end_line: None,
            end_column: None,
        };
        print!(
            "{}",
            mlops_actions::annotation(
                mlops_actions::Level::Error,
                Some(&location),
                "mlops render --check",
                &format!("{path} {what}: {UPDATE_HINT}"),
            )
        );
    }
}

fn show_written(
    root: &Path,
    files: &mlops_render::Files,
    done: &[String],
    c: &tree::Comparison,
    format: Format,
) {
    if format == Format::Json {
        println!(
            "{}",
            json!({"root": root, "files": files.keys().collect::<Vec<_>>(), "written": done, "foreign": c.foreign})
        );
        return;
    }
    for path in done {
        println!("wrote {path}");
    }
    for path in &c.foreign {
        println!("note: {path} is not generated by mlops render; it is kept as it is");
    }
    println!(
        "{}: {} rendered file{}, {} changed",
        root.display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        done.len()
    );
}

fn outputs(c: &tree::Comparison, check: bool, count: usize) -> std::io::Result<()> {
    let rt = Runtime::from_env();
    rt.set_output("current", if c.is_current() { "true" } else { "false" })?;
    rt.set_output("files", &count.to_string())?;
    let mut md = String::from("### mlops render\n\n");
    if c.is_current() {
        md.push_str("The rendered files are up to date.\n");
    } else {
        md.push_str(if check {
            "These files differ from what the manifest renders (run `mlops render` to update):\n\n"
        } else {
            "Updated:\n\n"
        });
        for (path, _) in &c.stale {
            md.push_str(&format!("- `{path}` (changed)\n"));
        }
        for path in &c.missing {
            md.push_str(&format!("- `{path}` (missing)\n"));
        }
        for path in &c.obsolete {
            md.push_str(&format!("- `{path}` (obsolete)\n"));
        }
    }
    rt.append_summary(&md)
}
