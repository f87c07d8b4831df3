//! Link settings for the `oxid` binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Relative relocations packed (DT_RELR, glibc 2.36+): the loader applies the binary's 24,000 pointer
    // fix-ups from a few kilobytes instead of reading 580 KB of relocation entries at every start, pages
    // that then stay mapped (issue 12, idle RSS). The binary stays position-independent (ASLR).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
