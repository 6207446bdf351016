//! A database of its own for each PostgreSQL test, on the server `scripts/pg-session.sh` starts.

/// A fresh database on the test server (its libpq connection string), or `None` outside `scripts/pg-session.sh`
/// and outside CI; under CI a missing server fails the test.
pub async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("MAGPIE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs the PostgreSQL tests: run them inside scripts/pg-session.sh"
        );
        eprintln!("no MAGPIE_TEST_DATABASE_URL: a PostgreSQL test did not run (scripts/pg-session.sh runs it)");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    Some(url.replace("dbname=postgres", &format!("dbname={name}")))
}
