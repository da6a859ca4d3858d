//! `schema.graphql` at the repository root must equal the schema the server
//! builds. Regenerate it with `cargo run -- print-schema > schema.graphql`
//! (or run this test with `UPDATE_SCHEMA=1`).

#[test]
fn schema_graphql_matches_the_built_schema() {
    let built = cerebral::graphql::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &built).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == built,
        "schema.graphql is out of date: run `cargo run -- print-schema > schema.graphql` (or UPDATE_SCHEMA=1 cargo test --test api schema::) and commit it"
    );
}

/// The README's table of error codes, in its order.
fn readme_codes() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n### Error codes\n")
        .nth(1)
        .expect("README has a section \"Error codes\"");
    let section = section.split("\n#").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_error_code_is_a_constant_and_a_row_of_the_readme_table() {
    // Clients branch on `extensions.code`: the README documents every code
    // the server can answer with, and `error::code` is the one place the
    // server spells them.
    let all: Vec<String> = cerebral::error::code::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "a code listed twice in ALL");
    assert_eq!(
        readme_codes(),
        all,
        "README's error table against error::code::ALL"
    );

    // No code is spelled as a literal elsewhere in the server's code (tests
    // inside a file may: they check the API's strings).
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    let mut spelled = vec![];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("error/code.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source readable");
            // Up to the file's unit tests (`#[cfg(test)] mod tests`), not
            // to the first `#[cfg(test)]`: a test-only submodule declared
            // at the top must not hide the rest of the file.
            let code_part = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or(&text);
            for c in &all {
                if code_part.contains(&format!("\"{c}\"")) {
                    spelled.push(format!("{} spells \"{c}\"", path.display()));
                }
            }
        }
    }
    assert!(spelled.is_empty(), "use error::code instead: {spelled:#?}");
}
