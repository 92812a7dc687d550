//! The actions the rendered workflows call, each pinned to a full commit SHA with its version in
//! a comment, and the rule that lets a Dependabot or Renovate bump stand: a pin already in the
//! user's workflow is kept when its version comment is the same as or newer than ours.

use std::collections::BTreeMap;

use serde::Serialize;

/// One pinned action: `uses: {repo}@{sha} # {version}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    pub repo: String,
    pub sha: String,
    pub version: String,
}

impl Pin {
    fn new(repo: &str, sha: &str, version: &str) -> Pin {
        Pin {
            repo: repo.to_owned(),
            sha: sha.to_owned(),
            version: version.to_owned(),
        }
    }
}

/// `actions/checkout` v5.0.0.
pub const CHECKOUT: (&str, &str, &str) = (
    "actions/checkout",
    "08c6903cd8c0fde910a37f88322edcfb5dd907a8",
    "v5.0.0",
);

/// `aws-actions/configure-aws-credentials` v5.0.0.
pub const AWS_CREDENTIALS: (&str, &str, &str) = (
    "aws-actions/configure-aws-credentials",
    "a03048d87541d1d9fcf2ecf528a4a65ba9bd7838",
    "v5.0.0",
);

/// `actions/create-github-app-token` v3.1.1: a job's short-lived GitHub App installation token.
pub const APP_TOKEN: (&str, &str, &str) = (
    "actions/create-github-app-token",
    "1b10c78c7865c340bc4f6099eb2f838309f1e8c3",
    "v3.1.1",
);

/// The mlops actions this binary's workflows call when the manifest pins none (a manifest pins
/// its own with `workflows.actions`). Until a release exists, a commit of this repository that
/// holds every action the templates call, with every input they pass
/// (`tests/render.rs` resolves each rendered `uses:` at this commit in the repository's history);
/// the release process moves it to each release's tag commit. A commit cannot name its own SHA,
/// so the pin is always a commit before the one that sets it: a change to an action's interface
/// lands first, and the pin moves to it in a commit of its own. The rendered CI workflow's
/// `render --check` runs the binary built from the pinned commit, so a change to the templates
/// or the rendering moves the pin too (`tests/render.rs` fails until it does).
pub const MLOPS: (&str, &str, &str) = (
    "mlops-rs/mlops",
    "edd93122f9197f34cc3ac40a45ce735604802191",
    concat!("v", env!("CARGO_PKG_VERSION")),
);

/// The pins a render uses, by role.
#[derive(Debug, Clone, Serialize)]
pub struct Pins {
    pub checkout: Pin,
    pub aws_credentials: Pin,
    pub app_token: Pin,
    pub mlops: Pin,
}

impl Pins {
    /// Our defaults, with the manifest's pin of the mlops actions if it has one.
    pub fn defaults(mlops: Option<&mlops_manifest::model::ActionsPin>) -> Pins {
        let (r, s, v) = MLOPS;
        Pins {
            checkout: Pin::new(CHECKOUT.0, CHECKOUT.1, CHECKOUT.2),
            aws_credentials: Pin::new(AWS_CREDENTIALS.0, AWS_CREDENTIALS.1, AWS_CREDENTIALS.2),
            app_token: Pin::new(APP_TOKEN.0, APP_TOKEN.1, APP_TOKEN.2),
            mlops: mlops.map_or_else(
                || Pin::new(r, s, v),
                |p| Pin::new(&p.repository, &p.sha, &p.version),
            ),
        }
    }

    /// Keeps each pin found in `existing` (the user's copies of the rendered workflows) whose
    /// version is the same as or newer than ours: an automated SHA bump is not drift.
    pub fn keep_newer(&mut self, existing: &BTreeMap<String, Pin>) {
        for pin in [
            &mut self.checkout,
            &mut self.aws_credentials,
            &mut self.app_token,
        ] {
            if let Some(theirs) = existing.get(&pin.repo)
                && version_at_least(&theirs.version, &pin.version)
            {
                *pin = theirs.clone();
            }
        }
        // The mlops actions are called as `repo/actions/NAME@sha`: one pin for all of them.
        if let Some(theirs) = existing.get(&self.mlops.repo)
            && version_at_least(&theirs.version, &self.mlops.version)
        {
            self.mlops = theirs.clone();
        }
    }
}

/// Every `uses: OWNER/REPO[/path]@<40 hex> # VERSION` line of a workflow, by `OWNER/REPO`.
/// When one repository is pinned twice, the lowest version wins (the check then still sees the
/// other line as it is).
pub fn scan(workflow: &str) -> BTreeMap<String, Pin> {
    let mut found: BTreeMap<String, Pin> = BTreeMap::new();
    for line in workflow.lines() {
        let Some(pin) = parse_uses(line) else {
            continue;
        };
        match found.get(&pin.repo) {
            Some(have) if version_at_least(&pin.version, &have.version) => {}
            _ => {
                found.insert(pin.repo.clone(), pin);
            }
        }
    }
    found
}

fn parse_uses(line: &str) -> Option<Pin> {
    let rest = line.trim_start().trim_start_matches("- ").trim_start();
    let rest = rest.strip_prefix("uses:")?.trim_start();
    let (target, comment) = rest.split_once('#')?;
    let (path, sha) = target.trim_end().split_once('@')?;
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = path.split('/');
    let repo = format!("{}/{}", parts.next()?, parts.next()?);
    let version = comment.split_whitespace().next()?;
    Some(Pin::new(&repo, &sha.to_ascii_lowercase(), version))
}

/// `a >= b` for version comments like `v4`, `v4.2.1`, `4.2`: numeric components compared in
/// order, missing ones read as 0; a pre-release suffix sorts before its release.
pub fn version_at_least(a: &str, b: &str) -> bool {
    match (parse_version(a), parse_version(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

fn parse_version(v: &str) -> Option<([u64; 3], bool)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, pre) = match v.split_once(['-', '+']) {
        Some((core, _)) => (core, v.as_bytes().get(core.len()) == Some(&b'-')),
        None => (v, false),
    };
    let mut out = [0u64; 3];
    for (i, part) in core.split('.').enumerate() {
        *out.get_mut(i)? = part.parse().ok()?;
    }
    // A release sorts after its pre-releases.
    Some((out, !pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("v5.0.1", "v5.0.0"));
        assert!(version_at_least("v10.0.0", "v9.9.9"));
        assert!(version_at_least("v5", "v5.0.0"));
        assert!(!version_at_least("v4.2.2", "v5.0.0"));
        assert!(!version_at_least("v5.0.0-rc.1", "v5.0.0"));
        assert!(!version_at_least("main", "v5.0.0"));
    }

    #[test]
    fn uses_lines_are_scanned_with_their_version_comment() {
        let text = "    steps:\n      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n        uses: mlops-rs/mlops/actions/validate@1111111111111111111111111111111111111111  # v0.2.0\n      - uses: x/y@v1 # v1\n";
        let pins = scan(text);
        assert_eq!(pins.len(), 2);
        assert_eq!(pins["mlops-rs/mlops"].version, "v0.2.0");
        assert_eq!(pins["actions/checkout"].sha, CHECKOUT.1);
    }

    #[test]
    fn a_newer_pin_is_kept_and_an_older_one_is_not() {
        let mut pins = Pins::defaults(None);
        let mut existing = BTreeMap::new();
        existing.insert(
            "actions/checkout".to_owned(),
            Pin::new("actions/checkout", &"a".repeat(40), "v5.1.0"),
        );
        existing.insert(
            AWS_CREDENTIALS.0.to_owned(),
            Pin::new(AWS_CREDENTIALS.0, &"b".repeat(40), "v4.1.0"),
        );
        pins.keep_newer(&existing);
        assert_eq!(pins.checkout.sha, "a".repeat(40));
        assert_eq!(pins.aws_credentials.sha, AWS_CREDENTIALS.1);
    }
}
