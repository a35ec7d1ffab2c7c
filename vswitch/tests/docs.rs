//! The documentation's links: every relative link in README.md and docs/ (the harness's
//! result tables included) names a file or directory of the repository. No network, no root.

use std::path::{Path, PathBuf};

/// The repository's root (this crate's parent).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the repository")
        .to_path_buf()
}

/// Markdown files under `dir`, recursively.
fn markdown_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            markdown_under(&path, out);
        } else if path.extension().is_some_and(|x| x == "md") {
            out.push(path);
        }
    }
}

/// The targets of the inline links `[text](target)` in `text`, without any `#anchor`, and
/// without those that leave the repository (a scheme) or stay in the page (only an anchor).
fn relative_links(text: &str) -> Vec<&str> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(|c: char| c == ')' || c.is_whitespace()) else {
            break;
        };
        let target = rest[..end].split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target);
        }
        rest = &rest[end..];
    }
    links
}

#[test]
fn relative_links_find_only_the_link_syntax() {
    let text = "see [a](docs/a.md), [b](b.md#part), [web](https://x.example/y), \
                [mail](mailto:x@example.org) and [here](#section), not (c) or [d]";
    assert_eq!(relative_links(text), ["docs/a.md", "b.md"]);
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_that_exists() {
    let root = root();
    let mut files = vec![root.join("README.md")];
    markdown_under(&root.join("docs"), &mut files);
    assert!(
        files.len() > 10,
        "found only {} markdown files",
        files.len()
    );
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable markdown file");
        let dir = file.parent().expect("a file has a directory");
        for target in relative_links(&text) {
            checked += 1;
            if !dir.join(target).exists() {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                broken.push(format!("{}: {target}", shown.display()));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
