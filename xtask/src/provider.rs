//! The AWS provider's schema, for checking rendered Terraform without `terraform validate` (which
//! needs the provider binary from a registry this machine cannot reach).
//!
//! The schema comes from the npm package of the CDK for Terraform bindings of the provider: its
//! `.jsii` assembly describes every resource, data source and the provider block, each argument
//! with its Terraform name (in the link to the provider's docs) and whether it is required, and
//! every nested block as a struct of its own. This module keeps just that, as a compact JSON file
//! in the cache directory, and deletes the 170 MB it came from.
//!
//! Output (`<cache>/aws-provider/schema-<PROVIDER_VERSION>.json`):
//! `{"provider_version", "provider": Body, "resource": {type: Body}, "data": {type: Body}}` where
//! `Body = {"arguments": {name: required}, "attributes": [exported names], "blocks": {name:
//! {"required": bool, "body": Body}}}` (`attributes` only on top-level bodies).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The bindings package and the provider version it was generated from.
const PACKAGE: &str = "@cdktf/provider-aws@21.22.1";
const PROVIDER_VERSION: &str = "6.25.0";
const ASSEMBLY: &str = "@cdktf/provider-aws.";

/// Fetches and extracts the schema once; returns the schema file's path.
pub(crate) fn schema() -> Result<PathBuf, String> {
    let dir = crate::cache_dir().join("aws-provider");
    let out = dir.join(format!("schema-{PROVIDER_VERSION}.json"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    crate::run(
        Command::new("npm")
            .args(["pack", "--silent", PACKAGE, "--pack-destination"])
            .arg(&work)
            .current_dir(&work),
    )?;
    let tgz = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| format!("npm pack left no tarball in {}", work.display()))?;
    crate::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tgz)
            .args(["-C"])
            .arg(&work)
            .arg("package/.jsii"),
    )?;
    let jsii = work.join("package/.jsii");
    let text = std::fs::read(&jsii).map_err(|e| format!("cannot read {}: {e}", jsii.display()))?;
    let assembly: Assembly = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a jsii assembly: {e}", jsii.display()))?;
    drop(text);
    let schema = extract(&assembly)?;
    let json = serde_json::to_string(&schema).map_err(|e| e.to_string())?;
    let tmp = dir.join(".schema.tmp");
    std::fs::write(&tmp, json).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "aws provider {PROVIDER_VERSION}: {} resources, {} data sources -> {}",
        schema.resource.len(),
        schema.data.len(),
        out.display()
    );
    Ok(out)
}

#[derive(Deserialize)]
struct Assembly {
    types: HashMap<String, Type>,
}

#[derive(Deserialize)]
struct Type {
    base: Option<String>,
    #[serde(default)]
    docs: Docs,
    initializer: Option<Initializer>,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Deserialize, Default)]
struct Docs {
    summary: Option<String>,
    remarks: Option<String>,
}

#[derive(Deserialize)]
struct Initializer {
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    docs: Docs,
    #[serde(default)]
    optional: bool,
    #[serde(rename = "static", default)]
    is_static: bool,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TypeRef {
    Named {
        fqn: String,
    },
    Collection {
        collection: Box<Collection>,
    },
    Union {
        union: Union,
    },
    Primitive {
        #[allow(dead_code)]
        primitive: String,
    },
}

#[derive(Deserialize)]
struct Collection {
    elementtype: TypeRef,
}

#[derive(Deserialize)]
struct Union {
    types: Vec<TypeRef>,
}

impl TypeRef {
    /// The provider struct this type holds, directly or inside a collection or union.
    fn provider_struct(&self) -> Option<&str> {
        match self {
            TypeRef::Named { fqn } => fqn.starts_with(ASSEMBLY).then_some(fqn.as_str()),
            TypeRef::Collection { collection } => collection.elementtype.provider_struct(),
            TypeRef::Union { union } => union.types.iter().find_map(TypeRef::provider_struct),
            TypeRef::Primitive { .. } => None,
        }
    }
}

#[derive(Serialize)]
struct Schema {
    provider_version: &'static str,
    provider: Body,
    resource: BTreeMap<String, Body>,
    data: BTreeMap<String, Body>,
}

#[derive(Serialize, Default)]
struct Body {
    arguments: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    attributes: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    blocks: BTreeMap<String, Block>,
}

#[derive(Serialize)]
struct Block {
    required: bool,
    body: Body,
}

fn extract(assembly: &Assembly) -> Result<Schema, String> {
    let mut schema = Schema {
        provider_version: PROVIDER_VERSION,
        provider: Body::default(),
        resource: BTreeMap::new(),
        data: BTreeMap::new(),
    };
    for ty in assembly.types.values() {
        let kind = match ty.base.as_deref() {
            Some("cdktf.TerraformResource") => Kind::Resource,
            Some("cdktf.TerraformDataSource") => Kind::Data,
            Some("cdktf.TerraformProvider") => Kind::Provider,
            _ => continue,
        };
        let Some(name) = ty.docs.summary.as_deref().and_then(linked_name) else {
            continue;
        };
        let Some(config) = ty
            .initializer
            .iter()
            .flat_map(|i| &i.parameters)
            .find(|p| p.name == "config")
            .and_then(|p| p.ty.provider_struct())
        else {
            continue;
        };
        let mut body = body(assembly, config, 0)?;
        // Exported attributes: the class's own getters (computed values included), plus every
        // argument, which can be read back too.
        body.attributes = ty
            .properties
            .iter()
            .filter(|p| !p.is_static && !p.name.ends_with("Input"))
            .map(|p| snake(&p.name))
            .chain(body.arguments.keys().cloned())
            .chain(body.blocks.keys().cloned())
            .collect();
        match kind {
            Kind::Resource => {
                schema.resource.insert(name.to_owned(), body);
            }
            Kind::Data => {
                schema.data.insert(name.to_owned(), body);
            }
            Kind::Provider => schema.provider = body,
        }
    }
    if schema.resource.len() < 1000 || schema.provider.arguments.is_empty() {
        return Err(format!(
            "the {PACKAGE} assembly yielded only {} resources; has its layout changed?",
            schema.resource.len()
        ));
    }
    Ok(schema)
}

enum Kind {
    Resource,
    Data,
    Provider,
}

/// The schema of one config struct: its arguments and nested blocks.
fn body(assembly: &Assembly, fqn: &str, depth: usize) -> Result<Body, String> {
    if depth > 16 {
        return Err(format!("{fqn}: nesting deeper than 16 blocks"));
    }
    let ty = assembly
        .types
        .get(fqn)
        .ok_or_else(|| format!("{fqn} is referenced but not defined"))?;
    let mut out = Body::default();
    for p in &ty.properties {
        let docs = [p.docs.summary.as_deref(), p.docs.remarks.as_deref()];
        let name = docs
            .iter()
            .flatten()
            .find_map(|d| argument_name(d))
            .map_or_else(|| snake(&p.name), str::to_owned);
        let is_block = docs
            .iter()
            .flatten()
            .any(|d| d.trim_end().ends_with(" block."));
        match p.ty.provider_struct() {
            Some(nested) if is_block => {
                let body = body(assembly, nested, depth + 1)?;
                out.blocks.insert(
                    name,
                    Block {
                        required: !p.optional,
                        body,
                    },
                );
            }
            _ => {
                out.arguments.insert(name, !p.optional);
            }
        }
    }
    Ok(out)
}

/// `aws_s3_bucket` from "Represents a {@link https://…/resources/s3_bucket aws_s3_bucket}."
fn linked_name(summary: &str) -> Option<&str> {
    let link = summary.split("{@link ").nth(1)?;
    let (_url, rest) = link.split_once(' ')?;
    rest.split('}').next()
}

/// `versioning_configuration` from "… {@link https://…/s3_bucket_versioning#versioning_configuration
/// S3BucketVersioningA#versioning_configuration}".
fn argument_name(doc: &str) -> Option<&str> {
    let link = doc.split("Docs at Terraform Registry: {@link ").nth(1)?;
    let (url, _) = link.split_once(' ')?;
    let (_, name) = url.rsplit_once('#')?;
    (!name.is_empty()).then_some(name)
}

/// `bucket_domain_name` from `bucketDomainName`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_docs_links() {
        assert_eq!(
            linked_name(
                "Represents a {@link https://registry.terraform.io/providers/hashicorp/aws/6.25.0/docs/resources/s3_bucket aws_s3_bucket}."
            ),
            Some("aws_s3_bucket")
        );
        assert_eq!(
            argument_name(
                "Docs at Terraform Registry: {@link https://registry.terraform.io/providers/hashicorp/aws/6.25.0/docs/resources/s3_bucket_versioning#versioning_configuration S3BucketVersioningA#versioning_configuration}"
            ),
            Some("versioning_configuration")
        );
        assert_eq!(argument_name("versioning_configuration block."), None);
        assert_eq!(snake("bucketDomainName"), "bucket_domain_name");
        assert_eq!(snake("ipv6CidrBlock"), "ipv6_cidr_block");
    }
}
