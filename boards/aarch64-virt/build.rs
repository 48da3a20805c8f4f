//! Puts memory.x on the linker's search path and links with aarch64-rt's image.ld, which lays
//! every section into memory.x's `image` region.
fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Timage.ld");
    println!("cargo:rustc-link-arg-bins=-Tmemory.x");
    println!("cargo:rerun-if-changed=memory.x");
}
