//! `etl demo` refuses to fill a MongoDB that is not on this machine
//! without `--force`, since it drops the demo collections first (issue 29).
//! Nothing here connects: the refusal comes before any connection.

mod common;

#[test]
fn a_remote_server_is_refused_without_force() {
    let p = common::Project::with(&["etl.yaml"]);
    p.edit(
        "etl.yaml",
        "uri: mongodb://127.0.0.1:{{ env(\"ETL_MONGO_PORT\", \"27017\") }}/?directConnection=true",
        "uri: mongodb://mongo.example.invalid:27017,127.0.0.1:27017/?replicaSet=rs0",
    );
    let out = p.etl(&["demo", "--database", "shop"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: connection `mongo` reaches `mongo.example.invalid:27017`, not this machine, and `etl demo` drops the demo collections of `shop` before filling them\n\nhint: pass `--force` to fill it anyway, or use the local stack (`--profile local`)\n"
    );
}
