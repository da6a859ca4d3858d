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
        "schema.graphql is out of date: run `cargo run -- print-schema > schema.graphql` (or UPDATE_SCHEMA=1 cargo test --test schema) and commit it"
    );
}
