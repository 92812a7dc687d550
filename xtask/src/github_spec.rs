//! `cargo xtask github-spec [--check]`: the part of GitHub's official OpenAPI description that the
//! fake GitHub (`crates/github-fake`) validates traffic against.
//!
//! The description comes from the npm package `@octokit/openapi` (pinned below), installed into
//! the cache directory. The extract keeps the operations `mlops` calls and every component they
//! reference, minus descriptions and examples (13 MB down to about 300 KB); nothing else is
//! changed, so a schema in the extract is GitHub's schema.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Map, Value};

use crate::{cache_dir, root, run};

const PACKAGE: &str = "@octokit/openapi@23.0.2";
const OUTPUT: &str = "crates/github-fake/openapi/github-subset.json";

/// The operations `mlops promote`, `mlops gate`, `mlops doctor` and `mlops monitor` use, as
/// (method, path template).
pub(crate) const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("patch", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/blobs"),
    ("post", "/repos/{owner}/{repo}/git/trees"),
    ("post", "/repos/{owner}/{repo}/git/commits"),
    ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/compare/{basehead}"),
    ("get", "/repos/{owner}/{repo}/commits"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    (
        "post",
        "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers",
    ),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    // `mlops monitor --issue --retrain`: the drift issue, and the train workflow dispatched.
    ("get", "/repos/{owner}/{repo}/issues"),
    ("post", "/repos/{owner}/{repo}/issues"),
    ("patch", "/repos/{owner}/{repo}/issues/{issue_number}"),
    (
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
    ),
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"),
    ("get", "/orgs/{org}/teams/{team_slug}/members"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}/protection"),
    ("get", "/repos/{owner}/{repo}/rules/branches/{branch}"),
    ("get", "/repos/{owner}/{repo}/actions/permissions/workflow"),
    (
        "get",
        "/repos/{owner}/{repo}/actions/oidc/customization/sub",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/collaborators/{username}/permission",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/environments/{environment_name}",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/environments/{environment_name}/variables",
    ),
    ("get", "/repos/{owner}/{repo}/actions/variables"),
    ("get", "/repos/{owner}/{repo}/actions/secrets"),
];

/// The full description, installed once into `<cache>/npm`.
fn full_description() -> Result<Value, String> {
    let dir = cache_dir().join("npm");
    let file = dir.join("node_modules/@octokit/openapi/generated/api.github.com.json");
    let stamp = dir.join(".mlops-package");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(PACKAGE) || !file.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run(Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&dir)
            .arg(PACKAGE))
        .map_err(|e| format!("{e}: the GitHub contract check needs Node.js's npm"))?;
        std::fs::write(&stamp, PACKAGE).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Drops documentation (string `description`/`summary`, `example`, `examples`) but never a
/// property that happens to carry one of those names.
fn strip(v: &mut Value, parent: &str) {
    match v {
        Value::Object(map) => {
            if parent != "properties" {
                map.retain(|k, val| match k.as_str() {
                    "description" | "summary" => !val.is_string(),
                    "example" | "examples" | "externalDocs" | "x-github" => false,
                    _ => true,
                });
            }
            for (k, val) in map.iter_mut() {
                strip(val, k);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strip(i, "")),
        _ => {}
    }
}

/// Every `#/components/...` reference in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|x| refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn pointer_get<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

pub(crate) fn extract(full: &Value) -> Result<Value, String> {
    let mut paths = Map::new();
    for (method, path) in OPERATIONS {
        let op = full
            .pointer(&format!("/paths/{}/{method}", path.replace('/', "~1")))
            .ok_or_else(|| format!("{method} {path} is not in {PACKAGE}"))?;
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(method.to_string(), op.clone());
        }
    }
    let mut paths = Value::Object(paths);
    strip(&mut paths, "");
    // Components referenced, transitively.
    let mut wanted = BTreeSet::new();
    refs(&paths, &mut wanted);
    let mut done = BTreeSet::new();
    let mut components = Value::Object(Map::new());
    while let Some(r) = wanted.iter().find(|r| !done.contains(*r)).cloned() {
        done.insert(r.clone());
        let mut part = pointer_get(full, &r)
            .ok_or_else(|| format!("{r} is referenced but not defined"))?
            .clone();
        strip(&mut part, "");
        refs(&part, &mut wanted);
        // "#/components/schemas/x" -> components.schemas.x
        let mut segments = r.trim_start_matches("#/components/").splitn(2, '/');
        let (Some(kind), Some(name)) = (segments.next(), segments.next()) else {
            return Err(format!("unexpected reference {r}"));
        };
        let name = name.replace("~1", "/").replace("~0", "~");
        if let Value::Object(c) = &mut components
            && let Value::Object(k) = c
                .entry(kind.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
        {
            k.insert(name, part);
        }
    }
    let mut doc = Map::new();
    doc.insert("openapi".into(), full["openapi"].clone());
    doc.insert(
        "info".into(),
        serde_json::json!({
            "title": "GitHub v3 REST API (the operations mlops uses)",
            "version": full["info"]["version"],
            "x-source": format!("npm {PACKAGE}, generated/api.github.com.json; extracted by `cargo xtask github-spec`"),
        }),
    );
    doc.insert("paths".into(), paths);
    doc.insert("components".into(), components);
    Ok(Value::Object(doc))
}

pub(crate) fn run_task(check: bool) -> Result<(), String> {
    let full = full_description()?;
    let text = serde_json::to_string_pretty(&extract(&full)?).map_err(|e| e.to_string())? + "\n";
    let path = root().join(OUTPUT);
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == text {
        return Ok(());
    }
    if check {
        return Err(format!(
            "{OUTPUT} is not the extract of {PACKAGE}; run `cargo xtask github-spec`"
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("updated {OUTPUT}");
    Ok(())
}
