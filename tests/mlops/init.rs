//! `mlops init` against the real `cookiecutter` (PyPI, installed by `cargo xtask tools`): the same
//! template and answers must give the same tree, byte for byte and mode for mode, with hooks and
//! without; and the refusals that keep a project whole.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::bin;
use crate::tools;
use bin::{mlops, root, succeeds};

fn template(name: &str) -> PathBuf {
    root().join("tests/fixtures/templates").join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory's entries by path: mode, and contents (none for directories).
type Tree = BTreeMap<String, (u32, Option<Vec<u8>>)>;

/// Every entry under `dir`.
fn tree(dir: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let path = e.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(rel, (mode, None));
                stack.push(path);
            } else {
                out.insert(rel, (mode, Some(std::fs::read(&path).expect("read"))));
            }
        }
    }
    out
}

/// cookiecutter with its replay and clone directories in `scratch`, rendering into `out`.
fn cookiecutter(scratch: &Path, template: &Path, out: &Path, args: &[&str]) -> Option<Output> {
    let cc = tools::tool("cookiecutter")?;
    let config = scratch.join("cookiecutter.yaml");
    std::fs::write(
        &config,
        format!(
            "replay_dir: \"{}\"\ncookiecutters_dir: \"{}\"\n",
            scratch.join("replay").display(),
            scratch.join("clones").display()
        ),
    )
    .expect("write");
    Some(
        Command::new(cc)
            .arg("--no-input")
            .arg("--config-file")
            .arg(&config)
            .arg("-o")
            .arg(out)
            .arg(template)
            .args(args)
            .output()
            .expect("cookiecutter runs"),
    )
}

fn init(template: &Path, out: &Path, args: &[&str]) -> Output {
    mlops()
        .arg("init")
        .arg(out)
        .arg("--template")
        .arg(template)
        .arg("--no-input")
        .args(args)
        .output()
        .expect("mlops runs")
}

/// Runs both on `template` with `args` and checks they agree: both succeed with the same tree,
/// or both fail and leave nothing. Returns our tree.
fn parity(template: &Path, args: &[&str], ours: &[&str]) -> Option<Tree> {
    let scratch = tempfile::tempdir().expect("tempdir");
    let (theirs_dir, ours_dir) = (scratch.path().join("theirs"), scratch.path().join("ours"));
    std::fs::create_dir_all(&theirs_dir).expect("mkdir");
    std::fs::create_dir_all(&ours_dir).expect("mkdir");
    let theirs = cookiecutter(scratch.path(), template, &theirs_dir, args)?;
    let all: Vec<&str> = args.iter().chain(ours).copied().collect();
    let mine = init(template, &ours_dir, &all);
    assert_eq!(
        theirs.status.success(),
        mine.status.success(),
        "cookiecutter: {}\nmlops: {}",
        text(&theirs.stderr),
        text(&mine.stderr)
    );
    let (a, b) = (tree(&theirs_dir), tree(&ours_dir));
    for (path, (mode, bytes)) in &a {
        let Some((m, mb)) = b.get(path) else {
            panic!("{path}: cookiecutter wrote it, mlops init did not");
        };
        assert_eq!(mode, m, "{path}: mode {mode:o} vs {m:o}");
        assert!(
            bytes == mb,
            "{path} differs:\ncookiecutter: {:?}\nmlops init:   {:?}",
            bytes.as_deref().map(text),
            mb.as_deref().map(text)
        );
    }
    let extra: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(extra.is_empty(), "only mlops init wrote {extra:?}");
    Some(b)
}

/// The feature template with its defaults and with answers: choices, booleans, numbers, derived
/// defaults, dictionaries, private variables, `_copy_without_render` (files and a directory),
/// names that render empty, binary files, modes, CRLF and a missing final newline, the
/// cookiecutter filters and functions.
#[test]
fn the_feature_template_matches_cookiecutter() {
    let t = template("full");
    let Some(tree) = parity(&t, &[], &[]) else {
        return;
    };
    let readme = tree
        .get("creme-brulee-models/README.md")
        .and_then(|(_, b)| b.clone())
        .expect("README");
    assert!(text(&readme).contains("License: MIT; GPU: False"));
    assert!(tree.contains_key("creme-brulee-models/static/{{raw}}/app.js"));
    assert!(!tree.contains_key("creme-brulee-models/gpu.txt"));
    assert_eq!(tree["creme-brulee-models/run.sh"].0, 0o755);

    let answers = [
        "project_name=Forecast & Co, v2",
        "license=BSD-3-Clause",
        "use_gpu=yes",
        "publish=off",
        "workers=16",
        "unknown=ignored",
    ];
    let tree = parity(&t, &answers, &[]).expect("tools present");
    assert!(
        tree.contains_key("forecast-co-v2/gpu.txt"),
        "{:?}",
        tree.keys()
    );
    assert!(!tree.contains_key("forecast-co-v2/PUBLISH.md"));
}

/// Hooks as cookiecutter runs them: templated, in the project directory, pre before the files
/// and post after; a failing hook (either) leaves no project; backups (`~`) never run;
/// `--no-hooks` is cookiecutter's `--accept-hooks no`.
#[test]
fn hooks_match_cookiecutter() {
    let t = template("hooks");
    let Some(made) = parity(&t, &[], &[]) else {
        return;
    };
    assert_eq!(
        made["hooked/post.txt"].1.as_deref().map(text).as_deref(),
        Some("files: main.txt,post.txt,pre.txt\n")
    );
    parity(&t, &["keep_extra=yes"], &[]);
    let failed = parity(&t, &["fail=pre"], &[]).expect("tools present");
    assert!(failed.is_empty(), "{failed:?}");
    let failed = parity(&t, &["fail=post"], &[]).expect("tools present");
    assert!(failed.is_empty(), "{failed:?}");

    let scratch = tempfile::tempdir().expect("tempdir");
    let cc = tools::tool("cookiecutter").expect("present");
    let config = scratch.path().join("c.yaml");
    std::fs::write(
        &config,
        format!("replay_dir: \"{}\"\n", scratch.path().join("r").display()),
    )
    .expect("write");
    let theirs = scratch.path().join("theirs");
    let ok = Command::new(cc)
        .args(["--no-input", "--accept-hooks", "no", "--config-file"])
        .arg(&config)
        .arg("-o")
        .arg(&theirs)
        .arg(&t)
        .status()
        .expect("runs")
        .success();
    assert!(ok);
    let ours = scratch.path().join("ours");
    assert!(init(&t, &ours, &["--no-hooks"]).status.success());
    assert_eq!(tree(&theirs), tree(&ours));
    assert!(ours.join("hooked/extra.txt").is_file(), "no post hook ran");
}

/// A template without hooks needs no Python: `mlops init` runs with an empty PATH.
#[test]
fn no_python_is_needed_without_hooks() {
    let out = tempfile::tempdir().expect("tempdir");
    let done = mlops()
        .env("PATH", "/nonexistent")
        .arg("init")
        .arg(out.path())
        .arg("--template")
        .arg(template("full"))
        .arg("--no-input")
        .output()
        .expect("runs");
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(out.path().join("creme-brulee-models/logo.png").is_file());
}

/// A small template written by the test: `cookiecutter.json` and files under
/// `{{cookiecutter.name}}/`.
fn small(json: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cookiecutter.json"), json).expect("write");
    let base = dir.path().join("{{cookiecutter.name}}");
    for (name, body) in files {
        let path = base.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    dir
}

fn refused(out: &Output, code: i32, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "{needle} in {stderr}");
}

/// Paths that leave the project, a symlink out of the template, an existing project, a choice
/// not offered and an extension not implemented are refused (exit 2) with nothing written.
#[test]
fn unsafe_or_wrong_requests_are_refused_and_write_nothing() {
    let out = tempfile::tempdir().expect("tempdir");
    let empty = |dir: &Path| std::fs::read_dir(dir).expect("read").next().is_none();

    let t = small(
        r#"{"name": "p", "file": "../../escaped"}"#,
        &[("{{cookiecutter.file}}", "x")],
    );
    refused(
        &init(t.path(), out.path(), &[]),
        2,
        "leaves the project directory",
    );
    assert!(empty(out.path()));
    assert!(!out.path().join("../escaped").exists());

    let t = small(r#"{"name": "p"}"#, &[("ok.txt", "x")]);
    refused(
        &init(t.path(), out.path(), &["name=/tmp/abs"]),
        2,
        "leaves the project",
    );
    refused(
        &init(t.path(), out.path(), &["name=.."]),
        2,
        "leaves the project",
    );
    assert!(empty(out.path()));

    let outside = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(outside.path(), "secret").expect("write");
    std::os::unix::fs::symlink(outside.path(), t.path().join("{{cookiecutter.name}}/link"))
        .expect("symlink");
    refused(&init(t.path(), out.path(), &[]), 2, "outside the template");
    assert!(empty(out.path()));
    std::fs::remove_file(t.path().join("{{cookiecutter.name}}/link")).expect("rm");

    let t = small(
        r#"{"name": "p", "kind": ["a", "b"]}"#,
        &[("k.txt", "{{ cookiecutter.kind }}")],
    );
    refused(
        &init(t.path(), out.path(), &["kind=c"]),
        2,
        "`kind` is one of",
    );
    assert!(empty(out.path()));

    let t = small(
        r#"{"name": "p", "_extensions": ["local_extensions.Shout"]}"#,
        &[("a.txt", "a")],
    );
    refused(
        &init(t.path(), out.path(), &[]),
        2,
        "local_extensions.Shout",
    );
    assert!(empty(out.path()));

    // An existing project is kept unless --overwrite, which replaces rendered files only.
    let t = small(
        r#"{"name": "p"}"#,
        &[("a.txt", "new {{ cookiecutter.name }}\n")],
    );
    std::fs::create_dir_all(out.path().join("p")).expect("mkdir");
    std::fs::write(out.path().join("p/a.txt"), "old\n").expect("write");
    std::fs::write(out.path().join("p/mine.txt"), "mine\n").expect("write");
    refused(&init(t.path(), out.path(), &[]), 2, "exists already");
    assert_eq!(
        std::fs::read_to_string(out.path().join("p/a.txt")).expect("read"),
        "old\n"
    );
    assert!(
        init(t.path(), out.path(), &["--overwrite"])
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("p/a.txt")).expect("read"),
        "new p\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("p/mine.txt")).expect("read"),
        "mine\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .expect("read")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mlops-init-"))
        .collect();
    assert!(leftovers.is_empty(), "no staging directory is left behind");
}

/// `{% now %}` honours SOURCE_DATE_EPOCH, with offsets; `uuid4()` and `random_ascii_string()`
/// give fresh values of the right shape.
#[test]
fn now_uuid_and_random_strings() {
    let t = small(
        r#"{"name": "p"}"#,
        &[(
            "t.txt",
            "{% now 'utc', '%Y-%m-%d %H:%M' %}|{% now 'utc' + 'days=1, hours=2', '%d %H' %}|{% now 'utc' - 'weeks=1' %}|{{ uuid4() }}|{{ random_ascii_string(12) }}\n",
        )],
    );
    let out = tempfile::tempdir().expect("tempdir");
    let done = mlops()
        .env("SOURCE_DATE_EPOCH", "1700000000") // 2023-11-14 22:13:20 UTC
        .arg("init")
        .arg(out.path())
        .arg("--template")
        .arg(t.path())
        .arg("--no-input")
        .output()
        .expect("runs");
    assert!(done.status.success(), "{}", text(&done.stderr));
    let got = std::fs::read_to_string(out.path().join("p/t.txt")).expect("read");
    let parts: Vec<&str> = got.trim_end().split('|').collect();
    assert_eq!(
        parts[..3],
        ["2023-11-14 22:13", "16 00", "2023-11-07"],
        "{got}"
    );
    let uuid = parts[3];
    assert!(
        uuid.len() == 36 && uuid.as_bytes()[14] == b'4' && uuid.matches('-').count() == 4,
        "{uuid}"
    );
    assert!(
        parts[4].len() == 12 && parts[4].chars().all(|c| c.is_ascii_alphabetic()),
        "{}",
        parts[4]
    );
}

/// The built-in template (no `--template`): a project whose manifest validates, whose workflows
/// are rendered and current, and which trains and passes its threshold out of the box; the
/// template itself renders as cookiecutter renders it.
#[test]
fn the_built_in_template_validates_renders_and_trains() {
    let out = tempfile::tempdir().expect("tempdir");
    let project = built_in(
        out.path(),
        &[
            "project_name=Fraud Detector",
            "repository=acme/fraud-detector",
        ],
        "fraud-detector",
        &[
            "mlops.yaml",
            "README.md",
            ".gitignore",
            "data/train.csv",
            ".github/workflows/mlops-ci.yml",
            "container/Dockerfile",
        ],
    );
    assert!(on_manifest(&project, &["validate"]).contains("project `fraud-detector`"));
    assert!(on_manifest(&project, &["render", "--check"]).contains("up to date"));
    let trained = on_manifest(&project, &["train", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&trained).expect("json");
    assert_eq!(doc["status"], "approved", "{trained}");
    // The registry is a directory: no release loop, and the README says why and what to change.
    assert!(!project.join(".github/workflows/mlops-train.yml").exists());
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README");
    assert!(
        readme.contains("only the CI workflow is rendered")
            && readme.contains("s3://BUCKET/PREFIX"),
        "{readme}"
    );

    parity(
        &root().join("templates/project"),
        &["project_name=Fraud Detector"],
        &[],
    );
}

/// The built-in template with a registry in S3: the whole release loop is rendered and current,
/// and the README names the variables its roles come from.
#[test]
fn the_built_in_template_with_an_s3_registry_renders_the_release_loop() {
    let out = tempfile::tempdir().expect("tempdir");
    let registry = "registry=s3://acme-ml/fraud/registry";
    let project = built_in(
        out.path(),
        &["project_name=Fraud Detector", registry],
        "fraud-detector",
        &[
            ".github/workflows/mlops-ci.yml",
            ".github/workflows/mlops-train.yml",
            ".github/workflows/mlops-release.yml",
            ".github/workflows/mlops-gate.yml",
        ],
    );
    assert!(on_manifest(&project, &["render", "--check"]).contains("up to date"));
    let manifest = std::fs::read_to_string(project.join("mlops.yaml")).expect("manifest");
    assert!(
        manifest.contains("path: s3://acme-ml/fraud/registry"),
        "{manifest}"
    );
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README");
    assert!(readme.contains("`MLOPS_AWS_ROLE_ARN`"), "{readme}");
    parity(&root().join("templates/project"), &[registry], &[]);
}

/// The built-in template's "bring your own training script" variant (`training=script`): a
/// scikit-learn `train.py` and its `requirements.txt` beside a manifest with
/// `training.backend: command` and `model.family: onnx`, which validates, renders, and trains:
/// the script's model.onnx is measured and registered, approved by the template's threshold. The
/// default variant has no script. Both render as cookiecutter renders them.
#[test]
fn the_built_in_template_brings_its_own_training_script() {
    let Some(python) = crate::tools::ml_python() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let project = built_in(
        out.path(),
        &["project_name=Fraud Detector", "training=script"],
        "fraud-detector",
        &[
            "mlops.yaml",
            "train.py",
            "requirements.txt",
            "data/train.csv",
        ],
    );
    let manifest = std::fs::read_to_string(project.join("mlops.yaml")).expect("manifest");
    assert!(
        manifest.contains("family: onnx")
            && manifest.contains("backend: command")
            && manifest.contains("name: fraud-detector-model"),
        "{manifest}"
    );
    assert!(on_manifest(&project, &["validate"]).contains("project `fraud-detector`"));
    assert!(on_manifest(&project, &["render", "--check"]).contains("up to date"));
    // The script runs with the Python that has scikit-learn and skl2onnx first on PATH.
    let bin = python.parent().expect("the venv's bin");
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let mut c = mlops();
    c.args(["train", "--format", "json", "--manifest"])
        .arg(project.join("mlops.yaml"))
        .env("PATH", path)
        .env_remove("GITHUB_ACTIONS");
    let trained = succeeds(c);
    let doc: serde_json::Value = serde_json::from_str(&trained).expect("json");
    assert_eq!(doc["status"], "approved", "{trained}");
    let version = project.join(".mlops/registry/fraud-detector-model/1");
    assert!(version.join("model.onnx").is_file());
    assert!(!version.join("model.safetensors").exists());

    // With a registry every job reaches, the train workflow first installs requirements.txt
    // into a virtual environment on PATH: the rendered step passes actionlint and zizmor, and
    // its script runs (here on a requirements file naming nothing, which needs no network).
    let released = tempfile::tempdir().expect("tempdir");
    let project = built_in(
        released.path(),
        &[
            "project_name=Fraud Detector",
            "training=script",
            "registry=s3://acme-ml/fraud/registry",
        ],
        "fraud-detector",
        &[".github/workflows/mlops-train.yml"],
    );
    let workflow = std::fs::read_to_string(project.join(".github/workflows/mlops-train.yml"))
        .expect("train workflow");
    let doc = mlops_manifest::yaml::parse(&workflow, mlops_manifest::yaml::Limits::default())
        .expect("YAML")
        .to_json();
    let steps = doc["jobs"]["train"]["steps"].as_array().expect("steps");
    let install = steps
        .iter()
        .position(|s| s["name"] == "Install the training command's requirements")
        .expect("the install step");
    let train = steps
        .iter()
        .position(|s| s["id"] == "train")
        .expect("the train step");
    assert!(install < train, "{workflow}");
    assert_eq!(steps[install]["env"]["REQUIREMENTS"], "requirements.txt");
    assert!(
        doc["on"]["push"]["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "**")),
        "the script's changes retrain: {workflow}"
    );
    git(&project, &["init", "-q"]);
    for (tool, args) in [
        ("actionlint", vec!["-oneline"]),
        ("zizmor", vec!["--offline"]),
    ] {
        let Some(bin) = crate::tools::tool(tool) else {
            continue;
        };
        let out = std::process::Command::new(bin)
            .args(&args)
            .arg(".github/workflows/mlops-train.yml")
            .current_dir(&project)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{tool}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let nothing = scratch.path().join("requirements.txt");
    std::fs::write(&nothing, "# nothing to install\n").expect("write");
    let github_path = scratch.path().join("github_path");
    let out = std::process::Command::new("bash")
        .args(["-e", "-c"])
        .arg(steps[install]["run"].as_str().expect("a script"))
        .env("RUNNER_TEMP", scratch.path())
        .env("GITHUB_PATH", &github_path)
        .env("REQUIREMENTS", &nothing)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let added = std::fs::read_to_string(&github_path).expect("GITHUB_PATH");
    let bin = scratch.path().join("mlops-training-venv/bin");
    assert_eq!(added.trim(), bin.to_string_lossy());
    assert!(bin.join("python").exists());

    let plain = tempfile::tempdir().expect("tempdir");
    let default = built_in(
        plain.path(),
        &["project_name=Fraud Detector"],
        "fraud-detector",
        &[],
    );
    for f in ["train.py", "requirements.txt"] {
        assert!(!default.join(f).exists(), "{f} in the default variant");
    }
    parity(&root().join("templates/project"), &["training=script"], &[]);
}

/// `mlops init` of the built-in template into `out` with `answers`: the project `slug`, checked
/// to hold `files`.
fn built_in(out: &Path, answers: &[&str], slug: &str, files: &[&str]) -> PathBuf {
    let mut c = mlops();
    c.arg("init").arg(out).arg("--no-input").args(answers);
    succeeds(c);
    let project = out.join(slug);
    for f in files {
        assert!(project.join(f).is_file(), "{f}");
    }
    project
}

/// `mlops ARGS --manifest PROJECT/mlops.yaml`, which must succeed: its stdout.
fn on_manifest(project: &Path, args: &[&str]) -> String {
    let mut c = mlops();
    c.args(args)
        .arg("--manifest")
        .arg(project.join("mlops.yaml"))
        .env_remove("GITHUB_ACTIONS");
    succeeds(c)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// A template in a git repository is recorded in the project (`.mlops-template.json`: address,
/// commit, answers); `--update` merges the template's next commit into the project: a clean
/// merge beside the user's own edit, an added and a deleted file, and conflict markers (no
/// `.rej` files) where both changed the same line; a second update is a no-op.
#[test]
fn update_merges_the_template_change_into_the_project() {
    let repo = tempfile::tempdir().expect("tempdir");
    let t = repo.path();
    let write = |path: &str, body: &str| {
        let p = t.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    };
    write("cookiecutter.json", r#"{"name": "p", "owner": "ml"}"#);
    write("{{cookiecutter.name}}/config.txt", "a\nb\nc\n");
    write("{{cookiecutter.name}}/old.txt", "old\n");
    write(
        "{{cookiecutter.name}}/clash.txt",
        "owner: {{ cookiecutter.owner }}\n",
    );
    git(t, &["init", "-q", "-b", "main"]);
    git(t, &["add", "-A"]);
    git(t, &["commit", "-qm", "v1"]);
    let v1 = git(t, &["rev-parse", "HEAD"]);

    let out = tempfile::tempdir().expect("tempdir");
    let made = init(t, out.path(), &["name=proj"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let project = out.path().join("proj");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".mlops-template.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(record["commit"], v1.as_str());
    assert_eq!(record["answers"]["name"], "proj");

    // The user's edits, then the template's next version.
    std::fs::write(project.join("config.txt"), "A (mine)\nb\nc\n").expect("write");
    std::fs::write(project.join("clash.txt"), "owner: data-team\n").expect("write");
    write("{{cookiecutter.name}}/config.txt", "a\nb\nc (v2)\n");
    write(
        "{{cookiecutter.name}}/new.txt",
        "{{ cookiecutter.name }} is new\n",
    );
    write(
        "{{cookiecutter.name}}/clash.txt",
        "owner: {{ cookiecutter.owner }}-platform\n",
    );
    std::fs::remove_file(t.join("{{cookiecutter.name}}/old.txt")).expect("rm");
    git(t, &["add", "-A"]);
    git(t, &["commit", "-qm", "v2"]);
    let v2 = git(t, &["rev-parse", "HEAD"]);

    let update = || {
        mlops()
            .arg("init")
            .arg(&project)
            .arg("--update")
            .output()
            .expect("runs")
    };
    let first = update();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let read = |p: &str| std::fs::read_to_string(project.join(p)).expect(p);
    assert_eq!(read("config.txt"), "A (mine)\nb\nc (v2)\n");
    assert_eq!(read("new.txt"), "proj is new\n");
    assert!(!project.join("old.txt").exists());
    let clash = read("clash.txt");
    assert!(
        clash.contains("<<<<<<< project\nowner: data-team\n")
            && clash.contains("owner: ml-platform\n>>>>>>> template"),
        "{clash}"
    );
    let stdout = text(&first.stdout);
    assert!(stdout.contains("CONFLICT: clash.txt"), "{stdout}");
    let rejects = tree(&project)
        .keys()
        .filter(|k| k.ends_with(".rej") || k.ends_with(".orig"))
        .count();
    assert_eq!(rejects, 0);
    let record: serde_json::Value =
        serde_json::from_str(&read(".mlops-template.json")).expect("json");
    assert_eq!(record["commit"], v2.as_str());

    let before = tree(&project);
    let second = update();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("up to date"));
    assert_eq!(tree(&project), before, "a second update changes nothing");
}

/// Nothing a template reads leaves it, even with `--no-hooks`: an include through a symlink (to
/// the process's environment, where a runner's tokens are), a project directory that is a
/// symlink, a symlink two levels down a `_copy_without_render` directory, a symlink loop, and an
/// include that climbs with `..`. Each is refused (exit 2) with nothing written.
#[test]
fn a_template_reads_nothing_outside_itself() {
    let out = tempfile::tempdir().expect("tempdir");
    let empty = |dir: &Path| std::fs::read_dir(dir).expect("read").next().is_none();
    let secret = tempfile::tempdir().expect("tempdir");
    std::fs::write(secret.path().join("token.txt"), "ghs_secret").expect("write");
    let link = |target: &Path, at: &Path| {
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, at).expect("symlink");
    };

    let t = small(r#"{"name": "p"}"#, &[("a.txt", "{% include 'env.txt' %}")]);
    link(
        Path::new("/proc/self/environ"),
        &t.path().join("templates/env.txt"),
    );
    let done = init(t.path(), out.path(), &["--no-hooks"]);
    refused(&done, 2, "outside the template");
    assert!(
        !text(&done.stderr).contains("PATH="),
        "{}",
        text(&done.stderr)
    );
    assert!(empty(out.path()));

    let t = tempfile::tempdir().expect("tempdir");
    std::fs::write(t.path().join("cookiecutter.json"), r#"{"name": "p"}"#).expect("write");
    link(secret.path(), &t.path().join("{{cookiecutter.name}}"));
    refused(
        &init(t.path(), out.path(), &["--no-hooks"]),
        2,
        "outside the template",
    );
    assert!(empty(out.path()));

    let t = small(
        r#"{"name": "p", "_copy_without_render": ["assets"]}"#,
        &[("assets/deep/ok.bin", "ok")],
    );
    link(
        &secret.path().join("token.txt"),
        &t.path()
            .join("{{cookiecutter.name}}/assets/deep/er/token.txt"),
    );
    refused(
        &init(t.path(), out.path(), &["--no-hooks"]),
        2,
        "outside the template",
    );
    assert!(empty(out.path()));

    let t = small(r#"{"name": "p"}"#, &[("a.txt", "a")]);
    link(
        Path::new(".."),
        &t.path().join("{{cookiecutter.name}}/loop"),
    );
    refused(
        &init(t.path(), out.path(), &["--no-hooks"]),
        2,
        "symlink to the directory",
    );
    assert!(empty(out.path()));

    let t = small(
        r#"{"name": "p"}"#,
        &[("a.txt", "{% include '../../token.txt' %}")],
    );
    std::fs::write(t.path().join("token.txt"), "ghs_secret").expect("write");
    let done = init(t.path(), out.path(), &["--no-hooks"]);
    assert_eq!(done.status.code(), Some(2), "{}", text(&done.stderr));
    assert!(!text(&done.stderr).contains("ghs_secret"));
    assert!(empty(out.path()));
}

/// git gets the template's address and reference as data, never as options, and never through
/// a transport that runs a command; `--update` refuses a record whose address changed kind.
#[test]
fn git_addresses_are_data_and_an_edited_record_is_refused() {
    let out = tempfile::tempdir().expect("tempdir");
    let empty = |dir: &Path| std::fs::read_dir(dir).expect("read").next().is_none();
    let marker = out.path().join("pwned");
    let ext = format!("git+ext::sh -c touch% {}", marker.display());
    let done = mlops()
        .arg("init")
        .arg(out.path())
        .args(["--template", &ext, "--no-input"])
        .output()
        .expect("runs");
    refused(&done, 2, "`ext::` runs a command");
    assert!(!marker.exists());
    assert!(empty(out.path()));

    let repo = tempfile::tempdir().expect("tempdir");
    let t = repo.path();
    std::fs::write(t.join("cookiecutter.json"), r#"{"name": "p"}"#).expect("write");
    std::fs::create_dir_all(t.join("{{cookiecutter.name}}")).expect("mkdir");
    std::fs::write(t.join("{{cookiecutter.name}}/a.txt"), "a\n").expect("write");
    git(t, &["init", "-q", "-b", "main"]);
    git(t, &["add", "-A"]);
    git(t, &["commit", "-qm", "v1"]);
    // A reference that looks like an option is a reference that does not exist.
    let done = init(t, out.path(), &["--checkout=--orphan=x"]);
    refused(&done, 2, "--orphan=x");
    assert!(empty(out.path()));

    let made = init(t, out.path(), &[]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let record_path = out.path().join("p/.mlops-template.json");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("record"))
            .expect("json");
    assert_eq!(record["source"], "local");
    // The record edited to fetch from elsewhere: refused before anything is fetched.
    let mut edited = record.clone();
    edited["template"] = "https://example.invalid/other.git".into();
    std::fs::write(&record_path, edited.to_string()).expect("write");
    let done = mlops()
        .arg("init")
        .arg(out.path().join("p"))
        .arg("--update")
        .output()
        .expect("runs");
    refused(&done, 2, "is now a remote repository");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("record"))
            .expect("json");
    assert_eq!(kept, edited, "the refusal changes nothing");
}

/// `{% include %}` finds files in the project template and in the template's `templates/`, as
/// cookiecutter's loader does.
#[test]
fn includes_match_cookiecutter() {
    let t = small(
        r#"{"name": "inc", "who": "world"}"#,
        &[
            (
                "a.txt",
                "{% include 'partials/hello.txt' %}|{% include 'shared.txt' %}\n",
            ),
            ("partials/hello.txt", "hello {{ cookiecutter.who }}"),
        ],
    );
    std::fs::create_dir_all(t.path().join("templates")).expect("mkdir");
    std::fs::write(
        t.path().join("templates/shared.txt"),
        "shared {{ cookiecutter.name }}",
    )
    .expect("write");
    parity(t.path(), &[], &[]);
}

/// SIGINT in the middle of a run (a slow hook) leaves neither the project nor the staging
/// directory, stops the hook, and exits 130.
#[test]
fn an_interrupted_run_leaves_nothing() {
    let t = small(r#"{"name": "slow"}"#, &[("a.txt", "a\n")]);
    std::fs::create_dir_all(t.path().join("hooks")).expect("mkdir");
    let hook = t.path().join("hooks/post_gen_project.sh");
    // `exec`: the hook process is the sleep itself, which mlops stops.
    std::fs::write(&hook, "#!/bin/sh\nexec sleep 30\n").expect("write");
    let out = tempfile::tempdir().expect("tempdir");
    let child = mlops()
        .arg("init")
        .arg(out.path())
        .arg("--template")
        .arg(t.path())
        .arg("--no-input")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Wait for the staging directory, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(out.path())
        .expect("read")
        .next()
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no staging directory");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = std::time::Instant::now();
    let done = child.wait_with_output().expect("waits");
    assert_eq!(done.status.code(), Some(130), "{}", text(&done.stderr));
    // The output closes only when the hook (which holds it too) has been stopped.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the hook ran on"
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .expect("read")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// On a terminal (a pseudo-terminal from util-linux `script`), each variable is asked for with its
/// default, in order, later defaults rendered from earlier answers; choices are a numbered list.
#[test]
fn a_terminal_is_asked_for_each_variable() {
    let Some(script) = tools::tool("script") else {
        return;
    };
    let t = small(
        r#"{"name": "p", "kind": ["a", "b", "c"], "gpu": false, "slug": "{{ cookiecutter.name|slugify }}"}"#,
        &[(
            "x.txt",
            "{{ cookiecutter.kind }} {{ cookiecutter.gpu }} {{ cookiecutter.slug }}\n",
        )],
    );
    let out = tempfile::tempdir().expect("tempdir");
    let command = format!(
        "'{}' init '{}' --template '{}'",
        env!("CARGO_BIN_EXE_mlops"),
        out.path().display(),
        t.path().display()
    );
    let mut child = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"My Proj\n3\nyes\n\n")
        .expect("answers");
    let done = child.wait_with_output().expect("waits");
    let shown = text(&done.stdout);
    assert!(done.status.success(), "{shown}{}", text(&done.stderr));
    for prompt in [
        "name [p]:",
        "  3 - c",
        "gpu (yes/no) [no]:",
        "slug [my-proj]:",
    ] {
        assert!(shown.contains(prompt), "{prompt} in {shown}");
    }
    let x = std::fs::read_to_string(out.path().join("My Proj/x.txt")).expect("read");
    assert_eq!(x, "c True my-proj\n");
}

/// The built-in template with an AWS region: the manifest gains `infrastructure`, and the new
/// project's Terraform is rendered and current.
#[test]
fn the_built_in_template_with_aws_renders_terraform() {
    let out = tempfile::tempdir().expect("tempdir");
    let project = built_in(
        out.path(),
        &["aws_region=eu-west-1"],
        "churn-model",
        &[
            "terraform/github_oidc.tf",
            "terraform/bootstrap/main.tf",
            "terraform/storage.tf",
        ],
    );
    on_manifest(&project, &["render", "--check"]);
    let manifest = std::fs::read_to_string(project.join("mlops.yaml")).expect("read");
    assert!(manifest.contains("region: eu-west-1"), "{manifest}");
    parity(
        &root().join("templates/project"),
        &["aws_region=us-west-2"],
        &[],
    );
}
