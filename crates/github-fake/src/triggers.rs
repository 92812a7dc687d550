//! Which workflows a push starts, by GitHub's rules: the `on.push` filters (`branches`,
//! `branches-ignore`, `tags`, `paths`, `paths-ignore`) with GitHub's filter pattern syntax.
//!
//! act runs every workflow it is pointed at whatever the filters say (it evaluates none of them),
//! so a test that needs "this push starts that workflow and not the other" asks here first and
//! runs under act only what GitHub would start.
//!
//! The syntax, as GitHub's workflow syntax reference describes it: `*` matches any characters
//! but `/`; `**` any characters; `**/` any number of whole directories, none included; `?` makes
//! the character or class before it optional and `+` repeats it; `[...]` is a class of
//! characters or `a-z` ranges; `\` takes the next character as it is. A pattern that starts with
//! `!` excludes what it matches, and of the patterns that match a path the last one decides.

use serde_json::Value;

/// Whether a push to `branch` changing `changed` (paths from the repository root) starts the
/// workflow whose `on:` is `on` (the workflow file parsed to JSON).
pub fn starts_on_push(on: &Value, branch: &str, changed: &[String]) -> bool {
    let filters = match on {
        Value::String(event) => return event == "push",
        Value::Array(events) => return events.iter().any(|e| e == "push"),
        Value::Object(events) => match events.get("push") {
            None => return false,
            Some(Value::Null) => return true,
            Some(f) => f,
        },
        _ => return false,
    };
    let list = |key: &str| -> Option<Vec<&str>> {
        filters
            .get(key)
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
    };
    let branch_ok = match (list("branches"), list("branches-ignore")) {
        (Some(patterns), _) => decides(&patterns, branch),
        (None, Some(ignored)) => !decides(&ignored, branch),
        // Only tags filtered: a branch push does not start it.
        (None, None) => list("tags").is_none() && list("tags-ignore").is_none(),
    };
    let paths_ok = match (list("paths"), list("paths-ignore")) {
        (Some(patterns), _) => changed.iter().any(|p| decides(&patterns, p)),
        (None, Some(ignored)) => changed.iter().any(|p| !decides(&ignored, p)),
        (None, None) => true,
    };
    branch_ok && paths_ok
}

/// Whether `patterns` include `name`: the last pattern matching it decides (`!` excludes).
pub fn decides(patterns: &[&str], name: &str) -> bool {
    let mut included = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(negated) if matches(negated, name) => included = false,
            Some(_) => {}
            None if matches(p, name) => included = true,
            None => {}
        }
    }
    included
}

/// Whether the filter pattern `pattern` matches all of `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let tokens = compile(pattern);
    let name: Vec<char> = name.chars().collect();
    matches_from(&tokens, &name)
}

#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    /// Inclusive ranges.
    Class(Vec<(char, char)>),
    /// `*`: any characters but `/`.
    Star,
    /// `**`: any characters.
    Any,
    /// `**/`: nothing, or any characters ending in `/`.
    Dirs,
}

#[derive(Debug, Clone)]
struct Token {
    atom: Atom,
    /// `?` after a character or class.
    optional: bool,
    /// `+` after a character or class.
    repeated: bool,
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let push = |out: &mut Vec<Token>, atom| {
        out.push(Token {
            atom,
            optional: false,
            repeated: false,
        })
    };
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                    push(&mut out, Atom::Dirs);
                } else {
                    push(&mut out, Atom::Any);
                }
            }
            '*' => push(&mut out, Atom::Star),
            '?' | '+'
                if out
                    .last()
                    .is_some_and(|t| matches!(t.atom, Atom::Char(_) | Atom::Class(_))) =>
            {
                if let Some(last) = out.last_mut() {
                    if c == '?' {
                        last.optional = true;
                    } else {
                        last.repeated = true;
                    }
                }
            }
            '[' => {
                let mut ranges = Vec::new();
                while let Some(&d) = chars.get(i) {
                    i += 1;
                    if d == ']' {
                        break;
                    }
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&e| e != ']') {
                        ranges.push((d, chars[i + 1]));
                        i += 2;
                    } else {
                        ranges.push((d, d));
                    }
                }
                push(&mut out, Atom::Class(ranges));
            }
            '\\' => {
                let escaped = chars.get(i).copied().unwrap_or('\\');
                i += 1;
                push(&mut out, Atom::Char(escaped));
            }
            c => push(&mut out, Atom::Char(c)),
        }
    }
    out
}

fn one(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(x) => *x == c,
        Atom::Class(ranges) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)),
        Atom::Star => c != '/',
        Atom::Any | Atom::Dirs => true,
    }
}

fn matches_from(tokens: &[Token], name: &[char]) -> bool {
    let Some((t, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match t.atom {
        Atom::Star | Atom::Any => {
            let mut k = 0;
            loop {
                if matches_from(rest, &name[k..]) {
                    return true;
                }
                match name.get(k) {
                    Some(&c) if one(&t.atom, c) => k += 1,
                    _ => return false,
                }
            }
        }
        Atom::Dirs => (0..=name.len())
            .filter(|&k| k == 0 || name[k - 1] == '/')
            .any(|k| matches_from(rest, &name[k..])),
        _ => {
            let min = usize::from(!t.optional);
            let mut k = 0;
            // Greedy: as many as the token takes, then fewer.
            let max = if t.repeated { name.len() } else { 1 };
            while k < max && name.get(k).is_some_and(|&c| one(&t.atom, c)) {
                k += 1;
            }
            (min..=k).rev().any(|n| matches_from(rest, &name[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of GitHub's filter pattern cheat sheet.
    #[test]
    fn the_cheat_sheets_examples() {
        let yes = |p: &str, n: &str| assert!(matches(p, n), "{p} should match {n}");
        let no = |p: &str, n: &str| assert!(!matches(p, n), "{p} should not match {n}");
        yes("feature/*", "feature/my-branch");
        no("feature/*", "feature/your/branch");
        yes("feature/**", "feature/your/branch");
        yes("main", "main");
        no("main", "mainline");
        yes("v2*", "v2.0");
        yes("v[12].[0-9]+.[0-9]+", "v1.10.1");
        yes("v[12].[0-9]+.[0-9]+", "v2.0.0");
        no("v[12].[0-9]+.[0-9]+", "v3.0.0");
        yes("*", "README.md");
        no("*", "server/index.js");
        yes("*.jsx?", "page.js");
        yes("*.jsx?", "page.jsx");
        no("*.jsx?", "page.jsxx");
        yes("**", "all/the/files.md");
        no("*.js", "src/app.js");
        yes("**.js", "src/js/app.js");
        yes("docs/*", "docs/README.md");
        no("docs/*", "docs/mona/octocat.txt");
        yes("docs/**", "docs/mona/octocat.txt");
        yes("docs/**/*.md", "docs/a/markdown/file.md");
        yes("docs/**/*.md", "docs/file.md");
        yes("**/docs/**", "docs/hello.md");
        yes("**/docs/**", "dir/docs/my-file.txt");
        yes("**/README.md", "README.md");
        yes("**/README.md", "js/README.md");
        yes("**/*src/**", "a/src/app.js");
        yes("**/*-post.md", "my-post.md");
        yes("**/*-post.md", "path/their-post.md");
        yes("**/migrate-*.sql", "migrate-10909.sql");
        yes("**/migrate-*.sql", "db/migrate-v1.0.sql");
        yes("*.md", "README.md");
        no("*.md", "docs/README.md");
        yes("data\\[1\\].csv", "data[1].csv");
        no("data[1].csv", "data[1].csv");
    }

    #[test]
    fn the_last_matching_pattern_decides() {
        let patterns = ["sub-project/**", "!sub-project/docs/**"];
        assert!(decides(&patterns, "sub-project/src/a.rs"));
        assert!(!decides(&patterns, "sub-project/docs/a.md"));
        assert!(!decides(&patterns, "other/a.rs"));
        assert!(decides(&["**", "!*.md", "README.md"], "README.md"));
    }

    #[test]
    fn push_filters() {
        let changed = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let on = json!({"push": {"branches": ["main"], "paths": ["models/a/**"]}, "workflow_dispatch": null});
        assert!(starts_on_push(
            &on,
            "main",
            &changed(&["models/a/data.csv"])
        ));
        assert!(!starts_on_push(
            &on,
            "main",
            &changed(&["models/b/data.csv"])
        ));
        assert!(!starts_on_push(
            &on,
            "dev",
            &changed(&["models/a/data.csv"])
        ));
        let ignore = json!({"push": {"paths-ignore": ["docs/**"]}});
        assert!(!starts_on_push(&ignore, "x", &changed(&["docs/a.md"])));
        assert!(starts_on_push(
            &ignore,
            "x",
            &changed(&["docs/a.md", "src/a.rs"])
        ));
        assert!(starts_on_push(&json!({"push": null}), "x", &[]));
        assert!(starts_on_push(&json!("push"), "x", &[]));
        assert!(!starts_on_push(&json!(["pull_request"]), "x", &[]));
        assert!(!starts_on_push(
            &json!({"push": {"tags": ["v*"]}}),
            "main",
            &[]
        ));
        assert!(!starts_on_push(
            &json!({"workflow_call": null}),
            "main",
            &[]
        ));
    }
}
