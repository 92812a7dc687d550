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
        let rest = &path_segments[s..];
        glob_segments(&segments, rest, dir)
    })
}

/// Matches pattern segments against path segments. A match may end at a directory (the pattern
/// names a directory, so everything below it matches) unless `dir_only` demands more.
fn glob_segments(pattern: &[&str], path: &[&str], dir_only: bool) -> bool {
    match pattern.first() {
        None => !path.is_empty() || !dir_only,
        Some(&"**") => (0..=path.len()).any(|i| glob_segments(&pattern[1..], &path[i..], dir_only)),
        Some(p) => match path.first() {
            Some(seg) if glob(p.as_bytes(), seg.as_bytes()) => {
                let rest = &path[1..];
                if pattern.len() == 1 {
                    // The pattern is used up: a file matches exactly, a directory by prefix.
                    rest.is_empty() && !dir_only || !rest.is_empty()
                } else {
                    glob_segments(&pattern[1..], rest, dir_only)
                }
            }
            _ => false,
        },
    }
}

/// `*` and `?` within one segment.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
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
