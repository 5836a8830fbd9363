//! The PostgreSQL test harness itself: each test gets its own, freshly created database,
//! and dropping the handle drops the database.

use crate::support::pg;

#[test]
fn each_test_gets_its_own_database_and_it_is_dropped_afterwards() {
    let Some(db) = pg::database("harness_own_database") else {
        return;
    };
    let name = db.name.clone();
    assert!(name.starts_with("dbflow_t_harness_own_database"), "{name}");
    assert!(db.url.ends_with(&format!("/{name}")), "{}", db.url);
    assert_eq!(db.psql("SELECT current_database()"), name);

    // Fresh: no tables of anyone else's.
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    db.psql("CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric NOT NULL)");
    db.psql("INSERT INTO orders (total) VALUES (9.99), (20)");
    assert_eq!(db.psql("SELECT count(*) FROM orders"), "2");
    assert_eq!(
        db.psql("SELECT to_regclass('public.orders') IS NOT NULL"),
        "t"
    );

    // A second database is a different one, and does not see the first one's table.
    let other = pg::database("harness_own_database").expect("the server is up");
    assert_ne!(other.name, name);
    assert_eq!(
        other.psql("SELECT to_regclass('public.orders') IS NULL"),
        "t"
    );
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(other.psql(&exists), "1");

    drop(db);
    assert_eq!(
        other.psql(&exists),
        "0",
        "dropping the TestDb drops its database"
    );
    assert!(!other.database_exists(&name));
}

#[test]
fn parallel_tests_get_distinct_databases() {
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| pg::database("harness_parallel").map(|db| db.name.clone())))
        .collect();
    let names: Vec<Option<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    if names.iter().any(Option::is_none) {
        return;
    }
    let mut unique: Vec<String> = names.into_iter().flatten().collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{unique:?}");
}
