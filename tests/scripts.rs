//! The setup scripts' decisions, on the inputs that fooled them before.

use std::io::Write;
use std::process::{Command, Stdio};

fn has_libclang(ldconfig_listing: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/has-libclang.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldconfig_listing.as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

#[test]
fn prereqs_tell_libclang_from_libclang_cpp() {
    // A fresh Debian 12 image: only libclang-cpp, which bindgen cannot load.
    assert!(!has_libclang(
        "\tlibclang-cpp.so.14 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-cpp.so.14\n"
    ));
    assert!(!has_libclang(""));
    // After `apt-get install libclang1-14`.
    assert!(has_libclang(
        "\tlibclang-cpp.so.14 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-cpp.so.14\n\tlibclang-14.so.13 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-14.so.13\n"
    ));
    assert!(has_libclang(
        "\tlibclang.so.1 (libc6,x86-64) => /usr/lib/llvm-16/lib/libclang.so.1\n"
    ));
}
