//! The rendered Terraform evaluated as far as its IAM policies need, for tests: the locals, the
//! data sources and the resource attributes the policy documents refer to, given what Terraform
//! would know after an apply (an account, the partition, ARNs formed as AWS forms them), and
//! each role's policy as the IAM JSON document Terraform would hand to AWS. It covers what the
//! templates use and fails loudly on anything else (an unknown function, a reference it cannot
//! resolve), so a template change cannot silently drop a statement from the tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Value};

/// One role the Terraform creates: its name, trust policy and inline policies (IAM JSON).
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub(crate) name: String,
    pub(crate) trust: serde_json::Value,
    pub(crate) policies: Vec<(String, serde_json::Value)>,
}

/// The `aws_iam_role "github"` roles of a rendered tree (`train`, `staging`, `production`, and
/// `monitor` with a monitor workflow), with `account` and `partition` as `aws_caller_identity`
/// and `aws_partition` would give them.
pub(crate) fn github_roles(
    files: &BTreeMap<String, String>,
    account: &str,
) -> BTreeMap<String, Role> {
    let resources = evaluate(files, account);
    let policies = policies(&resources);
    resources
        .get("aws_iam_role")
        .and_then(|r| r.get("github"))
        .and_then(serde_json::Value::as_object)
        .expect("the github roles evaluate")
        .iter()
        .map(|(key, role)| (key.clone(), attached(key, role, policies)))
        .collect()
}

/// The role SageMaker's training jobs and endpoints run as (`aws_iam_role "sagemaker"`).
pub(crate) fn execution_role(files: &BTreeMap<String, String>, account: &str) -> Role {
    let resources = evaluate(files, account);
    let role = resources
        .get("aws_iam_role")
        .and_then(|r| r.get("sagemaker"))
        .expect("the execution role evaluates");
    attached("sagemaker", role, policies(&resources))
}

fn policies(
    resources: &serde_json::Map<String, serde_json::Value>,
) -> &serde_json::Map<String, serde_json::Value> {
    resources
        .get("aws_iam_role_policy")
        .and_then(serde_json::Value::as_object)
        .expect("the role policies evaluate")
}

/// `role` with the inline policies attached to it by name.
fn attached(
    key: &str,
    role: &serde_json::Value,
    policies: &serde_json::Map<String, serde_json::Value>,
) -> Role {
    let name = role["name"].as_str().expect("role name").to_owned();
    let trust = parse(&role["assume_role_policy"]);
    let mut attached = Vec::new();
    for set in policies.values() {
        for instance in instances(set) {
            if instance["role"] == name.as_str() {
                attached.push((
                    instance["name"].as_str().expect("name").to_owned(),
                    parse(&instance["policy"]),
                ));
            }
        }
    }
    assert!(!attached.is_empty(), "role {key} has no policy");
    Role {
        name,
        trust,
        policies: attached,
    }
}

/// The resources of a rendered tree, evaluated as far as the policies need.
fn evaluate(
    files: &BTreeMap<String, String>,
    account: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut blocks: Vec<Block> = Vec::new();
    for (path, text) in files {
        if path.starts_with("terraform/")
            && !path.starts_with("terraform/bootstrap/")
            && path.ends_with(".tf")
        {
            let body: Body = hcl::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
            blocks.extend(body.into_blocks());
        }
    }
    let mut ctx = Context::new();
    for (name, func) in functions() {
        ctx.declare_func(name, func);
    }
    let mut data = serde_json::json!({
        "aws_caller_identity": {"current": {"account_id": account}},
        "aws_partition": {"current": {"partition": "aws"}},
    });
    let variables: serde_json::Map<String, serde_json::Value> = blocks
        .iter()
        .filter(|b| b.identifier() == "variable")
        .map(|b| {
            let default = attr(b.body(), "default").map_or(serde_json::Value::Null, |e| {
                json(&e.evaluate(&ctx).expect("a variable's default is a literal"))
            });
            (label(b, 0), default)
        })
        .collect();
    ctx.declare_var("var", hcl_value(&serde_json::Value::Object(variables)));

    // Locals, resources and data sources refer to each other: evaluate what can be until
    // nothing more can.
    let mut locals = serde_json::Map::new();
    let mut resources = serde_json::Map::new();
    let known = |locals: &serde_json::Map<String, serde_json::Value>,
                 resources: &serde_json::Map<String, serde_json::Value>,
                 data: &serde_json::Value| {
        (
            locals.len(),
            count(resources),
            count(data.as_object().expect("object")),
        )
    };
    loop {
        let before = known(&locals, &resources, &data);
        ctx.declare_var(
            "local",
            hcl_value(&serde_json::Value::Object(locals.clone())),
        );
        ctx.declare_var("data", hcl_value(&data));
        declare_resources(&mut ctx, &resources);
        for b in blocks.iter().filter(|b| b.identifier() == "locals") {
            for a in b.body().attributes() {
                if !locals.contains_key(a.key())
                    && let Ok(v) = a.expr().evaluate(&ctx)
                {
                    locals.insert(a.key().to_owned(), json(&v));
                }
            }
        }
        let region = locals
            .get("region")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("us-east-1")
            .to_owned();
        let at = Where {
            account,
            region: &region,
        };
        for b in &blocks {
            let (kind, name) = (label(b, 0), label(b, 1));
            let known = match b.identifier() {
                "resource" => &mut resources,
                "data" => data.as_object_mut().expect("object"),
                _ => continue,
            };
            if known.get(&kind).and_then(|k| k.get(&name)).is_some() {
                continue;
            }
            if let Some(value) = instance_set(b, &ctx, &at) {
                known
                    .entry(kind)
                    .or_insert_with(|| serde_json::json!({}))
                    .as_object_mut()
                    .expect("object")
                    .insert(name, value);
            }
        }
        if known(&locals, &resources, &data) == before {
            break;
        }
    }
    resources
}

fn parse(v: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(v.as_str().expect("a JSON document")).expect("JSON")
}

/// The instances of a resource or data source: one object, or a map of them (`for_each`) or a
/// list (`count`).
fn instances(set: &serde_json::Value) -> Vec<&serde_json::Value> {
    match set {
        serde_json::Value::Array(items) => items.iter().collect(),
        serde_json::Value::Object(o)
            if o.values().all(serde_json::Value::is_object)
                && !o.contains_key("arn")
                && !o.contains_key("name") =>
        {
            o.values().collect()
        }
        other => vec![other],
    }
}

/// How many instances are known, over every kind.
fn count(known: &serde_json::Map<String, serde_json::Value>) -> usize {
    known
        .values()
        .map(|v| v.as_object().map_or(0, serde_json::Map::len))
        .sum()
}

fn declare_resources(ctx: &mut Context, resources: &serde_json::Map<String, serde_json::Value>) {
    for (kind, set) in resources {
        ctx.declare_var(kind.as_str(), hcl_value(set));
    }
}

fn label(b: &Block, i: usize) -> String {
    b.labels()
        .get(i)
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default()
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// The account and region the ARNs of computed attributes are formed in.
struct Where<'a> {
    account: &'a str,
    region: &'a str,
}

/// A resource's or data source's value (or its instances under `for_each` / `count`), or `None`
/// while something it refers to is not known yet.
fn instance_set(b: &Block, ctx: &Context, at: &Where) -> Option<serde_json::Value> {
    if let Some(each) = attr(b.body(), "for_each") {
        let keys: Vec<(String, Value)> = match each.evaluate(ctx).ok()? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| {
                    (
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                        v,
                    )
                })
                .collect(),
            Value::Object(map) => map.into_iter().collect(),
            other => panic!("for_each over {other:?}"),
        };
        let mut out = serde_json::Map::new();
        for (key, value) in keys {
            let mut inner = ctx.clone();
            inner.declare_var(
                "each",
                hcl_value(&serde_json::json!({ "key": key.clone(), "value": json(&value) })),
            );
            out.insert(key, instance(b, &inner, at)?);
        }
        return Some(serde_json::Value::Object(out));
    }
    if let Some(n) = attr(b.body(), "count") {
        let n = n.evaluate(ctx).ok()?.as_u64().expect("count is a number");
        return (0..n)
            .map(|_| instance(b, ctx, at))
            .collect::<Option<Vec<_>>>()
            .map(serde_json::Value::Array);
    }
    instance(b, ctx, at)
}

/// One instance: its arguments evaluated, the attributes AWS computes, and for a policy
/// document its `json`.
fn instance(b: &Block, ctx: &Context, at: &Where) -> Option<serde_json::Value> {
    let kind = label(b, 0);
    if kind == "aws_iam_policy_document" {
        return policy_document(b.body(), ctx)
            .map(|doc| serde_json::json!({ "json": doc.to_string() }));
    }
    let mut args = serde_json::Map::new();
    for a in b.body().attributes() {
        if ["for_each", "count", "depends_on"].contains(&a.key()) {
            continue;
        }
        args.insert(a.key().to_owned(), json(&a.expr().evaluate(ctx).ok()?));
    }
    let s = |k: &str| {
        args.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let Where { account, region } = *at;
    if b.identifier() == "data" && kind == "aws_kms_key" {
        // A manifest's key: an ARN as given, an ID or alias as an ARN in this account.
        let key = s("key_id");
        let arn = if key.starts_with("arn:") {
            key
        } else {
            format!("arn:aws:kms:{region}:{account}:{key}")
        };
        args.insert("arn".into(), arn.into());
        return Some(serde_json::Value::Object(args));
    }
    let arn = match kind.as_str() {
        "aws_s3_bucket" => format!("arn:aws:s3:::{}", s("bucket")),
        "aws_iam_role" => format!("arn:aws:iam::{account}:role/{}", s("name")),
        "aws_ecr_repository" => format!("arn:aws:ecr:{region}:{account}:repository/{}", s("name")),
        "aws_kms_key" => format!("arn:aws:kms:{region}:{account}:key/0000-test"),
        "aws_sagemaker_model_package_group" => format!(
            "arn:aws:sagemaker:{region}:{account}:model-package-group/{}",
            s("model_package_group_name").to_lowercase()
        ),
        "aws_iam_openid_connect_provider" => {
            format!("arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com")
        }
        "aws_kms_alias" => format!("arn:aws:kms:{region}:{account}:{}", s("name")),
        _ => String::new(),
    };
    let id = match kind.as_str() {
        "aws_s3_bucket" => s("bucket"),
        "aws_iam_role" => s("name"),
        "aws_kms_key" => "0000-test".to_owned(),
        _ => s("name"),
    };
    if kind == "aws_kms_key" {
        args.entry("key_id").or_insert(id.clone().into());
    }
    args.entry("arn").or_insert(arn.into());
    args.entry("id").or_insert(id.into());
    Some(serde_json::Value::Object(args))
}

/// An `aws_iam_policy_document` as IAM JSON: `Sid`, `Effect` (Allow by default), `Action`,
/// `Resource`, `Principal` and `Condition`, as the provider writes them.
fn policy_document(body: &Body, ctx: &Context) -> Option<serde_json::Value> {
    let mut statements = Vec::new();
    for st in body.blocks().filter(|b| b.identifier() == "statement") {
        let mut out = serde_json::Map::new();
        let get = |k: &str| -> Option<Option<serde_json::Value>> {
            match attr(st.body(), k) {
                None => Some(None),
                Some(e) => Some(Some(json(&e.evaluate(ctx).ok()?))),
            }
        };
        if let Some(sid) = get("sid")? {
            out.insert("Sid".into(), sid);
        }
        out.insert(
            "Effect".into(),
            get("effect")?.unwrap_or_else(|| "Allow".into()),
        );
        out.insert(
            "Action".into(),
            get("actions")?.expect("a statement has actions"),
        );
        if let Some(resources) = get("resources")? {
            out.insert("Resource".into(), resources);
        }
        for p in st
            .body()
            .blocks()
            .filter(|b| b.identifier() == "principals")
        {
            let kind = json(&attr(p.body(), "type")?.evaluate(ctx).ok()?);
            let ids = json(&attr(p.body(), "identifiers")?.evaluate(ctx).ok()?);
            out.insert(
                "Principal".into(),
                serde_json::json!({ kind.as_str().unwrap_or_default(): ids }),
            );
        }
        let mut conditions = serde_json::Map::new();
        for c in st.body().blocks().filter(|b| b.identifier() == "condition") {
            let test = json(&attr(c.body(), "test")?.evaluate(ctx).ok()?);
            let variable = json(&attr(c.body(), "variable")?.evaluate(ctx).ok()?);
            let values = json(&attr(c.body(), "values")?.evaluate(ctx).ok()?);
            conditions
                .entry(test.as_str().unwrap_or_default())
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
                .expect("object")
                .insert(variable.as_str().unwrap_or_default().to_owned(), values);
        }
        if !conditions.is_empty() {
            out.insert("Condition".into(), conditions.into());
        }
        statements.push(serde_json::Value::Object(out));
    }
    Some(serde_json::json!({ "Version": "2012-10-17", "Statement": statements }))
}

fn json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).expect("an HCL value is JSON")
}

fn hcl_value(v: &serde_json::Value) -> Value {
    hcl::to_value(v).expect("JSON is an HCL value")
}

fn strings(args: &FuncArgs, i: usize) -> Vec<Value> {
    args[i].as_array().cloned().unwrap_or_default()
}

/// The first argument's items, each once, in their order (`distinct`, `toset`).
fn unique(args: FuncArgs) -> Result<Value, String> {
    let mut out: Vec<Value> = Vec::new();
    for v in strings(&args, 0) {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(Value::Array(out))
}

/// The Terraform functions the templates call, with Terraform's meaning.
fn functions() -> Vec<(&'static str, FuncDef)> {
    let any_list = || ParamType::array_of(ParamType::Any);
    vec![
        (
            "concat",
            FuncDef::builder().variadic_param(any_list()).build(|args| {
                Ok(Value::Array(
                    args.iter()
                        .flat_map(|a| a.as_array().cloned().unwrap_or_default())
                        .collect(),
                ))
            }),
        ),
        // A set of strings is a list without repeats here: the templates only iterate it.
        (
            "distinct",
            FuncDef::builder().param(any_list()).build(unique),
        ),
        ("toset", FuncDef::builder().param(any_list()).build(unique)),
        (
            "length",
            FuncDef::builder().param(ParamType::Any).build(|args| {
                Ok(Value::from(match &args[0] {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    other => return Err(format!("length of {other:?}")),
                }))
            }),
        ),
        (
            "lower",
            FuncDef::builder().param(ParamType::String).build(|args| {
                Ok(Value::from(
                    args[0].as_str().unwrap_or_default().to_lowercase(),
                ))
            }),
        ),
        (
            "format",
            FuncDef::builder()
                .param(ParamType::String)
                .variadic_param(ParamType::Any)
                .build(|args| {
                    let spec = args[0].as_str().unwrap_or_default().to_owned();
                    let mut out = String::new();
                    let mut rest = args.iter().skip(1);
                    let mut pieces = spec.split("%s");
                    out.push_str(pieces.next().unwrap_or_default());
                    for piece in pieces {
                        let v = rest.next().ok_or("format: too few arguments")?;
                        out.push_str(v.as_str().ok_or("format: %s of a non-string")?);
                        out.push_str(piece);
                    }
                    if spec.replace("%s", "").contains('%') {
                        return Err(format!("format: only %s is known here: {spec}"));
                    }
                    Ok(Value::from(out))
                }),
        ),
        (
            "jsonencode",
            FuncDef::builder().param(ParamType::Any).build(|args| {
                Ok(Value::from(
                    serde_json::to_string(&args[0]).map_err(|e| e.to_string())?,
                ))
            }),
        ),
        // Characters from `offset`, at most `length` of them (-1: the rest); Terraform counts
        // Unicode characters and allows a length past the end.
        (
            "substr",
            FuncDef::builder()
                .param(ParamType::String)
                .param(ParamType::Number)
                .param(ParamType::Number)
                .build(|args| {
                    let text = args[0].as_str().unwrap_or_default();
                    let number = |v: &Value| {
                        v.as_number()
                            .and_then(|n| n.as_i64())
                            .ok_or_else(|| format!("substr: {v:?} is not a whole number"))
                    };
                    let (offset, length) = (number(&args[1])?, number(&args[2])?);
                    let offset =
                        usize::try_from(offset).map_err(|_| "substr: a negative offset")?;
                    let chars = text.chars().skip(offset);
                    Ok(Value::from(match usize::try_from(length) {
                        Ok(n) => chars.take(n).collect::<String>(),
                        Err(_) => chars.collect::<String>(),
                    }))
                }),
        ),
    ]
}
