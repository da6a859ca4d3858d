//! The binary's commands, run as a user would.

use std::process::Command;

use crate::support;

#[test]
fn import_reads_a_v4_folder_into_the_database() {
    import_folder_checks(&support::bmad::own_pack());
}

#[test]
fn import_reads_the_real_bmad_v4_files() {
    if let Some(pack) = support::bmad::real_files("import_reads_the_real_bmad_v4_files") {
        import_folder_checks(&pack);
    }
}

/// Runs `cerebral import` on the pack in `pack` (10 personas with `po` named
/// Sarah, 4 teams, 6 workflows) and reads back what it wrote.
fn import_folder_checks(pack: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .arg("import")
        .arg(pack)
        .env("DATABASE_URL", &url)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 10 personas, 4 teams, 6 workflows"),
        "{stdout}"
    );

    // Read back what was written: the default tenant now has its own copy
    // of every persona and workflow, with their steps.
    let rows = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            use cerebral::entity::{persona, workflow, workflow_step};
            use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            let (db, _) = cerebral::db::connect(&url, 1).await.expect("connect");
            let tenant = cerebral::auth::DEFAULT_TENANT;
            let personas = persona::Entity::find()
                .filter(persona::Column::TenantId.eq(tenant))
                .count(&db)
                .await
                .expect("count");
            let po = persona::Entity::find()
                .filter(persona::Column::TenantId.eq(tenant))
                .filter(persona::Column::Key.eq("po"))
                .one(&db)
                .await
                .expect("query")
                .expect("po imported");
            let wf = workflow::Entity::find()
                .filter(workflow::Column::TenantId.eq(tenant))
                .filter(workflow::Column::Key.eq("greenfield-service"))
                .one(&db)
                .await
                .expect("query")
                .expect("workflow imported");
            let steps = workflow_step::Entity::find()
                .filter(workflow_step::Column::WorkflowId.eq(wf.id))
                .count(&db)
                .await
                .expect("count");
            (personas, po.name, po.builtin, steps)
        });
    assert_eq!(rows.0, 10);
    assert_eq!(rows.1, "Sarah");
    assert!(!rows.2, "imported, not built in");
    assert!(rows.3 >= 10, "greenfield-service steps stored: {}", rows.3);

    let status = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .args(["migrate", "status"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with("Applied")).count(),
        {
            use migration::MigratorTrait;
            migration::Migrator::migrations().len()
        },
        "{text}"
    );
}

#[test]
fn print_schema_prints_the_sdl() {
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .arg("print-schema")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("type Query"));
}

#[tokio::test]
async fn token_mints_a_token_the_server_accepts_with_its_tenant_and_roles() {
    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
    let tenant = "0190a3c4-0000-7000-8000-0000000000cc";
    let mint = |roles: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
            .args([
                "token", "--tenant", tenant, "--sub", "ci", "--roles", roles, "--ttl", "60",
            ])
            .env("CEREBRAL_JWT_SECRET", SECRET)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let create = "mutation { createProject(input: {name: \"p\"}) { project { id } } }";
    let body = app
        .post_as(&mint("operator"), create, serde_json::json!({}))
        .await;
    assert!(
        body["data"]["createProject"]["project"]["id"].is_string(),
        "{body}"
    );
    let body = app
        .post_as(&mint("viewer,agent"), create, serde_json::json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // What the server would refuse is refused at minting.
    for args in [
        vec!["token", "--tenant", "00000000-0000-0000-0000-000000000000"],
        vec!["token", "--tenant", tenant, "--roles", "root"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
            .args(&args)
            .env("CEREBRAL_JWT_SECRET", SECRET)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .args(["token", "--tenant", tenant])
        .env_remove("CEREBRAL_JWT_SECRET")
        .output()
        .expect("runs");
    assert!(!out.status.success());
}

/// `--help` lists every setting with its environment variable, and the
/// README configuration table and `--help` name the same settings, so
/// neither can drift from the code.
#[test]
fn help_lists_every_setting_with_its_variable_and_readme_documents_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    // Each option block: the `--flag` line up to the next blank-line gap.
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let flag = rest
                .split([' ', '<'])
                .next()
                .unwrap_or_default()
                .to_string();
            flags.push((flag, None));
        } else if let Some(env) = t.strip_prefix("[env: ") {
            let var = env.split(['=', ']']).next().unwrap_or_default().to_string();
            if let Some(last) = flags.last_mut() {
                last.1 = Some(var);
            }
        }
    }
    let settings: Vec<(String, String)> = flags
        .into_iter()
        .filter(|(f, _)| f != "help" && f != "version")
        .map(|(f, env)| {
            let env = env.unwrap_or_else(|| panic!("--{f} has no environment variable in --help"));
            (f, env)
        })
        .collect();
    assert!(settings.len() >= 40, "{} settings", settings.len());

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table: Vec<&str> = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section")
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `--"))
        .collect();
    for (flag, env) in &settings {
        let row = table
            .iter()
            .find(|r| r.starts_with(&format!("| `--{flag}` |")))
            .unwrap_or_else(|| panic!("README's configuration table has no row for --{flag}"));
        assert!(
            row.contains(&format!("`{env}`")),
            "README row for --{flag} names another variable: {row}"
        );
    }
    assert_eq!(
        table.len(),
        settings.len(),
        "README documents a setting --help does not have"
    );
}

/// `cerebral healthcheck` probes the address the server was told to
/// listen on (a container that moves the port stays healthy), a wildcard
/// address on loopback, unless `--url` says where.
#[tokio::test]
async fn healthcheck_probes_the_listen_address() {
    let server = support::ServerProcess::start_fresh(&[]).await;
    let healthcheck = |listen: String, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cerebral"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CEREBRAL_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("healthcheck")
            .args(extra)
            .env("CEREBRAL_LISTEN", listen)
            .output()
            .expect("runs")
            .status
            .success()
    };
    let port = server.port;
    assert!(healthcheck(format!("127.0.0.1:{port}"), &[]));
    assert!(
        healthcheck(format!("0.0.0.0:{port}"), &[]),
        "0.0.0.0 is probed on loopback"
    );
    let idle = support::free_port();
    assert!(
        !healthcheck(format!("127.0.0.1:{idle}"), &[]),
        "nothing answers on {idle}"
    );
    assert!(
        healthcheck(format!("127.0.0.1:{idle}"), &["--url", &server.base]),
        "--url wins over the listen address"
    );
}

#[test]
fn the_self_url_of_a_wildcard_address_is_loopback_of_its_family() {
    let mut config = cerebral::config::Config::for_database("sqlite::memory:");
    for (listen, url) in [
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("10.1.2.3:80", "http://10.1.2.3:80"),
        ("[fe80::1]:8080", "http://[fe80::1]:8080"),
    ] {
        config.server.listen = listen.parse().expect("address");
        assert_eq!(config.self_url(), url);
    }
}
