//! Build script: the target triple for `cairn version` (CAIRN_TARGET).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CAIRN_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
