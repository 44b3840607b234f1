// `sqlx::migrate!` embeds the files in migrations/ at compile time, but cargo does not know
// the crate reads them: without this, a migration added to a warm build would be missing from
// the binary until some other source file changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
