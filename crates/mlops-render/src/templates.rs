//! The templates, embedded from `templates/` at build time and addressed by typed constants, and
//! the one minijinja environment that renders them.
//!
//! One syntax serves both target languages: `{{{ }}}` for values and `{{% %}}` for statements,
//! so that GitHub's `${{ }}` and Terraform's `${ }` / `%{ }` pass through untouched. Undefined
//! values are errors, not empty strings, and nothing is escaped implicitly: each substitution
//! names its quoting filter (`hcl`, `yaml`, `gha`), which a test enforces.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use mlops_manifest::Manifest;

/// One template and the file it renders.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Name in the environment: its path under `templates/`.
    pub source: &'static str,
    /// The rendered file's path from the repository root.
    pub output: &'static str,
    /// Rendered only when the manifest has an `infrastructure` section.
    pub terraform: bool,
    /// Part of the GitHub loop (train, release, gate): rendered only when every job can reach
    /// the registry (see [`crate::loop_withheld`]).
    pub release_loop: bool,
    /// The template text.
    pub text: &'static str,
}

impl Template {
    /// The rendered file's path for `m`: [`Template::output`], except in a monorepo
    /// (`project.monorepo`), where each model's files carry its name: workflows
    /// `mlops-train-PROJECT.yml`, `terraform/PROJECT/`, `container/PROJECT/Dockerfile`. The
    /// Dependabot configuration, which every model renders alike, keeps its one path.
    pub fn output_for(&self, m: &Manifest) -> String {
        let project = &m.project.name;
        if !m.project.monorepo {
            return self.output.to_owned();
        }
        if let Some(file) = self.output.strip_prefix(WORKFLOWS) {
            return format!("{WORKFLOWS}{}", mlops_manifest::workflow_file(m, file));
        }
        for dir in ["terraform/", "container/"] {
            if let Some(rest) = self.output.strip_prefix(dir) {
                return format!("{dir}{project}/{rest}");
            }
        }
        self.output.to_owned()
    }
}

/// Where GitHub reads workflows from.
const WORKFLOWS: &str = ".github/workflows/";

/// Every path a render of `m` may write in its repository, rendered now or not: what a render
/// of one model of a monorepo compares with the tree (the other models' files are not its own).
pub fn owned_paths(m: &Manifest) -> Vec<String> {
    ALL.iter().map(|t| t.output_for(m)).collect()
}

/// The model image's Dockerfile for `m` (`container/Dockerfile`, or in a monorepo
/// `container/PROJECT/Dockerfile`).
pub fn dockerfile(m: &Manifest) -> String {
    ALL.iter()
        .find(|t| t.source == DOCKERFILE)
        .map(|t| t.output_for(m))
        .unwrap_or_default()
}

/// The Dockerfile's template.
const DOCKERFILE: &str = "container/Dockerfile.j2";

/// The gate workflow's template: rendered into the model's repository, or with
/// `promotion.repository` elsewhere into that one ([`crate::render_promotion`]).
pub const GATE: &str = "workflows/mlops-gate.yml.j2";

macro_rules! templates {
    ($($source:literal => $output:literal, $terraform:literal, $release_loop:literal;)*) => {
        /// Every template, in output order.
        pub const ALL: &[Template] = &[$(Template {
            source: $source,
            output: $output,
            terraform: $terraform,
            release_loop: $release_loop,
            text: include_str!(concat!("../../../templates/", $source)),
        }),*];
    };
}

templates! {
    "workflows/mlops-ci.yml.j2" => ".github/workflows/mlops-ci.yml", false, false;
    "workflows/mlops-train.yml.j2" => ".github/workflows/mlops-train.yml", false, true;
    "workflows/mlops-release.yml.j2" => ".github/workflows/mlops-release.yml", false, true;
    "workflows/mlops-gate.yml.j2" => ".github/workflows/mlops-gate.yml", false, true;
    "workflows/mlops-monitor.yml.j2" => ".github/workflows/mlops-monitor.yml", false, true;
    "workflows/mlops-batch.yml.j2" => ".github/workflows/mlops-batch.yml", false, true;
    "container/Dockerfile.j2" => "container/Dockerfile", false, false;
    "github/dependabot.yml.j2" => ".github/dependabot.yml", false, false;
    "terraform/versions.tf.j2" => "terraform/versions.tf", true, false;
    "terraform/variables.tf.j2" => "terraform/variables.tf", true, false;
    "terraform/storage.tf.j2" => "terraform/storage.tf", true, false;
    "terraform/ecr.tf.j2" => "terraform/ecr.tf", true, false;
    "terraform/github_oidc.tf.j2" => "terraform/github_oidc.tf", true, false;
    "terraform/sagemaker.tf.j2" => "terraform/sagemaker.tf", true, false;
    "terraform/endpoints.tf.j2" => "terraform/endpoints.tf", true, false;
    "terraform/events.tf.j2" => "terraform/events.tf", true, false;
    "terraform/outputs.tf.j2" => "terraform/outputs.tf", true, false;
    "terraform/bootstrap/main.tf.j2" => "terraform/bootstrap/main.tf", true, false;
}

/// The engine setup `mlops render` and `mlops init` share: `syntax`, strict undefined (a
/// missing value is an error, never an empty string) and no implicit escaping.
pub fn strict_environment(syntax: SyntaxConfig) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// The environment: strict undefined, custom delimiters, no auto-escaping, quoting filters.
pub fn environment() -> Environment<'static> {
    let syntax = SyntaxConfig::builder()
        .block_delimiters("{{%", "%}}")
        .variable_delimiters("{{{", "}}}")
        .comment_delimiters("{{#", "#}}")
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        // The delimiters are constants: a failure here is caught by every test that renders.
        .unwrap_or_default();
    let mut env = strict_environment(syntax);
    env.add_filter("hcl", |v: minijinja::Value| crate::filters::hcl(&v));
    env.add_filter("yaml", |v: minijinja::Value| crate::filters::yaml(&v));
    env.add_filter("gha", |v: minijinja::Value| crate::filters::gha(&v));
    env.add_filter("ident", |v: minijinja::Value| crate::filters::ident(&v));
    env.add_filter("word", |v: minijinja::Value| crate::filters::word(&v));
    env.add_filter("path_pattern", |v: String| crate::filters::path_pattern(&v));
    env.add_filter("gha_string", |v: minijinja::Value| {
        crate::filters::gha_string(&v)
    });
    env.add_filter("image", |v: minijinja::Value| crate::filters::image(&v));
    env.add_filter("uses", |v: minijinja::Value, path: Option<String>| {
        crate::filters::uses(&v, path.as_deref())
    });
    for t in ALL {
        // Template syntax errors surface as render errors naming the template.
        let _ = env.add_template(t.source, t.text);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `{{{ ... }}}` substitution ends in a quoting filter: a manifest value can reach a
    /// rendered file only quoted for its language.
    #[test]
    fn every_substitution_is_quoted() {
        let mut checked = 0;
        for t in ALL {
            let allowed: &[&str] = if t.terraform {
                &["hcl", "ident"]
            } else if t.source.starts_with("container/") {
                &["image"]
            } else {
                &["yaml", "gha", "gha_string", "uses", "word"]
            };
            // The template's own macros give template text, not values.
            let macros: Vec<&str> = t
                .text
                .split("{{% macro ")
                .skip(1)
                .filter_map(|m| m.split('(').next())
                .collect();
            let mut rest = t.text;
            while let Some((_, from)) = rest.split_once("{{{") {
                let Some((expr, after)) = from.split_once("}}}") else {
                    panic!("{}: unclosed substitution", t.source);
                };
                let expr = expr.trim();
                if macros.iter().any(|m| expr.starts_with(&format!("{m}("))) {
                    rest = after;
                    continue;
                }
                let last = expr.rsplit('|').next().unwrap_or_default().trim();
                let last = last.split('(').next().unwrap_or_default();
                assert!(
                    expr.contains('|') && allowed.contains(&last),
                    "{}: `{{{{{{ {expr} }}}}}}` must end in one of the filters {allowed:?}",
                    t.source
                );
                checked += 1;
                rest = after;
            }
        }
        assert!(checked > 20, "only {checked} substitutions seen");
    }

    #[test]
    fn every_template_parses() {
        let env = environment();
        for t in ALL {
            env.get_template(t.source)
                .unwrap_or_else(|e| panic!("{}: {e:#}", t.source));
        }
    }
}
