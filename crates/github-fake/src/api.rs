//! The endpoints. One handler takes every request: it finds the operation in the OpenAPI
//! description, validates the request, serves it from the state, and validates the response.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::openapi::{Operation, Spec, merge, spec};
use crate::{
    Account, Commit, Dispatch, Exchange, Issue, Pull, Repo, State, Status, Token, account,
    object_id,
};

type Shared = Arc<Mutex<State>>;

/// An injected failure: the next request whose method is `method` and whose path contains
/// `path` gets `status`, `headers` and a GitHub error body with `message`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub message: String,
}

pub(crate) fn router(state: Shared) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// What a handler returns: a status, a body to merge over the schema's minimal object, and
/// extra headers.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

fn ok(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body,
        headers: Vec::new(),
    }
}

fn error(status: u16, message: &str) -> Answer {
    ok(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let method = method.as_str().to_ascii_lowercase();
    let path = uri.path().to_owned();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.replace("%3A", ":").replace("%2F", "/"))
                })
                .collect()
        })
        .unwrap_or_default();
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut s = lock(&shared);
                let v = format!("{method} {path}: the body is not JSON: {e}");
                s.violations.push(v.clone());
                return finish(error(400, &format!("Problems parsing JSON: {e}")), &[]);
            }
        }
    };
    let spec = spec();
    let mut s = lock(&shared);
    let op = spec.find(&method, &path);
    let answer = serve(
        &mut s,
        spec,
        op.as_ref(),
        &query,
        &headers,
        json_body.as_ref(),
    );
    let scopes = token_of(&s, &headers).and_then(|t| match t {
        Token::Classic { scopes, .. } => Some(scopes.join(", ")),
        _ => None,
    });
    // Validate the response against the operation's declared response.
    let mut answer = answer;
    if let Some(op) = &op {
        let full = if answer.status < 300 {
            spec.respond(op, answer.status, answer.body.clone())
        } else {
            answer.body.clone()
        };
        let problems = spec.check_response(op, answer.status, &full);
        if problems.is_empty() {
            answer.body = full;
        } else {
            let text = problems.join("; ");
            s.violations.push(format!("response: {text}"));
            answer = error(500, &format!("the fake broke the API description: {text}"));
        }
    }
    s.log.push(Exchange {
        method: method.to_uppercase(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        status: answer.status,
        body: json_body,
        operation: op.map(|o| o.template),
    });
    let mut extra = answer.headers.clone();
    if let Some(scopes) = scopes {
        extra.push(("x-oauth-scopes".into(), scopes));
    }
    finish(answer, &extra)
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn finish(answer: Answer, headers: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // 204 No Content carries no body.
    let text = if answer.status == 204 {
        String::new()
    } else {
        answer.body.to_string()
    };
    let mut response = (
        status,
        [("content-type", "application/json; charset=utf-8")],
        text,
    )
        .into_response();
    for (k, v) in headers.iter().chain(answer.headers.iter()) {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

fn token_of<'a>(s: &'a State, headers: &HeaderMap) -> Option<&'a Token> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))?;
    s.tokens.get(secret.trim())
}

fn serve(
    s: &mut State,
    spec: &Spec,
    op: Option<&Operation>,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Answer {
    let Some(op) = op else {
        s.violations
            .push("a request for an operation the API description does not have".into());
        return error(404, "Not Found");
    };
    let problems = spec.check_request(op, query, body);
    if !problems.is_empty() {
        let text = problems.join("; ");
        s.violations.push(format!("request: {text}"));
        return error(422, &format!("Invalid request.\n\n{text}"));
    }
    let Some(token) = token_of(s, headers).cloned() else {
        return error(401, "Bad credentials");
    };
    if let Some(i) = s
        .faults
        .iter()
        .position(|f| f.method.eq_ignore_ascii_case(&op.method) && op_path(op).contains(&f.path))
        && let Some(f) = s.faults.remove(i)
    {
        let mut a = error(f.status, &f.message);
        a.headers = f.headers;
        return a;
    }
    let me = account(&token);
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let p = |name: &str| op.params.get(name).cloned().unwrap_or_default();
    let b = body.cloned().unwrap_or(Value::Null);
    let base_url = s.base_url.clone();
    let template = op.template.as_str();
    if let Some(rest) = template.strip_prefix("/orgs/{org}/teams/{team_slug}/members") {
        let _ = rest;
        if matches!(token, Token::Actions) {
            let mut a = error(403, "Resource not accessible by integration");
            a.headers.push((
                "x-accepted-github-permissions".into(),
                "members=read".into(),
            ));
            return a;
        }
        let Some(members) = s.teams.get(&format!("{}/{}", p("org"), p("team_slug"))) else {
            return error(404, "Not Found");
        };
        let users: Vec<Value> = members
            .iter()
            .map(|m| user_json(spec, &crate::user(m)))
            .collect();
        return page(&base_url, op, query, users);
    }
    let full = format!("{}/{}", p("owner"), p("repo"));
    let id = s.id();
    let now = s.now();
    let Some(repo) = s.repos.get_mut(&full) else {
        return error(404, "Not Found");
    };
    match (op.method.as_str(), template) {
        ("get", "/repos/{owner}/{repo}") => ok(
            200,
            json!({
                "name": repo.name, "full_name": full, "default_branch": repo.default_branch,
                "owner": user_json(spec, &crate::user(&repo.owner)),
                "html_url": format!("https://github.invalid/{full}"),
            }),
        ),
        ("get", "/repos/{owner}/{repo}/git/ref/{ref}") => match repo.refs.get(&p("ref")) {
            Some(sha) => ok(200, ref_json(&base_url, &full, &p("ref"), sha)),
            None => error(404, "Not Found"),
        },
        ("post", "/repos/{owner}/{repo}/git/refs") => {
            let name = b["ref"].as_str().unwrap_or_default();
            let sha = b["sha"].as_str().unwrap_or_default().to_owned();
            let Some(short) = name.strip_prefix("refs/") else {
                return error(422, "Reference name must start with 'refs/'");
            };
            if repo.refs.contains_key(short) {
                return error(422, "Reference already exists");
            }
            if !repo.commits.contains_key(&sha) {
                return error(422, "Object does not exist");
            }
            repo.refs.insert(short.to_owned(), sha.clone());
            ok(201, ref_json(&base_url, &full, short, &sha))
        }
        ("patch", "/repos/{owner}/{repo}/git/refs/{ref}") => {
            let name = p("ref");
            let sha = b["sha"].as_str().unwrap_or_default().to_owned();
            let force = b["force"].as_bool().unwrap_or(false);
            let Some(old) = repo.refs.get(&name).cloned() else {
                return error(422, "Reference does not exist");
            };
            if !repo.commits.contains_key(&sha) {
                return error(422, "Object does not exist");
            }
            if !force && !descends(repo, &sha, &old) {
                return error(422, "Update is not a fast forward");
            }
            // A protected branch moves by merging a pull request, unless its rules let this
            // identity bypass them.
            if let Some(branch) = name.strip_prefix("heads/")
                && repo.protection.contains_key(branch)
                && !repo
                    .bypass
                    .get(branch)
                    .is_some_and(|who| who.contains(&me.login))
            {
                return error(422, "Changes must be made through a pull request.");
            }
            repo.refs.insert(name.clone(), sha.clone());
            ok(200, ref_json(&base_url, &full, &name, &sha))
        }
        ("post", "/repos/{owner}/{repo}/git/blobs") => {
            let content = b["content"].as_str().unwrap_or_default();
            let bytes = match b["encoding"].as_str().unwrap_or("utf-8") {
                "base64" => match base64::engine::general_purpose::STANDARD.decode(content) {
                    Ok(bytes) => bytes,
                    Err(_) => return error(422, "content is not valid Base64"),
                },
                _ => content.as_bytes().to_vec(),
            };
            let sha = object_id("blob", &bytes);
            repo.blobs.insert(sha.clone(), bytes);
            ok(
                201,
                json!({"sha": sha, "url": format!("{base_url}/repos/{full}/git/blobs/{sha}")}),
            )
        }
        ("post", "/repos/{owner}/{repo}/git/trees") => {
            let mut tree = match b["base_tree"].as_str() {
                Some(t) => match repo.trees.get(t) {
                    Some(t) => t.clone(),
                    None => return error(422, "base_tree is not a tree"),
                },
                None => BTreeMap::new(),
            };
            for e in b["tree"].as_array().into_iter().flatten() {
                let path = e["path"].as_str().unwrap_or_default().to_owned();
                let blob = if let Some(c) = e["content"].as_str() {
                    let sha = object_id("blob", c.as_bytes());
                    repo.blobs.insert(sha.clone(), c.as_bytes().to_vec());
                    Some(sha)
                } else {
                    e["sha"].as_str().map(str::to_owned)
                };
                match blob {
                    Some(sha) if repo.blobs.contains_key(&sha) => {
                        tree.insert(path, sha);
                    }
                    Some(_) => return error(422, "tree.sha is not a blob"),
                    None => {
                        tree.remove(&path);
                    }
                }
            }
            let sha = put_tree(repo, tree.clone());
            ok(201, tree_json(&base_url, &full, &sha, &tree))
        }
        ("post", "/repos/{owner}/{repo}/git/commits") => {
            let tree = b["tree"].as_str().unwrap_or_default().to_owned();
            if !repo.trees.contains_key(&tree) {
                return error(422, "Tree SHA does not exist");
            }
            let parents: Vec<String> = b["parents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if parents.iter().any(|p| !repo.commits.contains_key(p)) {
                return error(422, "Parent SHA does not exist or is not a commit object");
            }
            let keys: Vec<String> = b
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let verified = !keys
                .iter()
                .any(|k| matches!(k.as_str(), "author" | "committer" | "signature"));
            let message = b["message"].as_str().unwrap_or_default().to_owned();
            let sha = object_id(
                "commit",
                format!("{tree}{parents:?}{message}{id}").as_bytes(),
            );
            let commit = Commit {
                sha: sha.clone(),
                tree,
                parents,
                message,
                author: me.clone(),
                verified,
                request_keys: keys,
            };
            repo.commits.insert(sha, commit.clone());
            ok(201, git_commit_json(spec, &base_url, &full, &commit, &now))
        }
        ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}") => {
            match repo.commits.get(&p("commit_sha")) {
                Some(c) => ok(200, git_commit_json(spec, &base_url, &full, c, &now)),
                None => error(404, "Not Found"),
            }
        }
        ("get", "/repos/{owner}/{repo}/contents/{path}") => {
            let at = q("ref").unwrap_or_else(|| repo.default_branch.clone());
            let Some(commit) = resolve(repo, &at) else {
                return error(404, &format!("No commit found for the ref {at}"));
            };
            let path = p("path");
            let tree = &repo.trees[&repo.commits[&commit].tree];
            let Some(blob) = tree.get(&path) else {
                return error(404, "Not Found");
            };
            let bytes = &repo.blobs[blob];
            let name = path.rsplit('/').next().unwrap_or_default();
            let url = format!("{base_url}/repos/{full}/contents/{path}");
            let git = format!("{base_url}/repos/{full}/git/blobs/{blob}");
            let html = format!("https://github.invalid/{full}/blob/{at}/{path}");
            ok(
                200,
                json!({
                    "type": "file", "encoding": "base64", "size": bytes.len(), "name": name,
                    "path": path, "sha": blob,
                    "content": base64::engine::general_purpose::STANDARD.encode(bytes),
                    "url": url, "git_url": git, "html_url": html, "download_url": null,
                    "_links": {"self": url, "git": git, "html": html},
                }),
            )
        }
        ("get", "/repos/{owner}/{repo}/commits") => {
            // The first-parent history from `sha` (default branch by default), newest first;
            // with `path`, only the commits that changed that file (GitHub simplifies the
            // history alike for a linear base branch).
            let at = q("sha").unwrap_or_else(|| repo.default_branch.clone());
            let Some(mut sha) = resolve(repo, &at) else {
                return error(404, "Not Found");
            };
            let path = q("path");
            let blob = |c: &str| {
                let path = path.as_deref().unwrap_or_default();
                repo.commits
                    .get(c)
                    .and_then(|c| repo.trees.get(&c.tree))
                    .and_then(|t| t.get(path).cloned())
            };
            let mut list = Vec::new();
            loop {
                let c = &repo.commits[&sha];
                let parent = c.parents.first().cloned();
                let changed = path.is_none() || blob(&sha) != parent.as_deref().and_then(&blob);
                if changed {
                    list.push(commit_json(spec, &base_url, &full, c, &now));
                }
                match parent.filter(|p| repo.commits.contains_key(p)) {
                    Some(p) => sha = p,
                    None => break,
                }
            }
            page(&base_url, op, query, list)
        }
        ("get", "/repos/{owner}/{repo}/compare/{basehead}") => {
            let bh = p("basehead");
            let Some((base, head)) = bh.split_once("...") else {
                return error(404, "Not Found");
            };
            let (Some(base), Some(head)) = (resolve(repo, base), resolve(repo, head)) else {
                return error(404, "Not Found");
            };
            let ahead = ahead_of(repo, &head, &base);
            let behind = ahead_of(repo, &base, &head);
            let commits: Vec<Value> = ahead
                .iter()
                .rev()
                .map(|c| commit_json(spec, &base_url, &full, &repo.commits[c], &now))
                .collect();
            let status = match (ahead.is_empty(), behind.is_empty()) {
                (true, true) => "identical",
                (false, true) => "ahead",
                (true, false) => "behind",
                (false, false) => "diverged",
            };
            let base_commit = commit_json(spec, &base_url, &full, &repo.commits[&base], &now);
            // The files that differ between the two trees.
            let tree = |sha: &str| {
                repo.commits
                    .get(sha)
                    .and_then(|c| repo.trees.get(&c.tree))
                    .cloned()
                    .unwrap_or_default()
            };
            let (old, new) = (tree(&base), tree(&head));
            let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
            paths.sort();
            paths.dedup();
            let files: Vec<Value> = paths
                .into_iter()
                .filter(|p| old.get(*p) != new.get(*p))
                .map(|p| {
                    let status = match (old.get(p), new.get(p)) {
                        (None, _) => "added",
                        (_, None) => "removed",
                        _ => "modified",
                    };
                    let blob = new
                        .get(p)
                        .or_else(|| old.get(p))
                        .cloned()
                        .unwrap_or_default();
                    json!({
                        "sha": blob, "filename": p, "status": status,
                        "additions": 0, "deletions": 0, "changes": 0,
                        "blob_url": format!("https://github.invalid/{full}/blob/{head}/{p}"),
                        "raw_url": format!("https://github.invalid/{full}/raw/{head}/{p}"),
                        "contents_url": format!("{base_url}/repos/{full}/contents/{p}?ref={head}"),
                    })
                })
                .collect();
            ok(
                200,
                json!({
                    "status": status, "ahead_by": ahead.len(), "behind_by": behind.len(),
                    "total_commits": ahead.len(), "commits": commits,
                    "base_commit": base_commit.clone(), "merge_base_commit": base_commit,
                    "files": files,
                }),
            )
        }
        ("get", "/repos/{owner}/{repo}/pulls") => {
            let state = q("state").unwrap_or_else(|| "open".into());
            let head = q("head");
            let base = q("base");
            let list: Vec<Value> = repo
                .pulls
                .iter()
                .filter(|pr| match state.as_str() {
                    "open" => pr.open,
                    "closed" => !pr.open,
                    _ => true,
                })
                .filter(|pr| {
                    let owner = pr.head_owner.as_ref().unwrap_or(&repo.owner);
                    head.as_ref()
                        .is_none_or(|h| *h == format!("{owner}:{}", pr.head))
                })
                .filter(|pr| base.as_ref().is_none_or(|b| *b == pr.base))
                .map(|pr| pull_as(spec, "pull-request-simple", &base_url, repo, pr, &now))
                .collect();
            page(&base_url, op, query, list)
        }
        ("post", "/repos/{owner}/{repo}/pulls") => {
            if matches!(token, Token::Actions) && !repo.actions_may_open_prs {
                return error(
                    403,
                    "GitHub Actions is not permitted to create or approve pull requests.",
                );
            }
            let head = b["head"].as_str().unwrap_or_default();
            let head = head.split_once(':').map_or(head, |(_, h)| h).to_owned();
            let base = b["base"].as_str().unwrap_or_default().to_owned();
            if !repo.refs.contains_key(&format!("heads/{head}"))
                || !repo.refs.contains_key(&format!("heads/{base}"))
            {
                return error(422, "Validation Failed");
            }
            if repo
                .pulls
                .iter()
                .any(|pr| pr.open && pr.head == head && pr.head_owner.is_none())
            {
                return error(
                    422,
                    &format!("A pull request already exists for {}:{head}.", repo.owner),
                );
            }
            let pull = Pull::opened(
                repo,
                b["title"].as_str().unwrap_or_default().to_owned(),
                b["body"].as_str().map(str::to_owned),
                head,
                None,
                base,
                me,
            );
            let out = pull_json(spec, &base_url, repo, &pull, &now);
            repo.pulls.push(pull);
            ok(201, out)
        }
        ("get", "/repos/{owner}/{repo}/pulls/{pull_number}") => {
            let n: u64 = p("pull_number").parse().unwrap_or(0);
            match repo.pulls.iter().find(|pr| pr.number == n) {
                Some(pr) => ok(200, pull_json(spec, &base_url, repo, pr, &now)),
                None => error(404, "Not Found"),
            }
        }
        ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}") => {
            let n: u64 = p("pull_number").parse().unwrap_or(0);
            let Some(i) = repo.pulls.iter().position(|pr| pr.number == n) else {
                return error(404, "Not Found");
            };
            if let Some(t) = b["title"].as_str() {
                repo.pulls[i].title = t.to_owned();
            }
            if let Some(t) = b["body"].as_str() {
                repo.pulls[i].body = Some(t.to_owned());
            }
            let pr = repo.pulls[i].clone();
            ok(200, pull_json(spec, &base_url, repo, &pr, &now))
        }
        ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews") => {
            let n: u64 = p("pull_number").parse().unwrap_or(0);
            let Some(pr) = repo.pulls.iter().find(|pr| pr.number == n) else {
                return error(404, "Not Found");
            };
            let list = pr
                .reviews
                .iter()
                .map(|r| {
                    let html = format!("https://github.invalid/{full}/pull/{n}#review-{}", r.id);
                    json!({
                        "id": r.id, "node_id": format!("PRR_{}", r.id),
                        "user": user_json(spec, &r.user), "body": "", "state": r.state,
                        "commit_id": r.commit_id, "html_url": html,
                        "pull_request_url": format!("{base_url}/repos/{full}/pulls/{n}"),
                        "_links": {"html": {"href": html}, "pull_request": {"href": format!("{base_url}/repos/{full}/pulls/{n}")}},
                        "author_association": "MEMBER", "submitted_at": "2026-01-01T00:00:00Z",
                    })
                })
                .collect();
            page(&base_url, op, query, list)
        }
        ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files") => {
            let n: u64 = p("pull_number").parse().unwrap_or(0);
            let Some(pr) = repo.pulls.iter().find(|pr| pr.number == n) else {
                return error(404, "Not Found");
            };
            let (head, base) = pull_commits(repo, pr);
            if !repo.commits.contains_key(&head) || !repo.commits.contains_key(&base) {
                return error(404, "Not Found");
            }
            // GitHub lists what the head changed since its merge base with the base branch
            // (a three-dot diff): commits the base gained since are not the PR's.
            let from_base = ancestors(repo, &base);
            let merge_base = ancestors(repo, &head)
                .into_iter()
                .find(|c| from_base.contains(c))
                .unwrap_or(base);
            let new = &repo.trees[&repo.commits[&head].tree];
            let old = &repo.trees[&repo.commits[&merge_base].tree];
            let mut files = Vec::new();
            for path in new
                .keys()
                .chain(old.keys().filter(|k| !new.contains_key(*k)))
            {
                let (a, b) = (old.get(path), new.get(path));
                if a == b {
                    continue;
                }
                let status = match (a, b) {
                    (None, _) => "added",
                    (_, None) => "removed",
                    _ => "modified",
                };
                let url = format!("https://github.invalid/{full}/blob/{head}/{path}");
                files.push(json!({
                    "sha": b.or(a), "filename": path, "status": status, "additions": 1,
                    "deletions": 1, "changes": 2, "blob_url": url, "raw_url": url,
                    "contents_url": format!("{base_url}/repos/{full}/contents/{path}"),
                }));
            }
            page(&base_url, op, query, files)
        }
        ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers") => {
            let n: u64 = p("pull_number").parse().unwrap_or(0);
            let teams: Vec<String> = strings(&b["team_reviewers"]);
            let users: Vec<String> = strings(&b["reviewers"]);
            if !teams.is_empty() && matches!(token, Token::Actions) {
                return error(403, "Resource not accessible by integration");
            }
            let Some(i) = repo.pulls.iter().position(|pr| pr.number == n) else {
                return error(404, "Not Found");
            };
            if users.contains(&repo.pulls[i].user.login) {
                return error(422, "Review cannot be requested from pull request author.");
            }
            for u in users {
                if !repo.pulls[i].reviewers.contains(&u) {
                    repo.pulls[i].reviewers.push(u);
                }
            }
            for t in teams {
                if !repo.pulls[i].team_reviewers.contains(&t) {
                    repo.pulls[i].team_reviewers.push(t);
                }
            }
            let pr = repo.pulls[i].clone();
            ok(
                201,
                pull_as(spec, "pull-request-simple", &base_url, repo, &pr, &now),
            )
        }
        ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels") => {
            let n: u64 = p("issue_number").parse().unwrap_or(0);
            let Some(i) = repo.pulls.iter().position(|pr| pr.number == n) else {
                return error(404, "Not Found");
            };
            for l in strings(&b["labels"]) {
                if !repo.pulls[i].labels.contains(&l) {
                    repo.pulls[i].labels.push(l);
                }
            }
            let labels: Vec<Value> = repo.pulls[i]
                .labels
                .iter()
                .map(|l| label_json(&base_url, &full, l))
                .collect();
            ok(200, Value::Array(labels))
        }
        ("post", "/repos/{owner}/{repo}/statuses/{sha}") => {
            let sha = p("sha");
            if !repo.commits.contains_key(&sha) {
                return error(422, "No commit found for SHA");
            }
            let status = Status {
                id,
                state: b["state"].as_str().unwrap_or_default().to_owned(),
                context: b["context"].as_str().unwrap_or("default").to_owned(),
                description: b["description"].as_str().map(str::to_owned),
                target_url: b["target_url"].as_str().map(str::to_owned),
                creator: me,
            };
            let out = status_json(spec, &base_url, &full, &status, &now);
            repo.statuses.entry(sha).or_default().push(status);
            ok(201, out)
        }
        ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls") => {
            let sha = p("commit_sha");
            let list: Vec<Value> = repo
                .pulls
                .iter()
                .filter(|pr| {
                    pr.merged.as_ref().is_some_and(|m| m.merge_sha == sha)
                        || (pr.open && pull_commits(repo, pr).0 == sha)
                })
                .map(|pr| pull_as(spec, "pull-request-simple", &base_url, repo, pr, &now))
                .collect();
            page(&base_url, op, query, list)
        }
        ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses") => {
            let Some(sha) = resolve(repo, &p("ref")) else {
                return error(404, "Not Found");
            };
            let list: Vec<Value> = repo
                .statuses
                .get(&sha)
                .into_iter()
                .flatten()
                .rev()
                .map(|st| status_json(spec, &base_url, &full, st, &now))
                .collect();
            page(&base_url, op, query, list)
        }
        ("get", "/repos/{owner}/{repo}/branches/{branch}/protection") => {
            if matches!(token, Token::Actions) {
                let mut a = error(403, "Resource not accessible by integration");
                a.headers.push((
                    "x-accepted-github-permissions".into(),
                    "administration=read".into(),
                ));
                return a;
            }
            match repo.protection.get(&p("branch")) {
                Some(n) => ok(
                    200,
                    json!({
                        "url": format!("{base_url}/repos/{full}/branches/{}/protection", p("branch")),
                        "required_pull_request_reviews": {
                            "url": format!("{base_url}/repos/{full}/branches/{}/protection/required_pull_request_reviews", p("branch")),
                            "required_approving_review_count": n,
                            "dismiss_stale_reviews": true,
                            "require_code_owner_reviews": repo.code_owner_reviews.contains(&p("branch")),
                        },
                        "enforce_admins": {
                            "url": format!("{base_url}/repos/{full}/branches/{}/protection/enforce_admins", p("branch")),
                            "enabled": true,
                        },
                    }),
                ),
                None => error(404, "Branch not protected"),
            }
        }
        ("get", "/repos/{owner}/{repo}/rules/branches/{branch}") => {
            let rules: Vec<Value> = repo
                .protection
                .get(&p("branch"))
                .map(|n| {
                    json!({
                        "type": "pull_request",
                        "ruleset_source_type": "Repository", "ruleset_source": full, "ruleset_id": 1,
                        "parameters": {
                            "required_approving_review_count": n,
                            "dismiss_stale_reviews_on_push": true,
                            "require_code_owner_review": repo.code_owner_reviews.contains(&p("branch")),
                            "require_last_push_approval": false,
                            "required_review_thread_resolution": false,
                        },
                    })
                })
                .into_iter()
                .collect();
            page(&base_url, op, query, rules)
        }
        ("get", "/repos/{owner}/{repo}/actions/permissions/workflow") => {
            if matches!(token, Token::Actions) {
                return error(403, "Resource not accessible by integration");
            }
            ok(
                200,
                json!({
                    "default_workflow_permissions": "read",
                    "can_approve_pull_request_reviews": repo.actions_may_open_prs,
                }),
            )
        }
        ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission") => {
            let login = p("username");
            let level = repo.permissions.get(&login).cloned().unwrap_or_else(|| {
                if login == repo.owner {
                    "admin"
                } else {
                    "write"
                }
                .to_owned()
            });
            if level == "none" {
                return error(404, "Not Found");
            }
            let mut user = user_json(spec, &crate::user(&login));
            merge(&mut user, json!({"role_name": level}));
            ok(
                200,
                json!({"permission": level, "role_name": level, "user": user}),
            )
        }
        ("get", "/repos/{owner}/{repo}/actions/oidc/customization/sub") => {
            if matches!(token, Token::Actions) {
                return error(403, "Resource not accessible by integration");
            }
            match &repo.oidc_claim_keys {
                Some(keys) => ok(
                    200,
                    json!({"use_default": false, "include_claim_keys": keys}),
                ),
                None => ok(200, json!({"use_default": true})),
            }
        }
        // Settings a workflow's GITHUB_TOKEN may not read (it has no administration,
        // environments, variables or secrets permission); an App or a person with admin may.
        ("get", t)
            if matches!(token, Token::Actions)
                && (t.contains("/environments/")
                    || t.ends_with("/actions/variables")
                    || t.ends_with("/actions/secrets")) =>
        {
            error(403, "Resource not accessible by integration")
        }
        ("get", "/repos/{owner}/{repo}/environments/{environment_name}") => {
            let name = p("environment_name");
            match repo.environments.get(&name) {
                Some(e) => ok(
                    200,
                    json!({
                        "id": id, "node_id": format!("EN_{id}"), "name": name,
                        "url": format!("{base_url}/repos/{full}/environments/{name}"),
                        "html_url": format!("https://github.invalid/{full}/deployments/activity_log?environments_filter={name}"),
                        "created_at": now, "updated_at": now,
                        "deployment_branch_policy": e.branches.as_ref().map(|_| json!({"protected_branches": false, "custom_branch_policies": true})),
                    }),
                ),
                None => error(404, "Not Found"),
            }
        }
        (
            "get",
            "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies",
        ) => {
            let Some(e) = repo.environments.get(&p("environment_name")) else {
                return error(404, "Not Found");
            };
            let policies: Vec<Value> = e
                .branches
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, b)| json!({"id": i + 1, "node_id": format!("DBP_{i}"), "name": b, "type": "branch"}))
                .collect();
            ok(
                200,
                json!({"total_count": policies.len(), "branch_policies": policies}),
            )
        }
        ("get", "/repos/{owner}/{repo}/environments/{environment_name}/variables") => {
            let Some(e) = repo.environments.get(&p("environment_name")) else {
                return error(404, "Not Found");
            };
            ok(200, variables_json(&e.variables, &now))
        }
        ("get", "/repos/{owner}/{repo}/actions/variables") => {
            ok(200, variables_json(&repo.variables, &now))
        }
        ("get", "/repos/{owner}/{repo}/actions/secrets") => {
            let secrets: Vec<Value> = repo
                .secrets
                .iter()
                .map(|n| json!({"name": n, "created_at": now, "updated_at": now}))
                .collect();
            ok(
                200,
                json!({"total_count": secrets.len(), "secrets": secrets}),
            )
        }
        ("get", "/repos/{owner}/{repo}/issues") => {
            // Pull requests are issues to GitHub: the list holds both, newest first.
            let state = q("state").unwrap_or_else(|| "open".to_owned());
            let wanted: Vec<String> = q("labels")
                .map(|l| l.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let keep = |open: bool, labels: &[String]| {
                (state == "all" || (state == "open") == open)
                    && wanted.iter().all(|w| labels.contains(w))
            };
            let mut items: Vec<(u64, Value)> = repo
                .issues
                .iter()
                .filter(|i| keep(i.open, &i.labels))
                .map(|i| (i.number, issue_json(spec, &base_url, &full, i, &now)))
                .collect();
            for pr in repo.pulls.iter().filter(|pr| keep(pr.open, &pr.labels)) {
                let as_issue = Issue {
                    number: pr.number,
                    title: pr.title.clone(),
                    body: pr.body.clone(),
                    labels: pr.labels.clone(),
                    open: pr.open,
                    user: pr.user.clone(),
                    comments: Vec::new(),
                };
                let mut v = issue_json(spec, &base_url, &full, &as_issue, &now);
                let url = format!("{base_url}/repos/{full}/pulls/{}", pr.number);
                merge(
                    &mut v,
                    json!({"pull_request": {"url": url, "html_url": url, "diff_url": url, "patch_url": url, "merged_at": null}}),
                );
                items.push((pr.number, v));
            }
            items.sort_by_key(|item| std::cmp::Reverse(item.0));
            page(
                &base_url,
                op,
                query,
                items.into_iter().map(|(_, v)| v).collect(),
            )
        }
        ("post", "/repos/{owner}/{repo}/issues") => {
            let issue = Issue {
                number: repo.next_number(),
                title: b["title"].as_str().unwrap_or_default().to_owned(),
                body: b["body"].as_str().map(str::to_owned),
                labels: strings(&b["labels"]),
                open: true,
                user: me.clone(),
                comments: Vec::new(),
            };
            let v = issue_json(spec, &base_url, &full, &issue, &now);
            repo.issues.push(issue);
            ok(201, v)
        }
        ("patch", "/repos/{owner}/{repo}/issues/{issue_number}") => {
            let n: u64 = p("issue_number").parse().unwrap_or(0);
            let Some(issue) = repo.issues.iter_mut().find(|i| i.number == n) else {
                return error(404, "Not Found");
            };
            if let Some(t) = b["title"].as_str() {
                t.clone_into(&mut issue.title);
            }
            if let Some(t) = b["body"].as_str() {
                issue.body = Some(t.to_owned());
            }
            if let Some(state) = b["state"].as_str() {
                issue.open = state == "open";
            }
            let issue = issue.clone();
            ok(200, issue_json(spec, &base_url, &full, &issue, &now))
        }
        ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments") => {
            let n: u64 = p("issue_number").parse().unwrap_or(0);
            let Some(issue) = repo.issues.iter_mut().find(|i| i.number == n) else {
                return error(404, "Not Found");
            };
            let text = b["body"].as_str().unwrap_or_default().to_owned();
            issue.comments.push((me.clone(), text.clone()));
            let url = format!("{base_url}/repos/{full}/issues/comments/{id}");
            ok(
                201,
                json!({"id": id, "node_id": format!("IC_{id}"), "url": url, "html_url": url,
                    "issue_url": format!("{base_url}/repos/{full}/issues/{n}"), "body": text,
                    "user": user_json(spec, &me), "created_at": now, "updated_at": now,
                    "author_association": "NONE"}),
            )
        }
        ("post", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches") => {
            // GitHub's rules: the ref must exist, the workflow file must be on it, and the
            // workflow must take `workflow_dispatch`.
            let git_ref = b["ref"].as_str().unwrap_or_default().to_owned();
            let branch = git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&git_ref)
                .to_owned();
            if !repo.refs.contains_key(&format!("heads/{branch}")) {
                return error(422, &format!("No ref found for: {git_ref}"));
            }
            let workflow = p("workflow_id");
            let Some(text) = repo.file_on(&branch, &format!(".github/workflows/{workflow}")) else {
                return error(404, "Not Found");
            };
            let Some(declared) = dispatch_inputs(&text) else {
                return error(422, "Workflow does not have 'workflow_dispatch' trigger");
            };
            let inputs = match dispatch_check(&declared, &b["inputs"]) {
                Ok(inputs) => inputs,
                Err(message) => return error(422, &message),
            };
            repo.dispatches.push(Dispatch {
                workflow,
                git_ref,
                inputs,
                by: me.clone(),
            });
            ok(204, Value::Null)
        }
        _ => {
            s_violation(op);
            error(404, "Not Found")
        }
    }
}

/// The inputs a workflow's `on.workflow_dispatch` declares (by name), or `None` when the
/// workflow cannot be dispatched (or is not YAML).
fn dispatch_inputs(text: &str) -> Option<serde_json::Map<String, Value>> {
    let workflow = mlops_manifest::yaml::parse(text, Default::default())
        .ok()?
        .to_json();
    let on = &workflow["on"];
    let dispatch = match on {
        Value::String(event) => (event == "workflow_dispatch").then_some(Value::Null)?,
        Value::Array(events) => events
            .iter()
            .any(|e| e == "workflow_dispatch")
            .then_some(Value::Null)?,
        Value::Object(events) => events.get("workflow_dispatch")?.clone(),
        _ => return None,
    };
    Some(dispatch["inputs"].as_object().cloned().unwrap_or_default())
}

/// The inputs of a dispatch as the run gets them (text), or GitHub's refusal: an input the
/// workflow does not declare, a required one missing, a boolean's not `true` or `false`.
fn dispatch_check(
    declared: &serde_json::Map<String, Value>,
    given: &Value,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let given = given.as_object().cloned().unwrap_or_default();
    let unexpected: Vec<&String> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!("Unexpected inputs provided: {unexpected:?}"));
    }
    let mut inputs = std::collections::BTreeMap::new();
    for (name, input) in declared {
        let value = match given.get(name) {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Bool(v)) => v.to_string(),
            Some(other) => other.to_string(),
            None if input["required"] == true && input.get("default").is_none() => {
                return Err(format!("Required input '{name}' not provided"));
            }
            None => continue,
        };
        if input["type"] == "boolean" && value != "true" && value != "false" {
            return Err(format!(
                "Provided value '{value}' for input '{name}' is not a boolean"
            ));
        }
        inputs.insert(name.clone(), value);
    }
    Ok(inputs)
}

/// An issue as GitHub's `issue` schema has it.
fn issue_json(spec: &Spec, base_url: &str, full: &str, i: &Issue, now: &str) -> Value {
    let mut v = spec.synth(&json!({"$ref": "#/components/schemas/issue"}), 0);
    let url = format!("{base_url}/repos/{full}/issues/{}", i.number);
    merge(
        &mut v,
        json!({
            "id": i.number, "node_id": format!("I_{}", i.number), "number": i.number,
            "url": url, "html_url": format!("https://github.invalid/{full}/issues/{}", i.number),
            "title": i.title, "body": i.body, "state": if i.open { "open" } else { "closed" },
            "labels": i.labels.iter().map(|l| label_json(base_url, full, l)).collect::<Vec<_>>(),
            "user": user_json(spec, &i.user), "comments": i.comments.len(),
            "created_at": now, "updated_at": now,
        }),
    );
    v
}

fn variables_json(vars: &BTreeMap<String, String>, now: &str) -> Value {
    let list: Vec<Value> = vars
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v, "created_at": now, "updated_at": now}))
        .collect();
    json!({"total_count": list.len(), "variables": list})
}

fn s_violation(op: &Operation) {
    eprintln!(
        "github-fake: {} {} is in the description but not served",
        op.method, op.template
    );
}

fn op_path(op: &Operation) -> String {
    let mut path = op.template.clone();
    for (k, v) in &op.params {
        path = path.replace(&format!("{{{k}}}"), v);
    }
    path
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// One page of a list, with GitHub's `Link` header.
fn page(base_url: &str, op: &Operation, query: &[(String, String)], items: Vec<Value>) -> Answer {
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("per_page").unwrap_or(30).clamp(1, 100);
    let number = get("page").unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((number - 1) * per_page)
        .take(per_page)
        .collect();
    let mut a = ok(200, Value::Array(chunk));
    let path = op_path(op);
    let others: String = query
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .map(|(k, v)| format!("&{k}={v}"))
        .collect();
    let link = |n: usize, rel: &str| {
        format!("<{base_url}{path}?per_page={per_page}&page={n}{others}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if number < last {
        links.push(link(number + 1, "next"));
        links.push(link(last, "last"));
    }
    if number > 1 {
        links.push(link(1, "first"));
        links.push(link(number - 1, "prev"));
    }
    if !links.is_empty() {
        a.headers.push(("link".into(), links.join(", ")));
    }
    a
}

pub(crate) fn user_json(spec: &Spec, a: &Account) -> Value {
    let mut v = spec.synth(&json!({"$ref": "#/components/schemas/simple-user"}), 0);
    merge(
        &mut v,
        json!({
            "login": a.login, "id": a.id, "node_id": format!("U_{}", a.id),
            "type": if a.bot { "Bot" } else { "User" },
        }),
    );
    v
}

fn ref_json(base_url: &str, full: &str, name: &str, sha: &str) -> Value {
    json!({
        "ref": format!("refs/{name}"), "node_id": format!("REF_{sha}"),
        "url": format!("{base_url}/repos/{full}/git/refs/{name}"),
        "object": {"type": "commit", "sha": sha, "url": format!("{base_url}/repos/{full}/git/commits/{sha}")},
    })
}

fn tree_json(base_url: &str, full: &str, sha: &str, tree: &BTreeMap<String, String>) -> Value {
    let entries: Vec<Value> = tree
        .iter()
        .map(|(path, blob)| json!({"path": path, "mode": "100644", "type": "blob", "sha": blob}))
        .collect();
    json!({"sha": sha, "url": format!("{base_url}/repos/{full}/git/trees/{sha}"), "truncated": false, "tree": entries})
}

fn git_commit_json(_spec: &Spec, base_url: &str, full: &str, c: &Commit, now: &str) -> Value {
    let person = json!({"name": c.author.login, "email": format!("{}@users.noreply.invalid", c.author.id), "date": now});
    json!({
        "sha": c.sha, "node_id": format!("C_{}", c.sha),
        "url": format!("{base_url}/repos/{full}/git/commits/{}", c.sha),
        "html_url": format!("https://github.invalid/{full}/commit/{}", c.sha),
        "author": person.clone(), "committer": person,
        "tree": {"sha": c.tree, "url": format!("{base_url}/repos/{full}/git/trees/{}", c.tree)},
        "message": c.message,
        "parents": c.parents.iter().map(|p| json!({"sha": p, "url": format!("{base_url}/repos/{full}/git/commits/{p}"), "html_url": format!("https://github.invalid/{full}/commit/{p}")})).collect::<Vec<_>>(),
        "verification": {"verified": c.verified, "reason": if c.verified { "valid" } else { "unsigned" }, "signature": null, "payload": null, "verified_at": null},
    })
}

fn commit_json(spec: &Spec, base_url: &str, full: &str, c: &Commit, now: &str) -> Value {
    let mut v = spec.synth(&json!({"$ref": "#/components/schemas/commit"}), 0);
    let git = git_commit_json(spec, base_url, full, c, now);
    merge(
        &mut v,
        json!({
            "sha": c.sha, "node_id": format!("C_{}", c.sha),
            "url": format!("{base_url}/repos/{full}/commits/{}", c.sha),
            "html_url": format!("https://github.invalid/{full}/commit/{}", c.sha),
            "comments_url": format!("{base_url}/repos/{full}/commits/{}/comments", c.sha),
            "commit": {
                "url": git["url"], "author": git["author"], "committer": git["committer"],
                "message": c.message, "comment_count": 0,
                "tree": git["tree"], "verification": git["verification"],
            },
            "author": user_json(spec, &c.author), "committer": user_json(spec, &c.author),
            "parents": git["parents"],
        }),
    );
    v
}

fn label_json(base_url: &str, full: &str, name: &str) -> Value {
    json!({
        "id": object_id("label", name.as_bytes()).len() as u64 + name.len() as u64,
        "node_id": format!("LA_{name}"), "url": format!("{base_url}/repos/{full}/labels/{name}"),
        "name": name, "description": "", "color": "ededed", "default": false,
    })
}

fn status_json(spec: &Spec, base_url: &str, full: &str, st: &Status, now: &str) -> Value {
    json!({
        "url": format!("{base_url}/repos/{full}/statuses/{}", st.id),
        "avatar_url": null, "id": st.id, "node_id": format!("SC_{}", st.id),
        "state": st.state, "description": st.description, "target_url": st.target_url,
        "context": st.context, "created_at": now, "updated_at": now,
        "creator": user_json(spec, &st.creator),
    })
}

fn pull_json(spec: &Spec, base_url: &str, repo: &Repo, pr: &Pull, now: &str) -> Value {
    pull_as(spec, "pull-request", base_url, repo, pr, now)
}

/// A pull request as the named schema (`pull-request` or `pull-request-simple`).
fn pull_as(spec: &Spec, schema: &str, base_url: &str, repo: &Repo, pr: &Pull, now: &str) -> Value {
    let full = format!("{}/{}", repo.owner, repo.name);
    let (head_sha, base_sha) = pull_commits(repo, pr);
    let owner = user_json(spec, &crate::user(&repo.owner));
    let mut repository = spec.synth(&json!({"$ref": "#/components/schemas/repository"}), 0);
    merge(
        &mut repository,
        json!({"name": repo.name, "full_name": full, "owner": owner, "default_branch": repo.default_branch}),
    );
    let branch = |name: &str, sha: &str| json!({"label": format!("{}:{name}", repo.owner), "ref": name, "sha": sha, "user": owner, "repo": repository});
    // A fork's head: its owner's repository of the same name.
    let head_branch = |name: &str, sha: &str| match &pr.head_owner {
        None => branch(name, sha),
        Some(fork) => {
            let fork_owner = user_json(spec, &crate::user(fork));
            let mut fork_repo = repository.clone();
            merge(
                &mut fork_repo,
                json!({"full_name": format!("{fork}/{}", repo.name), "owner": fork_owner, "fork": true}),
            );
            json!({"label": format!("{fork}:{name}"), "ref": name, "sha": sha, "user": fork_owner, "repo": fork_repo})
        }
    };
    let url = format!("{base_url}/repos/{full}/pulls/{}", pr.number);
    let html = format!("https://github.invalid/{full}/pull/{}", pr.number);
    let mut out = spec.synth(
        &json!({"$ref": format!("#/components/schemas/{schema}")}),
        0,
    );
    merge(
        &mut out,
        json!({
            "url": url, "id": pr.number + 1000, "node_id": format!("PR_{}", pr.number),
            "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
            "issue_url": format!("{base_url}/repos/{full}/issues/{}", pr.number),
            "commits_url": format!("{url}/commits"), "review_comments_url": format!("{url}/comments"),
            "review_comment_url": format!("{base_url}/repos/{full}/pulls/comments{{/number}}"),
            "comments_url": format!("{base_url}/repos/{full}/issues/{}/comments", pr.number),
            "statuses_url": format!("{base_url}/repos/{full}/statuses/{head_sha}"),
            "number": pr.number, "state": if pr.open { "open" } else { "closed" },
            "locked": false, "title": pr.title, "user": user_json(spec, &pr.user), "body": pr.body,
            "labels": pr.labels.iter().map(|l| label_json(base_url, &full, l)).collect::<Vec<_>>(),
            "milestone": null, "created_at": now, "updated_at": now,
            "closed_at": if pr.open { Value::Null } else { json!(now) },
            "merged_at": if pr.merged.is_some() { json!(now) } else { Value::Null },
            "merge_commit_sha": pr.merged.as_ref().map(|m| m.merge_sha.clone()),
            "requested_reviewers": pr.reviewers.iter().map(|r| user_json(spec, &crate::user(r))).collect::<Vec<_>>(),
            "head": head_branch(&pr.head, &head_sha), "base": branch(&pr.base, &base_sha),
            "author_association": "NONE", "draft": false, "merged": pr.merged.is_some(), "mergeable": null,
            "rebaseable": null, "mergeable_state": "clean", "merged_by": null,
            "comments": 0, "review_comments": 0, "maintainer_can_modify": false,
            "commits": 1, "additions": 1, "deletions": 1, "changed_files": 1,
            "_links": {
                "self": {"href": url}, "html": {"href": html},
                "issue": {"href": format!("{base_url}/repos/{full}/issues/{}", pr.number)},
                "comments": {"href": format!("{base_url}/repos/{full}/issues/{}/comments", pr.number)},
                "review_comments": {"href": format!("{url}/comments")},
                "review_comment": {"href": format!("{base_url}/repos/{full}/pulls/comments{{/number}}")},
                "commits": {"href": format!("{url}/commits")},
                "statuses": {"href": format!("{base_url}/repos/{full}/statuses/{head_sha}")},
            },
        }),
    );
    if schema == "pull-request-simple" {
        trim_to_simple(&mut out);
    }
    out
}

/// The fields `pull-request-simple` has (the create-review-request answer).
fn trim_to_simple(v: &mut Value) {
    if let Value::Object(m) = v {
        for k in [
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        ] {
            m.remove(k);
        }
    }
}

fn put_tree(repo: &mut Repo, tree: BTreeMap<String, String>) -> String {
    let text: String = tree.iter().map(|(p, s)| format!("{p}\0{s}\n")).collect();
    let sha = object_id("tree", text.as_bytes());
    repo.trees.insert(sha.clone(), tree);
    sha
}

/// A commit of `files` on top of `parent`, by `author` (how the test helpers add history).
pub(crate) fn commit_files(
    repo: &mut Repo,
    parent: Option<String>,
    files: &[(&str, &str)],
    message: &str,
    author: &Account,
) -> String {
    let mut tree = parent
        .as_ref()
        .and_then(|p| repo.commits.get(p))
        .and_then(|c| repo.trees.get(&c.tree))
        .cloned()
        .unwrap_or_default();
    for (path, text) in files {
        let sha = object_id("blob", text.as_bytes());
        repo.blobs.insert(sha.clone(), text.as_bytes().to_vec());
        tree.insert((*path).to_owned(), sha);
    }
    let tree = put_tree(repo, tree);
    let parents: Vec<String> = parent.into_iter().collect();
    insert_commit(repo, tree, parents, message, author, false)
}

/// Stores a commit of `tree` on `parents` (one a push makes: no request keys) and returns its SHA.
fn insert_commit(
    repo: &mut Repo,
    tree: String,
    parents: Vec<String>,
    message: &str,
    author: &Account,
    verified: bool,
) -> String {
    let sha = object_id(
        "commit",
        format!(
            "{tree}{parents:?}{message}{}{}",
            author.login,
            repo.commits.len()
        )
        .as_bytes(),
    );
    repo.commits.insert(
        sha.clone(),
        Commit {
            sha: sha.clone(),
            tree,
            parents,
            message: message.to_owned(),
            author: author.clone(),
            verified,
            request_keys: Vec::new(),
        },
    );
    sha
}

/// A branch name or a commit SHA to a commit SHA.
/// A pull request's head and base commits: the branches' now, or what was merged.
fn pull_commits(repo: &Repo, pr: &Pull) -> (String, String) {
    if let Some(m) = &pr.merged {
        return (m.head_sha.clone(), m.base_sha.clone());
    }
    let at = |name: &str| repo.refs.get(name).cloned().unwrap_or_default();
    (at(&pr.head_ref()), at(&format!("heads/{}", pr.base)))
}

/// A merge commit of `head` into `base`: the base's tree with every path the head changed since
/// their merge base (and `resolved`, a path and text, as a person resolving a conflict wrote it).
pub(crate) fn merge_commit(
    repo: &mut Repo,
    base: &str,
    head: &str,
    message: &str,
    author: &Account,
    resolved: Option<(&str, &str)>,
) -> String {
    let tree_of = |repo: &Repo, sha: &str| {
        repo.commits
            .get(sha)
            .and_then(|c| repo.trees.get(&c.tree))
            .cloned()
            .unwrap_or_default()
    };
    let from_base = ancestors(repo, base);
    let merge_base = ancestors(repo, head)
        .into_iter()
        .find(|c| from_base.contains(c))
        .unwrap_or_default();
    let (old, new) = (tree_of(repo, &merge_base), tree_of(repo, head));
    let mut tree = tree_of(repo, base);
    for (path, blob) in &new {
        if old.get(path) != Some(blob) {
            tree.insert(path.clone(), blob.clone());
        }
    }
    for path in old.keys() {
        if !new.contains_key(path) {
            tree.remove(path);
        }
    }
    if let Some((path, text)) = resolved {
        let sha = object_id("blob", text.as_bytes());
        repo.blobs.insert(sha.clone(), text.as_bytes().to_vec());
        tree.insert(path.to_owned(), sha);
    }
    let tree = put_tree(repo, tree);
    let parents = vec![base.to_owned(), head.to_owned()];
    // GitHub signs the merge commits it makes.
    insert_commit(repo, tree, parents, message, author, true)
}

fn resolve(repo: &Repo, name: &str) -> Option<String> {
    if repo.commits.contains_key(name) {
        return Some(name.to_owned());
    }
    repo.refs
        .get(&format!("heads/{name}"))
        .or_else(|| repo.refs.get(name.trim_start_matches("refs/")))
        .cloned()
}

fn ancestors(repo: &Repo, sha: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![sha.to_owned()];
    while let Some(c) = todo.pop() {
        if out.contains(&c) {
            continue;
        }
        if let Some(commit) = repo.commits.get(&c) {
            todo.extend(commit.parents.iter().cloned());
        }
        out.push(c);
    }
    out
}

fn descends(repo: &Repo, sha: &str, from: &str) -> bool {
    ancestors(repo, sha).iter().any(|c| c == from)
}

/// Commits reachable from `head` but not from `base`, newest first.
fn ahead_of(repo: &Repo, head: &str, base: &str) -> Vec<String> {
    let behind = ancestors(repo, base);
    ancestors(repo, head)
        .into_iter()
        .filter(|c| !behind.contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispatch_gives_only_the_inputs_the_workflow_declares() {
        let declared = dispatch_inputs(
            "on:\n  push:\n  workflow_dispatch:\n    inputs:\n      retraining:\n        type: boolean\n        default: false\n      note:\n        required: true\n",
        )
        .expect("dispatchable");
        assert_eq!(declared.len(), 2);
        assert_eq!(
            dispatch_check(&declared, &json!({"retraining": "true", "note": "x"})),
            Ok([
                ("note".to_owned(), "x".to_owned()),
                ("retraining".to_owned(), "true".to_owned())
            ]
            .into())
        );
        assert_eq!(
            dispatch_check(&declared, &json!({"note": "x", "other": "1"})),
            Err("Unexpected inputs provided: [\"other\"]".to_owned())
        );
        assert_eq!(
            dispatch_check(&declared, &json!({"retraining": "true"})),
            Err("Required input 'note' not provided".to_owned())
        );
        assert!(
            dispatch_check(&declared, &json!({"retraining": "yes", "note": "x"}))
                .is_err_and(|e| e.contains("not a boolean"))
        );
        // No trigger, no dispatch; the trigger without inputs takes none.
        assert!(dispatch_inputs("on: push\n").is_none());
        let bare = dispatch_inputs("on: [push, workflow_dispatch]\n").expect("dispatchable");
        assert!(dispatch_check(&bare, &json!({"retraining": "true"})).is_err());
        assert_eq!(dispatch_check(&bare, &Value::Null), Ok(Default::default()));
    }
}
