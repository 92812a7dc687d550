//! CODEOWNERS: who owns a path. GitHub's rules: the last matching line wins; patterns follow
//! gitignore (a leading `/` anchors at the root, a trailing `/` matches a directory's contents,
//! `*` stays within a segment, `**` spans segments, a pattern without `/` matches at any
//! depth); owners are `@user`, `@org/team` or e-mail addresses (not resolvable here: ignored).

/// The files GitHub reads, in its order of precedence.
pub const LOCATIONS: &[&str] = &[".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// An owner of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(String),
    /// `org/team`.
    Team(String),
}

/// The owners of `path` according to `text`.
pub fn owners(text: &str, path: &str) -> Vec<Owner> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let Some(pattern) = words.next() else {
            continue;
        };
        if matches(pattern, path) {
            found = words
                .filter_map(|w| w.strip_prefix('@'))
                .map(|w| match w.split_once('/') {
                    Some(_) => Owner::Team(w.to_owned()),
                    None => Owner::User(w.to_owned()),
                })
                .collect();
        }
    }
    found
}

fn matches(pattern: &str, path: &str) -> bool {
    let anchored = pattern.starts_with('/') || pattern.trim_end_matches('/').contains('/');
    let dir = pattern.ends_with('/');
    let p = pattern.trim_start_matches('/').trim_end_matches('/');
    let segments: Vec<&str> = p.split('/').collect();
    let path_segments: Vec<&str> = path.split('/').collect();
    let starts: Vec<usize> = if anchored {
        vec![0]
    } else {
        (0..path_segments.len()).collect()
    };
    starts.into_iter().any(|s| {
        let rest = path_segments.get(s..).unwrap_or_default();
        glob_segments(&segments, rest, dir)
    })
}

/// Matches pattern segments against path segments. A match may end at a directory (the pattern
/// names a directory, so everything below it matches) unless `dir_only` demands more.
///
/// `reach[j]`: the pattern's segments so far match exactly the first `j` path segments. One pass
/// per pattern segment: the work is the product of the two lengths, whatever the pattern (a
/// recursive search is exponential in the number of `**`).
fn glob_segments(pattern: &[&str], path: &[&str], dir_only: bool) -> bool {
    let mut reach = vec![false; path.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for p in pattern {
        let mut next = vec![false; path.len() + 1];
        if *p == "**" {
            let mut any = false;
            for (n, r) in next.iter_mut().zip(&reach) {
                any |= *r;
                *n = any;
            }
        } else {
            for (j, seg) in path.iter().enumerate() {
                if reach.get(j).copied().unwrap_or(false)
                    && glob(p.as_bytes(), seg.as_bytes())
                    && let Some(n) = next.get_mut(j + 1)
                {
                    *n = true;
                }
            }
        }
        reach = next;
    }
    reach
        .iter()
        .enumerate()
        .any(|(k, r)| *r && (k < path.len() || !dir_only))
}

/// `*` and `?` within one segment, by the two-pointer method: on a mismatch, go back to the last
/// `*` and let it take one more byte. At most (pattern × text) steps (a recursive search is
/// exponential in the number of `*`).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where the text did.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match (p.get(pi), s.get(si)) {
            (Some(b'*'), _) => {
                star = Some((pi + 1, si));
                pi += 1;
            }
            (Some(b'?'), Some(_)) => {
                pi += 1;
                si += 1;
            }
            (Some(a), Some(b)) if a == b => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((resume, taken)) => {
                    pi = resume;
                    si = taken + 1;
                    star = Some((resume, taken + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(v: &[&str]) -> Vec<Owner> {
        v.iter().map(|u| Owner::User((*u).to_owned())).collect()
    }

    #[test]
    fn the_last_matching_line_wins() {
        let text = "* @everyone\n/deploy/ @ops @org/ml-leads\n*.md @docs\n";
        assert_eq!(
            owners(text, "deploy/production.yaml"),
            vec![
                Owner::User("ops".into()),
                Owner::Team("org/ml-leads".into())
            ]
        );
        assert_eq!(owners(text, "README.md"), users(&["docs"]));
        assert_eq!(owners(text, "src/lib.rs"), users(&["everyone"]));
    }

    /// Found by the `codeowners` fuzz target: a line of 60 `*` took exponential time.
    #[test]
    fn many_stars_and_globstars_match_in_polynomial_time() {
        let stars = "*".repeat(60);
        assert!(!glob(
            format!("{stars}p").as_bytes(),
            "x".repeat(60).as_bytes()
        ));
        assert!(glob(
            format!("{stars}p").as_bytes(),
            format!("{}p", "x".repeat(60)).as_bytes()
        ));
        let globstars = vec!["**"; 40].join("/") + "/z";
        let deep = vec!["a"; 40].join("/");
        assert!(!matches(&globstars, &deep));
        assert!(matches(&globstars, &(deep.clone() + "/z")));
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fuzz/regressions/codeowners/star-backtracking"
        ))
        .expect("the saved input");
        let text = String::from_utf8_lossy(&bytes);
        assert!(owners(&text, "deploy/production.pin.yaml").len() <= 2);
    }

    #[test]
    fn globs_match_within_a_segment() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.yaml", "production.yaml", true),
            ("*.yaml", "production.yml", false),
            ("**", "x", true),
            ("a*b*c", "aXbYbZc", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
    }

    #[test]
    fn patterns_follow_gitignore() {
        assert!(matches("deploy/production.yaml", "deploy/production.yaml"));
        assert!(matches("/deploy/*.yaml", "deploy/production.yaml"));
        assert!(!matches("/deploy/*.yaml", "x/deploy/production.yaml"));
        assert!(matches("production.yaml", "deploy/production.yaml"));
        assert!(matches("deploy/", "deploy/production.yaml"));
        assert!(matches("**/production.yaml", "a/b/production.yaml"));
        assert!(!matches("/production.yaml", "deploy/production.yaml"));
        assert!(!matches("deploy/", "deploy"));
        // Comments and e-mail owners.
        assert_eq!(
            owners("deploy/ a@b.c @ops # note", "deploy/x"),
            users(&["ops"])
        );
    }
}
