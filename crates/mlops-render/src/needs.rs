//! What the rendered workflows need from the repository's settings: the Actions variables and
//! secrets each job reads, with the deployment environment the job runs in (an environment's
//! variable wins over the repository's of the same name). `mlops doctor` checks them.

use std::collections::BTreeSet;

/// A variable or secret a job reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// `vars` or `secrets`.
    pub kind: &'static str,
    pub name: String,
    /// The job's `environment:`, if any.
    pub environment: Option<String>,
}

/// The names after `prefix` (`vars.` or `secrets.`) in `line`.
fn names<'a>(line: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    line.match_indices(prefix).filter_map(move |(i, _)| {
        let (head, tail) = line.split_at(i);
        let before = head.chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return None;
        }
        let rest = tail.strip_prefix(prefix)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| rest.split_at(end).0)
    })
}

/// The variables and secrets a rendered workflow's jobs read. The workflow is one `mlops render`
/// wrote: block-style YAML with jobs indented by two spaces and their keys by four.
pub fn scan(workflow: &str) -> BTreeSet<Need> {
    let mut out = BTreeSet::new();
    let mut in_jobs = false;
    // The current job's lines and environment.
    let mut job: Vec<&str> = Vec::new();
    let mut environment: Option<String> = None;
    let mut flush = |job: &mut Vec<&str>, environment: &Option<String>| {
        for line in job.drain(..) {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for (kind, prefix) in [("vars", "vars."), ("secrets", "secrets.")] {
                for name in names(line, prefix) {
                    out.insert(Need {
                        kind,
                        name: name.to_owned(),
                        environment: environment.clone(),
                    });
                }
            }
        }
    };
    for line in workflow.lines() {
        let indent = line.len() - line.trim_start().len();
        if indent == 0 && !line.trim().is_empty() {
            flush(&mut job, &environment);
            environment = None;
            in_jobs = line.trim_end() == "jobs:";
            continue;
        }
        if !in_jobs {
            continue;
        }
        if indent == 2 && line.trim_end().ends_with(':') {
            flush(&mut job, &environment);
            environment = None;
            continue;
        }
        if indent == 4
            && let Some(v) = line.trim().strip_prefix("environment:")
        {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            if !v.is_empty() {
                environment = Some(v.to_owned());
            }
        }
        job.push(line);
    }
    flush(&mut job, &environment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_reads_its_variables_in_its_environment() {
        let wf = "\
name: x
on:
  push:
env:
  A: ${{ vars.NOT_IN_A_JOB }}
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo
        env:
          R: ${{ vars.MLOPS_AWS_REGION }}
          # ${{ vars.IN_A_COMMENT }}
  deploy:
    environment: production
    steps:
      - with:
          role: ${{ vars.MLOPS_AWS_ROLE_ARN }}
          token: ${{ secrets.MLOPS_GATE_TOKEN || github.token }}
          other: ${{ github.event.inputs.vars.X }}
";
        let got: Vec<(String, String, Option<String>)> = scan(wf)
            .into_iter()
            .map(|n| (n.kind.to_owned(), n.name, n.environment))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "secrets".into(),
                    "MLOPS_GATE_TOKEN".into(),
                    Some("production".into())
                ),
                ("vars".into(), "MLOPS_AWS_REGION".into(), None),
                (
                    "vars".into(),
                    "MLOPS_AWS_ROLE_ARN".into(),
                    Some("production".into())
                ),
            ]
        );
    }
}
