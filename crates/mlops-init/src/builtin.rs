//! The built-in project template (`templates/project/`, a cookiecutter template), embedded in
//! the binary: `mlops init` without `--template` extracts it and renders it like any other.

use std::path::Path;

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        /// Every file of the template: path from the template's root, contents.
        pub const PROJECT: &[(&str, &[u8])] = &[$(
            ($path, include_bytes!(concat!("../../../templates/project/", $path))),
        )*];
    };
}

embed!(
    "cookiecutter.json",
    "{{cookiecutter.project_slug}}/.gitignore",
    "{{cookiecutter.project_slug}}/README.md",
    "{{cookiecutter.project_slug}}/data/holdout.csv",
    "{{cookiecutter.project_slug}}/data/train.csv",
    "{{cookiecutter.project_slug}}/mlops.yaml",
    "{{cookiecutter.project_slug}}/{% if cookiecutter.training == 'script' %}requirements.txt{% endif %}",
    "{{cookiecutter.project_slug}}/{% if cookiecutter.training == 'script' %}train.py{% endif %}",
);

/// Writes the template into `dir`.
pub fn extract(dir: &Path) -> std::io::Result<()> {
    for (path, bytes) in PROJECT {
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(to, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `templates/project/` is embedded (and nothing else).
    #[test]
    fn every_template_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/project");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&root).expect("inside");
                    on_disk.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = PROJECT.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }
}
